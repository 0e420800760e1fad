import { ErrorCode, vmeshError } from '../lib/errors.js';
import { execTool } from '../lib/exec.js';
import type { CapturePlan } from './plan.js';
import {
  IPT_TABLES,
  type IptablesState,
  type IptFamily,
  type IptTable,
  type IptTableState,
  parseIptablesSave,
  renderIptablesInstall,
  renderIptablesRemove,
  renderIptablesRestoreTo,
} from './render-iptables.js';

export type { IptablesState };

const TOOLS: Record<IptFamily, { save: string; restore: string }> = {
  ipv4: { save: 'iptables-save', restore: 'iptables-restore' },
  ipv6: { save: 'ip6tables-save', restore: 'ip6tables-restore' },
};

/** vmesh's chains in every table it uses (nat, and raw for the DNS conntrack zone). */
export async function readIptables(family: IptFamily): Promise<IptablesState> {
  const out: Partial<Record<IptTable, IptTableState>> = {};
  for (const t of IPT_TABLES) {
    const r = await execTool(TOOLS[family].save, ['-t', t], { debianPackage: 'iptables' });
    if (r.code !== 0) {
      throw vmeshError(ErrorCode.IptablesFailed, `${TOOLS[family].save} -t ${t} failed: ${r.stderr.trim() || `exit ${r.code}`}`);
    }
    out[t] = parseIptablesSave(r.stdout);
  }
  return out as IptablesState;
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

const isEmpty = (s: IptablesState): boolean => IPT_TABLES.every((t) => s[t].chains.length === 0 && s[t].jumps.length === 0);

/**
 * Each iptables-restore call is atomic for its family. Across families we keep all-or-nothing by
 * restoring IPv4's previous state when IPv6 fails.
 */
export async function installIptables(plan: CapturePlan, families: readonly IptFamily[]): Promise<void> {
  const done: Array<{ family: IptFamily; before: IptablesState }> = [];
  try {
    for (const family of families) {
      const before = await readIptables(family);
      await restore(family, renderIptablesInstall(plan, family, before));
      done.push({ family, before });
    }
  } catch (e) {
    for (const { family, before } of done.reverse()) {
      const now = await readIptables(family);
      await restore(family, renderIptablesRestoreTo(before, now));
    }
    throw e;
  }
}

export async function removeIptables(families: readonly IptFamily[]): Promise<void> {
  for (const family of families) {
    const now = await readIptables(family);
    if (isEmpty(now)) continue;
    await restore(family, renderIptablesRemove(now));
  }
}
