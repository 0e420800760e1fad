import type { Resource } from '../../api/resource.js';
import { type ApplyTo, type ConfigPatch, patchValue } from '../../api/resources/networking-envoy-filter.js';
import { memoOn, memoOnKey } from '../../lib/memo.js';
import { CDS, EDS, LDS, RDS } from '../type-urls.js';
import { applyToClusters } from './envoy-filter-clusters.js';
import { applyToListeners } from './envoy-filter-listeners.js';
import type { Patch, PatchContext, PatchMemo } from './envoy-filter-patch.js';
import { applyToRoutes } from './envoy-filter-routes.js';
import type { EnvoyResource, TranslateInput } from './input.js';
import { inboundWorkloadPorts } from './listeners-inbound.js';
import { INBOUND_PASSTHROUGH_CLUSTER, VIRTUAL_INBOUND_LISTENER } from './names.js';

/**
 * EnvoyFilter: istiod's patch engine (pilot/pkg/networking/core/envoyfilter) over the resources the translator
 * made for one node. Which filters apply and in what order, the patch contexts, the match rules and the
 * operations follow istiod; the node is vmesh's host proxy, so a workloadSelector picks the hosts running a
 * matching workload: on the inbound side the patch reaches only the ports of the workloads it selects, on the
 * outbound side (shared by the host's workloads) all of the host's listeners of the matched context. Patches with a
 * proxyVersion or proxy metadata match never apply (vmesh's proxy reports no Istio version or metadata, which
 * istiod treats as a mismatch), nor do WAYPOINT ones (vmesh has no waypoints).
 */

type Filter = Resource<'EnvoyFilter'>;

/** Istio's order: priority, then root-namespace filters first, then (creation time, unknown here) name.namespace. */
function ordered(input: TranslateInput, filters: Filter[]): Filter[] {
  const root = input.mesh.rootNamespace;
  const key = (f: Filter) => `${f.metadata.name}.${f.metadata.namespace}`;
  return filters.sort((a, b) => {
    const pa = a.spec.priority ?? 0;
    const pb = b.spec.priority ?? 0;
    if (pa !== pb) return pa - pb;
    if (a.metadata.namespace !== b.metadata.namespace && (a.metadata.namespace === root || b.metadata.namespace === root))
      return a.metadata.namespace === root ? -1 : 1;
    return key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0;
  });
}

/** The EnvoyFilters that apply to this node, in the order their patches apply. */
export function envoyFiltersFor(input: TranslateInput): Filter[] {
  const all = input.config.envoyFilters;
  if (all.length === 0 || input.node.mode === 'proxyless') return [];
  const node = input.node;
  const subjects =
    node.mode === 'gateway' || node.workloads.length === 0
      ? [{ namespace: node.namespace, labels: node.labels }]
      : node.workloads.map((w) => ({ namespace: w.namespace, labels: w.labels }));
  return ordered(
    input,
    all.filter((f) => !f.spec.targetRefs?.length && subjects.some((s) => selects(input, f, s))),
  );
}

/** istiod's selection: a filter in the root namespace or the subject's, whose workloadSelector labels it carries. */
function selects(
  input: TranslateInput,
  f: Filter,
  s: { readonly namespace: string; readonly labels: Readonly<Record<string, string>> },
): boolean {
  const ns = f.metadata.namespace;
  if (ns !== input.mesh.rootNamespace && ns !== s.namespace) return false;
  return Object.entries(f.spec.workloadSelector?.labels ?? {}).every(([k, v]) => s.labels[k] === v);
}

/** The node's patches by what they apply to, and a key naming them (filters and the inbound ports each may touch). */
function patchesOf(input: TranslateInput, filters: readonly Filter[]): { patches: Map<ApplyTo, Patch[]>; key: string } {
  const out = new Map<ApplyTo, Patch[]>();
  const keys: string[] = [];
  const ports = input.node.mode === 'sidecar' ? inboundWorkloadPorts(input) : [];
  for (const f of filters) {
    const scoped = Object.keys(f.spec.workloadSelector?.labels ?? {}).length > 0;
    const inboundPorts = scoped
      ? new Set(ports.filter((p) => p.workloads.some((w) => selects(input, f, w))).map((p) => p.port))
      : undefined;
    keys.push(
      `${f.metadata.namespace}/${f.metadata.name}@${f.metadata.resourceVersion ?? JSON.stringify(f.spec)}${inboundPorts ? `:${[...inboundPorts].join(',')}` : ''}`,
    );
    for (const cp of f.spec.configPatches ?? []) {
      const m = cp.match ?? {};
      const context = m.context ?? 'ANY';
      if (context === 'WAYPOINT' || m.proxy?.proxyVersion || Object.keys(m.proxy?.metadata ?? {}).length > 0) continue;
      const applyTo = cp.applyTo;
      const op = cp.patch?.operation;
      if (!applyTo || !op || op === 'INVALID') continue;
      // Read once per stored patch, not once per node.
      const r = memoOn(readValues, cp, () => patchValue(cp) ?? null);
      // Validation refused values that do not read; a stored one that no longer does is skipped, as istiod skips it.
      if (r && !r.ok) continue;
      const list = out.get(applyTo) ?? [];
      list.push({ applyTo, context, op, match: m, value: r?.value, ...(inboundPorts ? { inboundPorts } : {}) });
      out.set(applyTo, list);
    }
  }
  return { patches: out, key: keys.join('\n') };
}

/** The node's translation with the EnvoyFilters that apply to it patched in; the input is not changed. */
export function applyEnvoyFilters(
  input: TranslateInput,
  translated: Readonly<Record<string, readonly EnvoyResource[]>>,
): Readonly<Record<string, readonly EnvoyResource[]>> {
  const filters = envoyFiltersFor(input);
  if (filters.length === 0) return translated;
  const { patches, key } = patchesOf(input, filters);
  if (patches.size === 0) return translated;
  const memoKey = `${input.node.mode}\n${key}`;
  const memo: PatchMemo = (message, make) => memoOnKey(patchedMessages, message, memoKey, make) as ReturnType<typeof make>;
  const gateway = input.node.mode === 'gateway';
  const inbound = (name: string) => name.startsWith('inbound|');
  const ctx = (isInbound: boolean): PatchContext => (gateway ? 'GATEWAY' : isInbound ? 'SIDECAR_INBOUND' : 'SIDECAR_OUTBOUND');
  const outboundCtx = ctx(false);
  const out: Record<string, readonly EnvoyResource[]> = { ...translated };
  const listenerCtx = (n: string) => ctx(n === VIRTUAL_INBOUND_LISTENER || inbound(n));
  out[LDS] = applyToListeners(translated[LDS] ?? [], patches, listenerCtx, outboundCtx, memo);
  out[RDS] = applyToRoutes(translated[RDS] ?? [], patches, (n) => ctx(inbound(n)), memo);
  const clusterCtx = (n: string) => ctx(n === INBOUND_PASSTHROUGH_CLUSTER || inbound(n));
  const clusters = applyToClusters(translated[CDS] ?? [], patches, clusterCtx, [...new Set([outboundCtx, ctx(true)])], memo);
  out[CDS] = clusters;
  // A removed cluster's endpoints would go unread: they go with it (an EDS cluster reads its own name's).
  const kept = new Set(clusters.map((c) => c.name));
  out[EDS] = (translated[EDS] ?? []).filter((e) => kept.has(e.name));
  return out;
}

const readValues = new WeakMap<ConfigPatch, ReturnType<typeof patchValue> | null>();

/** Patched messages by source message and patch set (memoOnKey treats null, a removed resource, as a value). */
const patchedMessages = new WeakMap<object, Map<string, object | null>>();
