import { insertAt } from './envoy-filter-lists.js';
import { mergeMessage } from './envoy-filter-merge.js';
import {
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

/** istiod's route patches (rc_patch.go): ROUTE_CONFIGURATION, VIRTUAL_HOST, HTTP_ROUTE. */

const RC = 'envoy.config.route.v3.RouteConfiguration';
const VHOST = 'envoy.config.route.v3.VirtualHost';
const ROUTE = 'envoy.config.route.v3.Route';

/**
 * The port a route configuration serves, read from its name: `inbound|9080||`, vmesh's `host:9080`, Istio's
 * `9080`, or a gateway's `http.8080` / `https.443.server`.
 */
function portOf(name: string, gateway: boolean): number {
  const inbound = gateway ? undefined : inboundPortOf(name);
  if (inbound !== undefined) return inbound;
  const parts = name.split(gateway ? '.' : ':');
  const n = gateway ? parts[1] : parts[parts.length - 1];
  return /^\d+$/.test(n ?? '') ? Number(n) : 0;
}

function rcMatch(rc: Obj, p: Patch, ctx: PatchContext): boolean {
  const name = String(rc.name ?? '');
  if (ctx === 'SIDECAR_INBOUND' && !inboundPortAllowed(p, inboundPortOf(name))) return false;
  const m = p.match.routeConfiguration;
  if (!m) return true;
  if (m.name && m.name !== name) return false;
  const gateway = ctx === 'GATEWAY';
  if (m.portNumber && m.portNumber !== portOf(name, gateway)) return false;
  if (gateway) {
    const [, , ...server] = name.split('.');
    if (m.portName && m.portName !== server[0]) return false;
    if (m.gateway && m.gateway !== server.slice(1).join('.')) return false;
  }
  return true;
}

function vhostMatch(vh: Obj, p: Patch): boolean {
  const m = p.match.routeConfiguration?.vhost;
  if (!m) return true;
  return (!m.name || m.name === vh.name) && (!m.domainName || ((vh.domains as string[] | undefined) ?? []).includes(m.domainName));
}

function routeMatch(r: Obj, p: Patch): boolean {
  const m = p.match.routeConfiguration?.vhost?.route;
  if (!m) return true;
  if (m.name && m.name !== r.name) return false;
  const action = m.action ?? 'ANY';
  if (action === 'ANY') return true;
  const has = { ROUTE: 'route', REDIRECT: 'redirect', DIRECT_RESPONSE: 'direct_response' }[action];
  return r[has] !== undefined;
}

function patchRoutes(vh: Obj, routePatches: readonly Patch[]): Obj {
  let routes = ((vh.routes as Obj[] | undefined) ?? []).flatMap((r) => {
    let out: Obj | undefined = r;
    for (const p of routePatches) {
      if (!out || !routeMatch(out, p)) continue;
      if (p.op === 'REMOVE') out = undefined;
      else if (isMerge(p)) out = mergeMessage(ROUTE, out, p.value ?? {}, p.op === 'MERGE_AND_REPLACE_LIST');
    }
    return out ? [out] : [];
  });
  for (const p of routePatches) {
    const hasMatch = p.match.routeConfiguration?.vhost?.route !== undefined;
    if (p.op === 'INSERT_FIRST') {
      if (!hasMatch || routes.some((r) => routeMatch(r, p))) routes = [structuredClone(p.value ?? {}), ...routes];
    } else if (p.op === 'ADD' || p.op === 'INSERT_BEFORE' || p.op === 'INSERT_AFTER') {
      routes = insertAt(routes, p, hasMatch, (r) => routeMatch(r, p));
    }
  }
  return { ...vh, routes };
}

function patchRouteConfig(rc: Obj, ctx: PatchContext, patches: Patches): Obj {
  const applies = (p: Patch) => contextMatches(p, ctx) && rcMatch(rc, p, ctx);
  let out = rc;
  for (const p of patches.get('ROUTE_CONFIGURATION') ?? []) {
    if (isMerge(p) && applies(p)) out = mergeMessage(RC, out, p.value ?? {}, p.op === 'MERGE_AND_REPLACE_LIST');
  }
  const vhPatches = (patches.get('VIRTUAL_HOST') ?? []).filter(applies);
  const routePatches = (patches.get('HTTP_ROUTE') ?? []).filter(applies);
  if (vhPatches.length === 0 && routePatches.length === 0) return out;
  const vhosts = ((out.virtual_hosts as Obj[] | undefined) ?? []).flatMap((v) => {
    let vh = v;
    for (const p of vhPatches) {
      if (!vhostMatch(vh, p)) continue;
      if (p.op === 'REMOVE') return [];
      if (isMerge(p)) vh = mergeMessage(VHOST, vh, p.value ?? {}, p.op === 'MERGE_AND_REPLACE_LIST');
      else if (p.op === 'REPLACE') vh = structuredClone(p.value ?? {});
    }
    const mine = routePatches.filter((p) => vhostMatch(vh, p));
    return [mine.length > 0 ? patchRoutes(vh, mine) : vh];
  });
  for (const p of vhPatches) if (p.op === 'ADD' && p.value) vhosts.push(structuredClone(p.value));
  return { ...out, virtual_hosts: vhosts };
}

export function applyToRoutes(
  routes: readonly EnvoyResource[],
  patches: Patches,
  contextOf: (name: string) => PatchContext,
  memo: PatchMemo,
): EnvoyResource[] {
  return routes.map((r) => {
    const m = memo(r.message, () => patchRouteConfig(r.message as Obj, contextOf(r.name), patches)) ?? r.message;
    return m === r.message ? r : { name: r.name, message: m as EnvoyResource['message'] };
  });
}
