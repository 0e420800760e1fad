import type { ParsedCidr } from '../lib/addr.js';
import type { CapturePlan, Match, NfFamily, PlanChain, PlanRule } from './plan.js';

/** Our chains in the nat table; every rule in them and every jump into them carries a `vmesh:` comment. */
export const IPT_CHAINS = Object.freeze({ inbound: 'VMESH_INBOUND', outbound: 'VMESH_OUTPUT' });
const HOOK_CHAIN = Object.freeze({ prerouting: 'PREROUTING', output: 'OUTPUT' });

// multiport takes at most 15 ports per rule.
const MULTIPORT_MAX = 15;

export type IptFamily = 'ipv4' | 'ipv6';

const quote = (s: string): string => `"${s.replace(/["\\]/g, '\\$&')}"`;

function cidrText(c: ParsedCidr): string {
  return `${c.address}/${c.prefix}`;
}

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
  for (const m of matches) if (m.kind === 'l4proto' || m.kind === 'dport') return m.proto;
  return undefined;
}

function matchArgs(m: Match, all: readonly Match[]): string[][] {
  switch (m.kind) {
    case 'l4proto':
      // A dport match in the same rule already says `-p`.
      return [all.some((o) => o.kind === 'dport') ? [] : ['-p', m.proto]];
    case 'dport':
      if (m.ports.length === 1) return [['-p', m.proto, '--dport', String(m.ports[0])]];
      return chunk(m.ports, MULTIPORT_MAX).map((g) => ['-p', m.proto, '-m', 'multiport', '--dports', g.join(',')]);
    case 'daddr':
      return m.cidrs.map((c) => ['-d', cidrText(c)]);
    case 'saddr':
      return m.cidrs.map((c) => ['-s', cidrText(c)]);
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
  const target =
    r.verdict.kind === 'return'
      ? ['-j', 'RETURN']
      : ['-p', protoOf(r.matches) ?? 'tcp', '-j', 'REDIRECT', '--to-ports', String(r.verdict.port)];
  return expand(r).map((args) => {
    // REDIRECT needs -p; avoid saying it twice when a match already did.
    const t = args.includes('-p') && r.verdict.kind === 'redirect' ? target.slice(2) : target;
    return ['-A', chain, ...args, ...comment, ...t].join(' ');
  });
}

function chainOf(c: PlanChain): string {
  return IPT_CHAINS[c.role];
}

function jumpLine(c: PlanChain): string {
  return `-A ${HOOK_CHAIN[c.hook]} -m comment --comment ${quote(`vmesh: ${c.role} capture`)} -j ${chainOf(c)}`;
}

/**
 * `existingJumps` are the `-A PREROUTING|OUTPUT ... -j VMESH_*` lines iptables-save shows now. They are
 * deleted in the same transaction that re-adds them, so a second install replaces and never stacks.
 * Declaring our chains in the restore input flushes them; with --noflush nothing else is touched.
 */
export function renderIptablesInstall(plan: CapturePlan, family: IptFamily, existingJumps: readonly string[] = []): string {
  const lines = ['*nat'];
  for (const c of plan.chains) lines.push(`:${chainOf(c)} - [0:0]`);
  for (const j of existingJumps) lines.push(j.replace(/^-A /, '-D '));
  for (const c of plan.chains) for (const r of c.rules) lines.push(...ruleLines(chainOf(c), r, family));
  for (const c of plan.chains) lines.push(jumpLine(c));
  lines.push('COMMIT', '');
  return lines.join('\n');
}

/** Removes the jumps, then empties and deletes our chains; `existingChains` are those present now. */
export function renderIptablesRemove(existingJumps: readonly string[], existingChains: readonly string[]): string {
  const lines = ['*nat'];
  for (const c of existingChains) lines.push(`:${c} - [0:0]`);
  for (const j of existingJumps) lines.push(j.replace(/^-A /, '-D '));
  for (const c of existingChains) lines.push(`-X ${c}`);
  lines.push('COMMIT', '');
  return lines.join('\n');
}

/** The lines of `iptables-save -t nat` that belong to vmesh: chain declarations, rules and jumps. */
export function parseIptablesSave(text: string): { chains: string[]; jumps: string[]; rules: string[] } {
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
