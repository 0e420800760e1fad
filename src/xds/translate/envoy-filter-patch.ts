import type { ApplyTo, ConfigPatch } from '../../api/resources/networking-envoy-filter.js';

/** What the EnvoyFilter patch steps share: a patch ready to apply, and istiod's context rules. */

export type PatchContext = 'SIDECAR_INBOUND' | 'SIDECAR_OUTBOUND' | 'GATEWAY';
export type Operation = NonNullable<NonNullable<ConfigPatch['patch']>['operation']>;
export type Obj = Record<string, unknown>;

/** One config patch ready to apply: its value read as the Envoy message it patches. */
export interface Patch {
  readonly applyTo: ApplyTo;
  readonly context: 'ANY' | PatchContext;
  readonly op: Operation;
  readonly match: NonNullable<ConfigPatch['match']>;
  readonly value: Obj | undefined;
  /**
   * The workload ports of the host a workloadSelector picks: SIDECAR_INBOUND chains, routes and clusters of other
   * ports belong to other workloads on the host, which istiod (one proxy per workload) would never patch.
   */
  readonly inboundPorts?: ReadonlySet<number>;
}

/** Whether a patch may touch the inbound resource of workload port `port` (undefined: not a workload port). */
export function inboundPortAllowed(p: Patch, port: number | undefined): boolean {
  return !p.inboundPorts || port === undefined || p.inboundPorts.has(port);
}

export type Patches = ReadonlyMap<ApplyTo, readonly Patch[]>;
/** MERGE and MERGE_AND_REPLACE_LIST: istiod's merge operations (they differ only in how lists merge). */
export function isMerge(p: Patch): boolean {
  return p.op === 'MERGE' || p.op === 'MERGE_AND_REPLACE_LIST';
}

/** Whether a patch's context takes in resources of context `ctx`. */
export function contextMatches(p: Patch, ctx: PatchContext): boolean {
  return p.context === 'ANY' || p.context === ctx;
}

/** Whether an ADD patch adds in the pass of context `ctx`: ANY adds only where istiod's outbound or gateway pass would. */
export function addsIn(p: Patch, ctx: PatchContext): boolean {
  return p.context === 'ANY' ? ctx !== 'SIDECAR_INBOUND' : p.context === ctx;
}

/** The workload port of an inbound route or cluster name (`inbound|9080||`), undefined for others. */
export function inboundPortOf(name: string): number | undefined {
  const m = /^inbound\|(\d+)\|/.exec(name);
  return m ? Number(m[1]) : undefined;
}

/**
 * Patches one resource message once per node kind and patch set: nodes that share a message object (the
 * translation of their common outbound view) share its patched form, which is then encoded once too.
 */
export type PatchMemo = <T extends object>(message: object, patch: () => T | null) => T | null;
