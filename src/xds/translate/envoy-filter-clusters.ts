import { mergeMessage, mergeTypedConfig } from './envoy-filter-merge.js';
import {
  addsIn,
  contextMatches,
  inboundPortAllowed,
  inboundPortOf,
  isMerge,
  type Obj,
  type Patch,
  type PatchContext,
  type Patches,
  type PatchMemo,
} from './envoy-filter-patch.js';
import type { EnvoyResource } from './input.js';
import { parseOutboundClusterName } from './names.js';

/** istiod's cluster patches (cluster_patch.go): MERGE, REMOVE, and ADD in the passes the patch's context allows. */

const CLUSTER = 'envoy.config.cluster.v3.Cluster';

function clusterMatch(name: string, p: Patch): boolean {
  const m = p.match.cluster;
  if (!m) return true;
  if (m.name) return m.name === name;
  const inbound = /^inbound\|(\d+)\|([^|]*)\|(.*)$/.exec(name);
  const parsed =
    parseOutboundClusterName(name) ??
    (inbound ? { port: Number(inbound[1]), subset: inbound[2] ?? '', hostname: inbound[3] ?? '' } : undefined);
  if (m.subset && m.subset !== parsed?.subset) return false;
  if (m.service && m.service !== parsed?.hostname) return false;
  if (m.portNumber && m.portNumber !== parsed?.port) return false;
  return true;
}

/** A MERGE with a transport socket merges it into the cluster's socket of the same name (or sets it), and stops there. */
function mergeCluster(c: Obj, p: Patch): Obj {
  const v = p.value ?? {};
  const ts = v.transport_socket as Obj | undefined;
  const replaceLists = p.op === 'MERGE_AND_REPLACE_LIST';
  if (!ts) return mergeMessage(CLUSTER, c, v, replaceLists);
  const cur = c.transport_socket as Obj | undefined;
  if (!cur || cur.name !== ts.name) return { ...c, transport_socket: structuredClone(ts) };
  const merged =
    cur.typed_config && ts.typed_config ? mergeTypedConfig(cur.typed_config as Obj, ts.typed_config as Obj, replaceLists) : undefined;
  return merged ? { ...c, transport_socket: { ...cur, typed_config: merged } } : c;
}

function patchCluster(name: string, cluster: Obj, ctx: PatchContext, list: readonly Patch[]): Obj | null {
  let c: Obj | null = cluster;
  for (const p of list) {
    if (!c || !contextMatches(p, ctx) || !clusterMatch(name, p)) continue;
    if (ctx === 'SIDECAR_INBOUND' && !inboundPortAllowed(p, inboundPortOf(name))) continue;
    if (p.op === 'REMOVE') c = null;
    else if (isMerge(p)) c = mergeCluster(c, p);
  }
  return c;
}

export function applyToClusters(
  clusters: readonly EnvoyResource[],
  patches: Patches,
  contextOf: (name: string) => PatchContext,
  addContexts: readonly PatchContext[],
  memo: PatchMemo,
): EnvoyResource[] {
  const list = patches.get('CLUSTER') ?? [];
  const out: EnvoyResource[] = [];
  for (const r of clusters) {
    const c = memo(r.message, () => patchCluster(r.name, r.message as Obj, contextOf(r.name), list));
    if (c) out.push(c === r.message ? r : { name: String(c.name ?? r.name), message: c as EnvoyResource['message'] });
  }
  for (const p of list) {
    if (p.op !== 'ADD' || !p.value?.name || !addContexts.some((ctx) => addsIn(p, ctx))) continue;
    out.push({ name: String(p.value.name), message: structuredClone(p.value) as EnvoyResource['message'] });
  }
  return out;
}
