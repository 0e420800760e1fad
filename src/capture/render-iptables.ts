import { formatCidr } from '../lib/addr.js';
import type { CapturePlan, Match, NfFamily, PlanChain, PlanRule } from './plan.js';

/** Our chains (nat, and raw for the DNS zone); every rule in them and every jump into them carries a `vmesh:` comment. */
export const IPT_CHAINS = Object.freeze({ inbound: 'VMESH_INBOUND', outbound: 'VMESH_OUTPUT', dnsZone: 'VMESH_DNS_ZONE' });
const HOOK_CHAIN = Object.freeze({ prerouting: 'PREROUTING', output: 'OUTPUT' });

/** The tables vmesh has chains in, in the order a restore input names them. */
export const IPT_TABLES = ['raw', 'nat'] as const;
export type IptTable = (typeof IPT_TABLES)[number];

/** vmesh's lines in one table, as iptables-save shows them. */
export interface IptTableState {
  readonly chains: readonly string[];
  readonly jumps: readonly string[];
  readonly rules: readonly string[];
}
export type IptablesState = Readonly<Record<IptTable, IptTableState>>;

const EMPTY_TABLE: IptTableState = { chains: [], jumps: [], rules: [] };
export const EMPTY_IPTABLES: IptablesState = { raw: EMPTY_TABLE, nat: EMPTY_TABLE };

// multiport takes at most 15 ports per rule.
const MULTIPORT_MAX = 15;

export type IptFamily = 'ipv4' | 'ipv6';

const quote = (s: string): string => `"${s.replace(/["\\]/g, '\\$&')}"`;

function chunk<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** Whether a rule applies to this family at all (a family-specific match limits it). */
function ruleFamily(r: PlanRule): NfFamily | undefined {
  for (const m of r.matches) {
    if (m.kind === 'daddr' || m.kind === 'saddr' || m.kind === 'nfproto') return m.family;
  }
  return undefined;
}

/**
 * One plan rule can become several iptables rules: iptables has no sets, so every address and every
 * group of 15 ports gets its own line. The cross product keeps the plan's meaning exactly.
 */
function expand(r: PlanRule): string[][] {
  let variants: string[][] = [[]];
  const cross = (alternatives: string[][]) => {
    variants = variants.flatMap((v) => alternatives.map((a) => [...v, ...a]));
  };
  for (const m of r.matches) cross(matchArgs(m, r.matches));
  return variants;
}

function protoOf(matches: readonly Match[]): string | undefined {
  for (const m of matches) if (m.kind === 'l4proto' || m.kind === 'dport' || m.kind === 'sport') return m.proto;
  return undefined;
}

function matchArgs(m: Match, all: readonly Match[]): string[][] {
  switch (m.kind) {
    case 'l4proto':
      // A port match in the same rule already says `-p`.
      return [all.some((o) => o.kind === 'dport' || o.kind === 'sport') ? [] : ['-p', m.proto]];
    case 'dport':
    case 'sport': {
      const dir = m.kind === 'dport' ? 'd' : 's';
      if (m.ports.length === 1) return [['-p', m.proto, `--${dir}port`, String(m.ports[0])]];
      return chunk(m.ports, MULTIPORT_MAX).map((g) => ['-p', m.proto, '-m', 'multiport', `--${dir}ports`, g.join(',')]);
    }
    case 'daddr':
      return m.cidrs.map((c) => ['-d', formatCidr(c)]);
    case 'saddr':
      return m.cidrs.map((c) => ['-s', formatCidr(c)]);
    case 'skuid':
      return [['-m', 'owner', '--uid-owner', String(m.id)]];
    case 'skgid':
      return [['-m', 'owner', '--gid-owner', String(m.id)]];
    case 'iifname':
      return [['-i', m.name]];
    case 'oifname':
      return [['-o', m.name]];
    case 'nfproto':
      return [[]];
    case 'localDst':
      return [['-m', 'addrtype', '--dst-type', 'LOCAL']];
    case 'tcpSyn':
      // A dport or l4proto match in the same rule already says `-p tcp`, which --syn needs.
      return [['--syn']];
  }
}

function ruleLines(chain: string, r: PlanRule, family: IptFamily): string[] {
  const want: NfFamily = family === 'ipv4' ? 'ip' : 'ip6';
  const only = ruleFamily(r);
  if (only !== undefined && only !== want) return [];
  const comment = ['-m', 'comment', '--comment', quote(r.comment)];
  const v = r.verdict;
  const target =
    v.kind === 'return'
      ? ['-j', 'RETURN']
      : v.kind === 'ctZone'
        ? ['-j', 'CT', '--zone', String(v.zone)]
        : ['-p', protoOf(r.matches) ?? 'tcp', '-j', 'REDIRECT', '--to-ports', String(v.port)];
  return expand(r).map((args) => {
    // REDIRECT needs -p; avoid saying it twice when a match already did.
    const t = args.includes('-p') && r.verdict.kind === 'redirect' ? target.slice(2) : target;
    return ['-A', chain, ...args, ...comment, ...t].join(' ');
  });
}

function chainOf(c: PlanChain): string {
  return IPT_CHAINS[c.role];
}

const JUMP_COMMENT = Object.freeze({ inbound: 'inbound capture', outbound: 'outbound capture', dnsZone: 'DNS conntrack zone' });

function jumpLine(c: PlanChain): string {
  return `-A ${HOOK_CHAIN[c.hook]} -m comment --comment ${quote(`vmesh: ${JUMP_COMMENT[c.role]}`)} -j ${chainOf(c)}`;
}

const unique = (xs: readonly string[]): string[] => [...new Set(xs)];

/**
 * `existing` is what iptables-save shows of vmesh now. Its jumps are deleted in the same transaction that
 * re-adds them, so a second install replaces and never stacks; declaring our chains in the restore input
 * flushes them, and chains the new plan no longer has are deleted. With --noflush nothing else is touched.
 */
export function renderIptablesInstall(plan: CapturePlan, family: IptFamily, existing: IptablesState = EMPTY_IPTABLES): string {
  const lines: string[] = [];
  for (const t of IPT_TABLES) {
    const chains = plan.chains.filter((c) => c.kind === t);
    const prev = existing[t];
    if (chains.length === 0 && prev.chains.length === 0 && prev.jumps.length === 0) continue;
    const names = chains.map(chainOf);
    lines.push(`*${t}`);
    for (const c of unique([...names, ...prev.chains])) lines.push(`:${c} - [0:0]`);
    for (const j of prev.jumps) lines.push(j.replace(/^-A /, '-D '));
    for (const c of prev.chains) if (!names.includes(c)) lines.push(`-X ${c}`);
    for (const c of chains) for (const r of c.rules) lines.push(...ruleLines(chainOf(c), r, family));
    for (const c of chains) lines.push(jumpLine(c));
    lines.push('COMMIT');
  }
  lines.push('');
  return lines.join('\n');
}

/** Removes the jumps, then empties and deletes our chains, in every table that has any. */
export function renderIptablesRemove(existing: IptablesState): string {
  const lines: string[] = [];
  for (const t of IPT_TABLES) {
    const { chains, jumps } = existing[t];
    if (chains.length === 0 && jumps.length === 0) continue;
    lines.push(`*${t}`);
    for (const c of chains) lines.push(`:${c} - [0:0]`);
    for (const j of jumps) lines.push(j.replace(/^-A /, '-D '));
    for (const c of chains) lines.push(`-X ${c}`);
    lines.push('COMMIT');
  }
  lines.push('');
  return lines.join('\n');
}

/** Puts vmesh's chains back exactly as `before` had them (used to undo a half-done install). */
export function renderIptablesRestoreTo(before: IptablesState, now: IptablesState): string {
  const lines: string[] = [];
  for (const t of IPT_TABLES) {
    const b = before[t];
    const n = now[t];
    const all = unique([...b.chains, ...n.chains]);
    if (all.length === 0 && n.jumps.length === 0 && b.jumps.length === 0) continue;
    lines.push(`*${t}`);
    for (const c of all) lines.push(`:${c} - [0:0]`);
    for (const j of n.jumps) lines.push(j.replace(/^-A /, '-D '));
    lines.push(...b.rules, ...b.jumps);
    for (const c of n.chains) if (!b.chains.includes(c)) lines.push(`-X ${c}`);
    lines.push('COMMIT');
  }
  lines.push('');
  return lines.join('\n');
}

/** The lines of `iptables-save -t <table>` that belong to vmesh: chain declarations, rules and jumps. */
export function parseIptablesSave(text: string): IptTableState {
  const chains: string[] = [];
  const jumps: string[] = [];
  const rules: string[] = [];
  for (const line of text.split('\n')) {
    const decl = /^:(VMESH_[A-Z0-9_]+) /.exec(line);
    if (decl?.[1]) chains.push(decl[1]);
    else if (/^-A (PREROUTING|OUTPUT|INPUT|POSTROUTING) .*-j VMESH_/.test(line)) jumps.push(line);
    else if (/^-A VMESH_/.test(line)) rules.push(line);
  }
  return { chains, jumps, rules };
}
