import { ErrorCode, VmeshError, vmeshError } from '../lib/errors.js';
import { nftRun } from '../lib/native.js';
import type { CapturePlan } from './plan.js';
import { NFT_TABLE, type NftBatch, renderNftInstall, renderNftRemove } from './render-nft.js';

function run(batch: NftBatch): void {
  nftRun(JSON.stringify(batch), { json: true });
}

/** One libnftables transaction: either the whole new table is in place, or the old one still is. */
export function installNft(plan: CapturePlan): void {
  run(renderNftInstall(plan));
}

export function removeNft(): void {
  run(renderNftRemove());
}

export interface NftRuleState {
  readonly chain: string;
  readonly comment: string;
  readonly packets: number;
  readonly redirectPort?: number;
}

/** The installed vmesh table's rules, or undefined when there is none. */
export function readNftTable(): NftRuleState[] | undefined {
  let out: string;
  try {
    out = nftRun(`list table ${NFT_TABLE.family} ${NFT_TABLE.name}`, { json: true });
  } catch (e) {
    if (e instanceof VmeshError && e.code === ErrorCode.NftFailed && /No such file or directory/.test(e.message)) return undefined;
    throw e;
  }
  let doc: { nftables?: Array<Record<string, unknown>> };
  try {
    doc = JSON.parse(out);
  } catch {
    throw vmeshError(ErrorCode.NftFailed, 'nftables returned unreadable JSON for the vmesh table');
  }
  const rules: NftRuleState[] = [];
  for (const item of doc.nftables ?? []) {
    const r = item.rule as { chain: string; comment?: string; expr?: Array<Record<string, unknown>> } | undefined;
    if (!r) continue;
    let packets = 0;
    let redirectPort: number | undefined;
    for (const x of r.expr ?? []) {
      const counter = x.counter as { packets?: number } | undefined;
      if (counter) packets = counter.packets ?? 0;
      const redirect = x.redirect as { port?: number } | undefined;
      if (redirect) redirectPort = redirect.port;
    }
    rules.push({ chain: r.chain, comment: r.comment ?? '', packets, ...(redirectPort !== undefined ? { redirectPort } : {}) });
  }
  return rules;
}
