import { ErrorCode, vmeshError } from '../lib/errors.js';
import { execTool } from '../lib/exec.js';
import type { CapturePlan } from './plan.js';
import { type IptFamily, parseIptablesSave, renderIptablesInstall, renderIptablesRemove } from './render-iptables.js';

const TOOLS: Record<IptFamily, { save: string; restore: string }> = {
  ipv4: { save: 'iptables-save', restore: 'iptables-restore' },
  ipv6: { save: 'ip6tables-save', restore: 'ip6tables-restore' },
};

export interface IptablesState {
  readonly chains: string[];
  readonly jumps: string[];
  readonly rules: string[];
}

export async function readIptables(family: IptFamily): Promise<IptablesState> {
  const r = await execTool(TOOLS[family].save, ['-t', 'nat'], { debianPackage: 'iptables' });
  if (r.code !== 0) {
    throw vmeshError(ErrorCode.IptablesFailed, `${TOOLS[family].save} -t nat failed: ${r.stderr.trim() || `exit ${r.code}`}`);
  }
  return parseIptablesSave(r.stdout);
}

async function restore(family: IptFamily, text: string): Promise<void> {
  // --noflush: only the chains named in the input change; -w waits for the xtables lock.
  const r = await execTool(TOOLS[family].restore, ['--noflush', '-w', '5'], { input: text, debianPackage: 'iptables' });
  if (r.code !== 0) {
    throw vmeshError(ErrorCode.IptablesFailed, `${TOOLS[family].restore} refused the rule set: ${r.stderr.trim() || `exit ${r.code}`}`, {
      input: text,
    });
  }
}

/** Puts a family's vmesh chains back exactly as `before` had them (used to undo a half-done install). */
function renderRestoreTo(before: IptablesState, now: IptablesState): string {
  const lines = ['*nat'];
  const all = [...new Set([...before.chains, ...now.chains])];
  for (const c of all) lines.push(`:${c} - [0:0]`);
  for (const j of now.jumps) lines.push(j.replace(/^-A /, '-D '));
  lines.push(...before.rules, ...before.jumps);
  for (const c of now.chains) if (!before.chains.includes(c)) lines.push(`-X ${c}`);
  lines.push('COMMIT', '');
  return lines.join('\n');
}

/**
 * Each iptables-restore call is atomic for its family. Across families we keep all-or-nothing by
 * restoring IPv4's previous state when IPv6 fails.
 */
export async function installIptables(plan: CapturePlan, families: readonly IptFamily[]): Promise<void> {
  const done: Array<{ family: IptFamily; before: IptablesState }> = [];
  try {
    for (const family of families) {
      const before = await readIptables(family);
      await restore(family, renderIptablesInstall(plan, family, before.jumps));
      done.push({ family, before });
    }
  } catch (e) {
    for (const { family, before } of done.reverse()) {
      const now = await readIptables(family);
      await restore(family, renderRestoreTo(before, now));
    }
    throw e;
  }
}

export async function removeIptables(families: readonly IptFamily[]): Promise<void> {
  for (const family of families) {
    const now = await readIptables(family);
    if (now.chains.length === 0 && now.jumps.length === 0) continue;
    await restore(family, renderIptablesRemove(now.jumps, now.chains));
  }
}
