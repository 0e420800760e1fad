import { type CaptureConfig, MESH_PORTS, SSH_PORT } from '../api/capture.js';
import type { Cidr } from '../lib/addr.js';

/**
 * The capture rule set as backend-neutral data: what is matched and what happens, in order.
 * Both renderers (nftables JSON, iptables-restore text) translate this one plan, so the two
 * backends cannot drift apart in what they capture.
 */
export type L4 = 'tcp' | 'udp';
export type NfFamily = 'ip' | 'ip6';

export type Match =
  | { readonly kind: 'l4proto'; readonly proto: L4 }
  | { readonly kind: 'dport'; readonly proto: L4; readonly ports: readonly number[] }
  | { readonly kind: 'sport'; readonly proto: L4; readonly ports: readonly number[] }
  | { readonly kind: 'daddr'; readonly family: NfFamily; readonly cidrs: readonly Cidr[] }
  | { readonly kind: 'saddr'; readonly family: NfFamily; readonly cidrs: readonly Cidr[] }
  | { readonly kind: 'skuid'; readonly id: number }
  | { readonly kind: 'skgid'; readonly id: number }
  | { readonly kind: 'iifname'; readonly name: string }
  | { readonly kind: 'oifname'; readonly name: string }
  | { readonly kind: 'nfproto'; readonly family: NfFamily }
  /** Destination is an address of this host (skips forwarded traffic on hosts that route). */
  | { readonly kind: 'localDst' }
  /**
   * A connection-opening TCP segment (SYN without ACK). Connections that existed before capture was
   * installed are picked up mid-stream by conntrack and would otherwise be redirected and broken.
   */
  | { readonly kind: 'tcpSyn' };

export type Verdict =
  | { readonly kind: 'return' }
  | { readonly kind: 'redirect'; readonly port: number }
  /** Conntrack zone for the packet's connection; only valid before conntrack runs (the raw hook). */
  | { readonly kind: 'ctZone'; readonly zone: number };

export interface PlanRule {
  readonly matches: readonly Match[];
  readonly verdict: Verdict;
  /** Says why the rule exists; every installed rule carries it, prefixed `vmesh:`. */
  readonly comment: string;
}

export type ChainRole = 'inbound' | 'outbound' | 'dnsZone';

export interface PlanChain {
  readonly role: ChainRole;
  readonly hook: 'prerouting' | 'output';
  /** `nat` chains redirect; the `raw` chain runs before conntrack and only sets zones. */
  readonly kind: 'nat' | 'raw';
  readonly rules: readonly PlanRule[];
}

export interface CapturePlan {
  readonly chains: readonly PlanChain[];
}

const RETURN: Verdict = { kind: 'return' };
const SYN: Match = { kind: 'tcpSyn' };
const redirect = (port: number): Verdict => ({ kind: 'redirect', port });

function rule(comment: string, verdict: Verdict, ...matches: Match[]): PlanRule {
  return { matches, verdict, comment: `vmesh: ${comment}` };
}

function byFamily(cidrs: readonly Cidr[], ipv6: boolean): Array<[NfFamily, Cidr[]]> {
  const v4 = cidrs.filter((c) => c.family === 'IPv4');
  const v6 = ipv6 ? cidrs.filter((c) => c.family === 'IPv6') : [];
  const out: Array<[NfFamily, Cidr[]]> = [];
  if (v4.length > 0) out.push(['ip', v4]);
  if (v6.length > 0) out.push(['ip6', v6]);
  return out;
}

const sortedUnique = (ports: Iterable<number>): number[] => [...new Set(ports)].sort((a, b) => a - b);

const LOOPBACK: readonly Cidr[] = [
  { family: 'IPv4', address: '127.0.0.0', prefix: 8 },
  { family: 'IPv6', address: '::1', prefix: 128 },
];

/** Ports never captured inbound: vmesh's own, plus SSH unless asked for, plus the user's. */
export function inboundExcludedPorts(cfg: CaptureConfig): number[] {
  const own = Object.values(MESH_PORTS);
  return sortedUnique([...(cfg.captureSsh ? [] : [SSH_PORT]), ...own, ...cfg.inbound.excludePorts]);
}

export function outboundExcludedPorts(cfg: CaptureConfig): number[] {
  return sortedUnique([...(cfg.captureSsh ? [] : [SSH_PORT]), ...cfg.outbound.excludePorts]);
}

function inboundChain(cfg: CaptureConfig): PlanChain {
  const rules: PlanRule[] = [rule('local traffic is captured on output, not here', RETURN, { kind: 'iifname', name: 'lo' })];
  if (!cfg.ipv6) rules.push(rule('IPv6 capture is off', RETURN, { kind: 'nfproto', family: 'ip6' }));
  rules.push(rule('inbound ports never captured', RETURN, { kind: 'dport', proto: 'tcp', ports: inboundExcludedPorts(cfg) }));
  const to = redirect(cfg.inboundPort);
  if (cfg.inbound.ports === '*') {
    rules.push(rule('inbound TCP to the proxy', to, { kind: 'localDst' }, { kind: 'l4proto', proto: 'tcp' }, SYN));
  } else if (cfg.inbound.ports.length > 0) {
    const ports = sortedUnique(cfg.inbound.ports);
    rules.push(rule('inbound TCP to the proxy', to, { kind: 'localDst' }, { kind: 'dport', proto: 'tcp', ports }, SYN));
  }
  return { role: 'inbound', hook: 'prerouting', kind: 'nat', rules };
}

function outboundChain(cfg: CaptureConfig): PlanChain {
  const rules: PlanRule[] = [];
  if (!cfg.ipv6) rules.push(rule('IPv6 capture is off', RETURN, { kind: 'nfproto', family: 'ip6' }));
  // The proxy forwards inbound connections to local apps from these sources (Istio's 127.0.0.6 and ::6).
  const passthrough: Cidr[] = [
    { family: 'IPv4', address: cfg.passthroughSource, prefix: 32 },
    { family: 'IPv6', address: '::6', prefix: 128 },
  ];
  for (const [family, cidrs] of byFamily(passthrough, cfg.ipv6)) {
    rules.push(
      rule('inbound passthrough from the proxy to local apps', RETURN, { kind: 'oifname', name: 'lo' }, { kind: 'saddr', family, cidrs }),
    );
  }
  rules.push(...ownerExclusions(cfg));
  // DNS before the controller's addresses: a resolver on the controller's host (a small site's management host)
  // is still the host's resolver, and the agent must see those queries to answer mesh names.
  if (cfg.captureDns) {
    for (const proto of ['udp', 'tcp'] as const) {
      const m: Match[] = [{ kind: 'dport', proto, ports: [53] }];
      if (proto === 'tcp') m.push(SYN);
      rules.push(rule(`DNS (${proto}) to the agent's DNS proxy`, redirect(cfg.dnsPort), ...m));
    }
  }
  for (const [family, cidrs] of byFamily(cfg.controllerAddresses, cfg.ipv6)) {
    rules.push(rule('control traffic to the controller goes direct', RETURN, { kind: 'daddr', family, cidrs }));
  }
  for (const [family, cidrs] of byFamily(LOOPBACK, cfg.ipv6)) {
    rules.push(rule('loopback is not mesh traffic', RETURN, { kind: 'daddr', family, cidrs }));
  }
  const excludedPorts = outboundExcludedPorts(cfg);
  if (excludedPorts.length > 0) {
    rules.push(rule('outbound ports never captured', RETURN, { kind: 'dport', proto: 'tcp', ports: excludedPorts }));
  }
  const to = redirect(cfg.outboundPort);
  if (cfg.outbound.includePorts.length > 0) {
    const ports = sortedUnique(cfg.outbound.includePorts);
    rules.push(rule('outbound ports always captured', to, { kind: 'dport', proto: 'tcp', ports }, SYN));
  }
  for (const [family, cidrs] of byFamily(cfg.outbound.excludeCidrs, cfg.ipv6)) {
    rules.push(rule('excluded destinations go direct', RETURN, { kind: 'daddr', family, cidrs }));
  }
  if (cfg.outbound.includeCidrs === '*') {
    rules.push(rule('outbound TCP to the proxy', to, { kind: 'l4proto', proto: 'tcp' }, SYN));
  } else {
    for (const [family, cidrs] of byFamily(cfg.outbound.includeCidrs, cfg.ipv6)) {
      rules.push(rule('outbound TCP to the proxy', to, { kind: 'daddr', family, cidrs }, { kind: 'l4proto', proto: 'tcp' }, SYN));
    }
  }
  return { role: 'outbound', hook: 'output', kind: 'nat', rules };
}

/** Sockets whose traffic is never captured: the proxy's and agent's own, and the user's excluded ids. */
function ownerExclusions(cfg: CaptureConfig): PlanRule[] {
  return [
    rule('the proxy and agent (uid) go direct', RETURN, { kind: 'skuid', id: cfg.proxyUid }),
    rule('the proxy and agent (gid) go direct', RETURN, { kind: 'skgid', id: cfg.proxyGid }),
    ...sortedUnique(cfg.excludeUids).map((id) => rule('excluded uid', RETURN, { kind: 'skuid', id })),
    ...sortedUnique(cfg.excludeGids).map((id) => rule('excluded gid', RETURN, { kind: 'skgid', id })),
  ];
}

/** Conntrack zone of captured DNS queries and the DNS proxy's answers to them. */
export const DNS_CT_ZONE = 2;

/**
 * The agent forwards non-mesh names itself, uncaptured, leaving conntrack entries host:P -> resolver:53 for
 * a minute or two. An application query that happens to reuse port P would match such an entry, skip the
 * nat chain (which sees only a new flow's first packet) and reach the real resolver. Captured queries live
 * in their own zone, so they always start a new, redirected flow; the DNS proxy's answers must be in that
 * zone too to be un-NATed. The agent's own forwards stay in zone 0, where host firewalls expect them.
 */
function dnsZoneChain(cfg: CaptureConfig): PlanChain {
  const zone: Verdict = { kind: 'ctZone', zone: DNS_CT_ZONE };
  const rules: PlanRule[] = [
    rule(
      "the DNS proxy's answers join the captured queries' zone",
      zone,
      { kind: 'sport', proto: 'udp', ports: [cfg.dnsPort] },
      { kind: 'skgid', id: cfg.proxyGid },
    ),
  ];
  if (!cfg.ipv6) rules.push(rule('IPv6 capture is off', RETURN, { kind: 'nfproto', family: 'ip6' }));
  rules.push(...ownerExclusions(cfg));
  rules.push(rule('captured DNS queries get their own conntrack zone', zone, { kind: 'dport', proto: 'udp', ports: [53] }));
  return { role: 'dnsZone', hook: 'output', kind: 'raw', rules };
}

/**
 * The capture of a host whose proxy is down but whose agent runs: DNS still goes to the agent's DNS proxy (so
 * mesh names keep resolving and no in-flight query loses its reverse NAT to a rule-set change), while no TCP is
 * redirected, so connections to virtual IPs meet their local route and are refused at once.
 */
export function dnsOnlyCapture(cfg: CaptureConfig): CaptureConfig {
  return { ...cfg, inbound: { ...cfg.inbound, ports: [] }, outbound: { ...cfg.outbound, includeCidrs: [], includePorts: [] } };
}

/** The complete capture rule set for one host. Pure: same config, same plan. */
export function planCapture(cfg: CaptureConfig): CapturePlan {
  return { chains: [inboundChain(cfg), outboundChain(cfg), ...(cfg.captureDns ? [dnsZoneChain(cfg)] : [])] };
}
