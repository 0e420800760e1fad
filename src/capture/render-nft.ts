import type { Cidr } from '../lib/addr.js';
import type { CapturePlan, Match, PlanChain, PlanRule, Verdict } from './plan.js';

/** vmesh owns this table outright: replacing or removing it never touches anyone else's rules. */
export const NFT_TABLE = Object.freeze({ family: 'inet', name: 'vmesh' });

// NAT chains at dstnat priority, like the kernel's own iptables-nft nat chains; the zone chain at raw
// priority, before conntrack (-200) looks the packet's connection up.
const PRIORITY = { nat: -100, raw: -300 } as const;
const CHAIN_TYPE = { nat: 'nat', raw: 'filter' } as const;

type Json = null | boolean | number | string | readonly Json[] | { readonly [k: string]: Json };
export interface NftBatch {
  readonly nftables: readonly Json[];
}

const table = { family: NFT_TABLE.family, name: NFT_TABLE.name };
// Chains and rules name their table by `table`, not `name`.
const inTable = { family: NFT_TABLE.family, table: NFT_TABLE.name };

const CHAIN_NAMES = { inbound: 'inbound', outbound: 'outbound', dnsZone: 'dns_zone' } as const;
/** Every chain the vmesh table may hold. */
export const NFT_CHAIN_NAMES: readonly string[] = Object.values(CHAIN_NAMES);

export function chainName(chain: PlanChain): string {
  return CHAIN_NAMES[chain.role];
}

function addrSet(cidrs: readonly Cidr[]): Json {
  const items: Json[] = cidrs.map((c) =>
    c.prefix === (c.family === 'IPv4' ? 32 : 128) ? c.address : { prefix: { addr: c.address, len: c.prefix } },
  );
  return items.length === 1 ? (items[0] as Json) : { set: items };
}

const portSet = (ports: readonly number[]): Json => (ports.length === 1 ? (ports[0] as number) : { set: [...ports] });

const eq = (left: Json, right: Json): Json => ({ match: { op: '==', left, right } });
const meta = (key: string): Json => ({ meta: { key } });
const payload = (protocol: string, field: string): Json => ({ payload: { protocol, field } });

function matchExpr(m: Match): Json {
  switch (m.kind) {
    case 'l4proto':
      return eq(meta('l4proto'), m.proto);
    case 'dport':
      return eq(payload(m.proto, 'dport'), portSet(m.ports));
    case 'sport':
      return eq(payload(m.proto, 'sport'), portSet(m.ports));
    case 'daddr':
      return eq(payload(m.family, 'daddr'), addrSet(m.cidrs));
    case 'saddr':
      return eq(payload(m.family, 'saddr'), addrSet(m.cidrs));
    case 'skuid':
      return eq(meta('skuid'), m.id);
    case 'skgid':
      return eq(meta('skgid'), m.id);
    case 'iifname':
      return eq(meta('iifname'), m.name);
    case 'oifname':
      return eq(meta('oifname'), m.name);
    case 'nfproto':
      return eq(meta('nfproto'), m.family === 'ip' ? 'ipv4' : 'ipv6');
    case 'localDst':
      return eq({ fib: { result: 'type', flags: ['daddr'] } }, 'local');
    case 'tcpSyn':
      return eq({ '&': [payload('tcp', 'flags'), ['fin', 'syn', 'rst', 'ack']] }, 'syn');
  }
}

function verdictExprs(v: Verdict): Json[] {
  switch (v.kind) {
    case 'return':
      return [{ return: null }];
    case 'redirect':
      // The counter lets `capture status` say how much was captured.
      return [{ counter: { packets: 0, bytes: 0 } }, { redirect: { port: v.port } }];
    case 'ctZone':
      return [{ mangle: { key: { ct: { key: 'zone' } }, value: v.zone } }];
  }
}

function ruleCmd(chain: string, r: PlanRule): Json {
  return {
    add: {
      rule: { ...inTable, chain, expr: [...r.matches.map(matchExpr), ...verdictExprs(r.verdict)], comment: r.comment },
    },
  };
}

/**
 * One transaction that replaces the whole table: adding it first makes the delete valid when it does
 * not exist yet, so install is idempotent and a crashed agent's stale table is replaced, never stacked.
 *
 * `owned`: the table already exists with `flags owner` (libnftables 1.0.6 reads no table flags from JSON, so
 * it is made by NFT_OWNED_TABLE_ADD) and must stay: re-adding it would clear the flag, which the kernel
 * refuses. Every chain vmesh may have is deleted instead (added bare first, so the delete is valid when it is
 * absent) and the plan's chains are added, all in the same one transaction.
 */
export function renderNftInstall(plan: CapturePlan, opts: { owned?: boolean } = {}): NftBatch {
  const cmds: Json[] = opts.owned
    ? NFT_CHAIN_NAMES.flatMap((name): Json[] => [{ add: { chain: { ...inTable, name } } }, { delete: { chain: { ...inTable, name } } }])
    : [{ add: { table } }, { delete: { table } }, { add: { table } }];
  for (const c of plan.chains) {
    cmds.push({
      add: {
        chain: { ...inTable, name: chainName(c), type: CHAIN_TYPE[c.kind], hook: c.hook, prio: PRIORITY[c.kind], policy: 'accept' },
      },
    });
  }
  for (const c of plan.chains) for (const r of c.rules) cmds.push(ruleCmd(chainName(c), r));
  return { nftables: cmds };
}

export function renderNftRemove(): NftBatch {
  return { nftables: [{ add: { table } }, { delete: { table } }] };
}

/**
 * The empty table tied to the netlink socket that runs this (nft syntax: JSON cannot say `owner` in 1.0.6);
 * a no-op when that socket already owns it. The kernel deletes an owned table when its socket closes.
 */
export const NFT_OWNED_TABLE_ADD = `add table ${NFT_TABLE.family} ${NFT_TABLE.name} { flags owner; }`;
export const NFT_TABLE_DELETE = `delete table ${NFT_TABLE.family} ${NFT_TABLE.name}`;
