import { ErrorCode, VmeshError, vmeshError } from '../lib/errors.js';
import { type NftSession, nftRun } from '../lib/native.js';
import type { CapturePlan } from './plan.js';
import {
  NFT_CHAIN_NAMES,
  NFT_OWNED_TABLE_ADD,
  NFT_TABLE,
  NFT_TABLE_DELETE,
  type NftBatch,
  renderNftInstall,
  renderNftRemove,
} from './render-nft.js';

const notFound = (e: unknown) => e instanceof VmeshError && e.code === ErrorCode.NftFailed && /No such file or directory/.test(e.message);
const notPermitted = (e: unknown) => e instanceof VmeshError && e.code === ErrorCode.NftFailed && /Operation not permitted/.test(e.message);
const notSupported = (e: unknown) => e instanceof VmeshError && e.code === ErrorCode.NftFailed && /Operation not supported/.test(e.message);

/** The kernel refuses changes to an owned table from any socket but its owner's. */
function ownedByAnother(e: unknown): unknown {
  if (!notPermitted(e)) return e;
  return vmeshError(
    ErrorCode.Conflict,
    `nftables table ${NFT_TABLE.family} ${NFT_TABLE.name} belongs to another running process (a vmesh agent: its capture goes when it stops); stop that agent first`,
  );
}

function run(batch: NftBatch, session?: NftSession): void {
  const text = JSON.stringify(batch);
  try {
    if (session) session.run(text, { json: true });
    else nftRun(text, { json: true });
  } catch (e) {
    throw ownedByAnother(e);
  }
}

function deleteTable(session: NftSession): void {
  try {
    session.run(NFT_TABLE_DELETE);
  } catch (e) {
    if (!notFound(e)) throw ownedByAnother(e);
  }
}

/**
 * One libnftables transaction: either the whole new table is in place, or the old one still is. With a
 * session, the table is owned by the session's socket, so it disappears with the process that holds it.
 */
export function installNft(plan: CapturePlan, session?: NftSession): void {
  if (!session) {
    run(renderNftInstall(plan));
    return;
  }
  try {
    session.run(NFT_OWNED_TABLE_ADD);
  } catch (e) {
    // A table nobody owns (a `vmesh capture install`, an older agent) cannot be made owned: replace it.
    if (!notSupported(e)) throw ownedByAnother(e);
    deleteTable(session);
    session.run(NFT_OWNED_TABLE_ADD);
  }
  run(renderNftInstall(plan, { owned: true }), session);
}

/** Removes the vmesh table; through a session it also removes an unowned one, never another owner's. */
export function removeNft(session?: NftSession): void {
  if (session) deleteTable(session);
  else run(renderNftRemove());
}

export interface NftRuleState {
  readonly chain: string;
  readonly comment: string;
  readonly packets: number;
  readonly redirectPort?: number;
}

/** Whether the installed vmesh table is owned by a process (it goes when that process does). */
export function nftTableOwned(): boolean {
  try {
    return /^\s*flags .*\bowner\b/m.test(nftRun(`list table ${NFT_TABLE.family} ${NFT_TABLE.name}`));
  } catch (e) {
    if (notFound(e)) return false;
    throw e;
  }
}

/** The installed vmesh table's rules, or undefined when there is none. */
export function readNftTable(): NftRuleState[] | undefined {
  try {
    nftRun(`list table ${NFT_TABLE.family} ${NFT_TABLE.name}`);
  } catch (e) {
    if (notFound(e)) return undefined;
    throw e;
  }
  // Chain by chain: libnftables 1.0.6 writes an owned table's flags into JSON from the wrong memory (seen as the
  // table's name, at times bytes that are no JSON at all), so the table object itself is never read as JSON.
  const items: Array<Record<string, unknown>> = [];
  for (const chain of NFT_CHAIN_NAMES) {
    let out: string;
    try {
      out = nftRun(`list chain ${NFT_TABLE.family} ${NFT_TABLE.name} ${chain}`, { json: true });
    } catch (e) {
      if (notFound(e)) continue;
      throw e;
    }
    try {
      items.push(...((JSON.parse(out) as { nftables?: Array<Record<string, unknown>> }).nftables ?? []));
    } catch {
      throw vmeshError(ErrorCode.NftFailed, `nftables returned unreadable JSON for chain ${chain} of the vmesh table`);
    }
  }
  const doc = { nftables: items };
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
