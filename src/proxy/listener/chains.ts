import type { OrigDstAddr } from '../../lib/addr.js';
import { cidrContains } from '../match/cidr.js';
import type { FilterChain, ListenerConfig } from '../proxy-config.js';

/** What a connection offers for filter chain matching. */
export interface ChainInputs {
  /** Original destination (or the local address when not redirected). */
  readonly dst: OrigDstAddr;
  /** From the ClientHello (lower case); undefined without TLS inspection or SNI. */
  readonly sni?: string;
  /** `raw_buffer` unless TLS inspection saw a ClientHello (Envoy's default). */
  readonly transport: 'tls' | 'raw_buffer';
  readonly alpn: readonly string[];
}

const NO_MATCH = -1;
const WILDCARD = 0;

/**
 * Envoy's filter chain match: criteria are applied in order (destination port, destination IP ranges,
 * server names, transport protocol, application protocols); at each step the most specific chains that
 * match survive, and chains that leave the criterion unset survive only when no specific one matched.
 * No chain left: the listener's default chain (or none: the connection is closed).
 */
export function selectFilterChain(l: ListenerConfig, x: ChainInputs): FilterChain | undefined {
  let c: readonly FilterChain[] = l.filterChains;
  if (c.length > 0)
    c = narrow(c, (f) => (f.match.destinationPort === undefined ? WILDCARD : f.match.destinationPort === x.dst.port ? 1 : NO_MATCH));
  if (c.length > 0) c = narrow(c, (f) => prefixScore(f, x.dst.address));
  if (c.length > 0) c = narrow(c, (f) => serverNameScore(f.match.serverNames, x.sni));
  if (c.length > 0) {
    c = narrow(c, (f) => (f.match.transportProtocol === undefined ? WILDCARD : f.match.transportProtocol === x.transport ? 1 : NO_MATCH));
  }
  if (c.length > 0) c = narrow(c, (f) => alpnScore(f.match.applicationProtocols, x.alpn));
  return c[0] ?? l.defaultChain;
}

function narrow(chains: readonly FilterChain[], score: (f: FilterChain) => number): readonly FilterChain[] {
  let best = NO_MATCH;
  for (const f of chains) best = Math.max(best, score(f));
  if (best === NO_MATCH) return [];
  return chains.filter((f) => score(f) === best);
}

/** Longest prefix wins. */
function prefixScore(f: FilterChain, ip: string): number {
  const ranges = f.match.prefixRanges;
  if (ranges.length === 0) return WILDCARD;
  let best = NO_MATCH;
  for (const r of ranges) if (r.prefix + 1 > best && cidrContains(r, ip)) best = r.prefix + 1;
  return best;
}

/** Exact name beats the longest matching `*.suffix`; a chain with names never matches a connection without SNI. */
function serverNameScore(names: readonly string[], sni: string | undefined): number {
  if (names.length === 0) return WILDCARD;
  if (sni === undefined) return NO_MATCH;
  let best = NO_MATCH;
  for (const n of names) {
    const name = n.toLowerCase();
    if (name === sni) return 1 << 20;
    if (name === '*') best = Math.max(best, 1);
    else if (name.startsWith('*.') && sni.endsWith(name.slice(1)) && sni.length > name.length - 1) best = Math.max(best, name.length);
  }
  return best;
}

function alpnScore(wanted: readonly string[], offered: readonly string[]): number {
  if (wanted.length === 0) return WILDCARD;
  for (const p of offered) if (wanted.includes(p)) return 1;
  return NO_MATCH;
}
