import { TypedConfigUrl } from '../type-urls.js';
import { insertAt } from './envoy-filter-lists.js';
import { mergeMessage, mergeTypedConfig } from './envoy-filter-merge.js';
import {
  addsIn,
  contextMatches,
  inboundPortAllowed,
  isMerge,
  type Obj,
  type Patch,
  type PatchContext,
  type Patches,
  type PatchMemo,
} from './envoy-filter-patch.js';
import type { EnvoyResource } from './input.js';
import { VIRTUAL_INBOUND_LISTENER, VIRTUAL_OUTBOUND_LISTENER } from './names.js';

/** istiod's listener patches (listener_patch.go): LISTENER, LISTENER_FILTER, FILTER_CHAIN, NETWORK_FILTER, HTTP_FILTER. */

const HCM = 'envoy.filters.network.http_connection_manager';
const HCM_URL = TypedConfigUrl.httpConnectionManager;
const LISTENER = 'envoy.config.listener.v3.Listener';
const FILTER_CHAIN = 'envoy.config.listener.v3.FilterChain';

type Listener = Obj & { name?: string };

function isVirtual(l: Listener): boolean {
  return l.name === VIRTUAL_INBOUND_LISTENER || l.name === VIRTUAL_OUTBOUND_LISTENER;
}

function listenerMatch(l: Listener, p: Patch): boolean {
  const m = p.match.listener;
  if (!m) return true;
  if (m.name && m.name !== l.name) return false;
  if (p.applyTo !== 'LISTENER' && isVirtual(l)) return true;
  if (m.portNumber) {
    const port = ((l.address as Obj | undefined)?.socket_address as Obj | undefined)?.port_value;
    if (port !== m.portNumber) return false;
  }
  return true;
}

function chainMatch(l: Listener, fc: Obj, p: Patch): boolean {
  const m = p.match.listener;
  const fcm = fc.filter_chain_match as Obj | undefined;
  if (!m)
    return l.name !== VIRTUAL_INBOUND_LISTENER || inboundPortAllowed(p, (fcm?.destination_port as { value?: number } | undefined)?.value);
  const dport = (fcm?.destination_port as { value?: number } | undefined)?.value;
  if (isVirtual(l) && m.portNumber && dport !== m.portNumber) return false;
  if (l.name === VIRTUAL_INBOUND_LISTENER && !inboundPortAllowed(p, dport)) return false;
  const c = m.filterChain;
  if (!c) return true;
  if (c.name && c.name !== fc.name) return false;
  if (c.sni && !((fcm?.server_names as string[] | undefined) ?? []).includes(c.sni)) return false;
  if (c.transportProtocol && fcm?.transport_protocol !== c.transportProtocol) return false;
  if (c.applicationProtocols) {
    const have = (fcm?.application_protocols as string[] | undefined) ?? [];
    if (!c.applicationProtocols.split(',').every((a) => have.includes(a))) return false;
  }
  if (c.destinationPort && dport !== c.destinationPort) return false;
  return true;
}

const filterMatchName = (p: Patch) => p.match.listener?.filterChain?.filter?.name;
const subFilterName = (p: Patch) => p.match.listener?.filterChain?.filter?.subFilter?.name;
const listenerFilterName = (p: Patch) => p.match.listener?.listenerFilter;

/** MERGE of a filter: the patch's name replaces, its typed config merges into one of the same type (else kept). */
function mergeFilter(f: Obj, p: Patch): Obj {
  const v = p.value ?? {};
  if (!f.typed_config) return f;
  const tc = v.typed_config as Obj | undefined;
  const merged = tc ? mergeTypedConfig(f.typed_config as Obj, tc, p.op === 'MERGE_AND_REPLACE_LIST') : undefined;
  return { ...f, ...(v.name ? { name: v.name } : {}), ...(merged ? { typed_config: merged } : {}) };
}

/** The list operations shared by listener, network and HTTP filters; MERGE is the caller's. */
function patchList(list: Obj[], p: Patch, matchName: string | undefined): Obj[] {
  const matches = (x: Obj) => matchName === undefined || x.name === matchName;
  return insertAt(list, p, matchName !== undefined, matches);
}

function patchHttpFilters(hcm: Obj, ctx: PatchContext, l: Listener, fc: Obj, f: Obj, patches: readonly Patch[]): Obj {
  let filters = [...((hcm.http_filters as Obj[] | undefined) ?? [])];
  const here = patches.filter((p) => contextMatches(p, ctx) && listenerMatch(l, p) && chainMatch(l, fc, p) && filterMatch(f, p));
  for (const p of here) if (!isMerge(p)) filters = patchList(filters, p, subFilterName(p));
  filters = filters.map((h) =>
    here.reduce((acc, p) => {
      if (!isMerge(p)) return acc;
      const sub = subFilterName(p);
      return sub === undefined || sub === acc.name ? mergeFilter(acc, p) : acc;
    }, h),
  );
  return { ...hcm, http_filters: filters };
}

function filterMatch(f: Obj, p: Patch): boolean {
  const name = filterMatchName(p);
  return name === undefined || name === f.name;
}

function patchChain(l: Listener, fc: Obj, ctx: PatchContext, patches: Patches): Obj | undefined {
  let chain = fc;
  for (const p of patches.get('FILTER_CHAIN') ?? []) {
    if (!contextMatches(p, ctx) || !listenerMatch(l, p) || !chainMatch(l, chain, p)) continue;
    if (p.op === 'REMOVE') return undefined;
    if (isMerge(p)) chain = mergeChain(chain, p);
  }
  let filters = [...((chain.filters as Obj[] | undefined) ?? [])];
  const network = (patches.get('NETWORK_FILTER') ?? []).filter(
    (p) => contextMatches(p, ctx) && listenerMatch(l, p) && chainMatch(l, chain, p),
  );
  for (const p of network) if (!isMerge(p)) filters = patchList(filters, p, filterMatchName(p));
  filters = filters.map((f) => {
    let out = network.reduce((acc, p) => (isMerge(p) && filterMatch(acc, p) ? mergeFilter(acc, p) : acc), f);
    const http = patches.get('HTTP_FILTER') ?? [];
    // istiod patches HTTP filters in a filter named as the HCM whose config reads as one.
    if (out.name === HCM && http.length > 0 && (out.typed_config as Obj | undefined)?.['@type'] === HCM_URL) {
      out = { ...out, typed_config: patchHttpFilters(out.typed_config as Obj, ctx, l, chain, out, http) };
    }
    return out;
  });
  return { ...chain, filters };
}

/** A FILTER_CHAIN MERGE: a transport socket of the same name merges its typed config; the rest merges as a message. */
function mergeChain(fc: Obj, p: Patch): Obj {
  const v = p.value ?? {};
  const ts = v.transport_socket as Obj | undefined;
  const cur = fc.transport_socket as Obj | undefined;
  if (ts && cur && ts.name === cur.name && cur.typed_config && ts.typed_config) {
    const merged = mergeTypedConfig(cur.typed_config as Obj, ts.typed_config as Obj, p.op === 'MERGE_AND_REPLACE_LIST');
    return merged ? { ...fc, transport_socket: { ...cur, typed_config: merged } } : fc;
  }
  return mergeMessage(FILTER_CHAIN, fc, v, p.op === 'MERGE_AND_REPLACE_LIST');
}

function patchListener(l: Listener, ctx: PatchContext, patches: Patches): Listener | undefined {
  let out = l;
  for (const p of patches.get('LISTENER') ?? []) {
    if (!contextMatches(p, ctx) || !listenerMatch(out, p)) continue;
    if (p.op === 'REMOVE') return undefined;
    if (isMerge(p)) out = mergeMessage(LISTENER, out, p.value ?? {}, p.op === 'MERGE_AND_REPLACE_LIST');
  }
  let lf = [...((out.listener_filters as Obj[] | undefined) ?? [])];
  for (const p of patches.get('LISTENER_FILTER') ?? []) {
    if (!contextMatches(p, ctx) || !listenerMatch(out, p)) continue;
    if (isMerge(p)) {
      if (listenerFilterName(p) !== undefined) lf = lf.map((f) => (f.name === listenerFilterName(p) ? mergeFilter(f, p) : f));
    } else lf = patchList(lf, p, listenerFilterName(p));
  }
  const chains = ((out.filter_chains as Obj[] | undefined) ?? []).flatMap((fc) => {
    const c = fc.filters ? patchChain(out, fc, ctx, patches) : fc;
    return c ? [c] : [];
  });
  for (const p of patches.get('FILTER_CHAIN') ?? []) {
    if (p.op === 'ADD' && contextMatches(p, ctx) && listenerMatch(out, p) && p.value) chains.push(structuredClone(p.value));
  }
  const dfc = out.default_filter_chain as Obj | undefined;
  const dflt = dfc?.filters ? patchChain(out, dfc, ctx, patches) : dfc;
  const { default_filter_chain: _d, ...rest } = out;
  return {
    ...rest,
    ...(lf.length > 0 || out.listener_filters ? { listener_filters: lf } : {}),
    filter_chains: chains,
    ...(dflt ? { default_filter_chain: dflt } : {}),
  };
}

export function applyToListeners(
  listeners: readonly EnvoyResource[],
  patches: Patches,
  contextOf: (name: string) => PatchContext,
  addContext: PatchContext,
  memo: PatchMemo,
): EnvoyResource[] {
  const out: EnvoyResource[] = [];
  for (const r of listeners) {
    const l = memo(r.message, () => patchListener(r.message as Listener, contextOf(r.name), patches) ?? null);
    if (l) out.push(l === r.message ? r : { name: r.name, message: l as EnvoyResource['message'] });
  }
  for (const p of patches.get('LISTENER') ?? []) {
    if (p.op !== 'ADD' || !addsIn(p, addContext) || !p.value) continue;
    const name = String(p.value.name ?? '');
    if (name) out.push({ name, message: structuredClone(p.value) as EnvoyResource['message'] });
  }
  return out;
}
