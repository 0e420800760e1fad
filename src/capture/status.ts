import type { CaptureBackend } from '../api/capture.js';
import { execTool, hasTool } from '../lib/exec.js';
import { readIptables } from './apply-iptables.js';
import { nftTableOwned, readNftTable } from './apply-nft.js';
import { EMPTY_IPTABLES, IPT_TABLES, type IptablesState, type IptTableState } from './render-iptables.js';

export interface CaptureStatus {
  /** Which backend holds vmesh rules now (`none` when neither does). */
  readonly installed: CaptureBackend | 'none' | 'both';
  readonly nftables: {
    readonly rules: number;
    readonly redirectedPackets: { inbound: number; outbound: number };
    /** Owned by a running agent's netlink socket: the kernel deletes the table when that agent exits. */
    readonly owned: boolean;
  } | null;
  readonly iptables: { readonly ipv4Rules: number; readonly ipv6Rules: number; readonly jumps: number } | null;
  /** Plain-words problems an operator must know about. */
  readonly warnings: readonly string[];
}

async function legacyRuleCount(): Promise<number> {
  // iptables-legacy rules sit in the kernel's x_tables, invisible to nft and to iptables-nft; they still apply.
  let n = 0;
  for (const tool of ['iptables-legacy-save', 'ip6tables-legacy-save']) {
    if (!(await hasTool(tool))) continue;
    const r = await execTool(tool, []);
    if (r.code !== 0) continue;
    n += r.stdout.split('\n').filter((l) => l.startsWith('-A ')).length;
  }
  return n;
}

export async function captureStatus(): Promise<CaptureStatus> {
  const warnings: string[] = [];
  const nft = readNftTable();
  let ipt: { v4: number; v6: number; jumps: number } | undefined;
  if (await hasTool('iptables-save')) {
    const count = (s: IptablesState, key: keyof IptTableState) => IPT_TABLES.reduce((n, t) => n + s[t][key].length, 0);
    const v4 = await readIptables('ipv4');
    const v6 = (await hasTool('ip6tables-save')) ? await readIptables('ipv6') : EMPTY_IPTABLES;
    if (count(v4, 'chains') + count(v6, 'chains') + count(v4, 'jumps') + count(v6, 'jumps') > 0) {
      ipt = { v4: count(v4, 'rules'), v6: count(v6, 'rules'), jumps: count(v4, 'jumps') + count(v6, 'jumps') };
    }
    if (ipt && ipt.jumps === 0)
      warnings.push('vmesh iptables chains exist but nothing jumps to them: capture is not active; run "vmesh capture install" again');
  } else if (!nft) {
    warnings.push('iptables-save not found: cannot check for iptables rules (Debian package iptables)');
  }
  const legacy = await legacyRuleCount();
  if (legacy > 0) {
    warnings.push(
      `iptables-legacy holds ${legacy} rule(s) that "nft list ruleset" and iptables-nft do not show; both rule sets apply to packets, so check them with iptables-legacy-save`,
    );
  }
  if (nft && ipt) {
    warnings.push(
      'vmesh rules are installed by both backends (nftables table inet vmesh and iptables VMESH_ chains): remove one with "vmesh capture remove --backend ..."',
    );
  }
  const sum = (chain: string) =>
    (nft ?? []).filter((r) => r.chain === chain && r.redirectPort !== undefined).reduce((a, r) => a + r.packets, 0);
  return {
    installed: nft && ipt ? 'both' : nft ? 'nftables' : ipt ? 'iptables' : 'none',
    nftables: nft
      ? { rules: nft.length, redirectedPackets: { inbound: sum('inbound'), outbound: sum('outbound') }, owned: nftTableOwned() }
      : null,
    iptables: ipt ? { ipv4Rules: ipt.v4, ipv6Rules: ipt.v6, jumps: ipt.jumps } : null,
    warnings,
  };
}
