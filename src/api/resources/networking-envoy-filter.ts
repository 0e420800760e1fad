import { z } from 'zod';
import { EXTERNAL_HTTP_FILTERS, externalFailsOpen } from '../envoy-extensions.js';
import { type ProtoJsonResult, readProtoJson } from '../envoy-proto-json.js';
import type { Checker } from './checker.js';
import { labelKeyProblem, labelValueProblem, regexProblem } from './names.js';
import { type DeepReadonly, int, str, stringMap } from './schema-helpers.js';
import { checkTargetRefs, targetRef } from './target-ref.js';

/**
 * EnvoyFilter (networking.istio.io/v1alpha3), validated as Istio validates it: the CRD schema, ValidateEnvoyFilter,
 * and each patch `value` decoded strictly as the Envoy type it patches. The translator applies the patches to
 * the resources it serves (xds/translate/envoy-filter*.ts). An extension vmesh has no proto for is refused by
 * name; one that calls a service the proxy has no client for is accepted with a warning saying what the proxy
 * does instead (envoy-extensions.ts); BOOTSTRAP and EXTENSION_CONFIG patches are refused (vmesh serves neither).
 */

const subFilter = z.strictObject({ name: str.optional() });
const filterMatch = z.strictObject({ name: str.optional(), subFilter: subFilter.optional() });

const listenerMatch = z.strictObject({
  portNumber: int.optional(),
  portName: str.optional(),
  filterChain: z
    .strictObject({
      name: str.optional(),
      sni: str.optional(),
      transportProtocol: str.optional(),
      applicationProtocols: str.optional(),
      filter: filterMatch.optional(),
      destinationPort: int.optional(),
    })
    .optional(),
  listenerFilter: str.optional(),
  name: str.optional(),
});

const routeConfigurationMatch = z.strictObject({
  portNumber: int.optional(),
  portName: str.optional(),
  gateway: str.optional(),
  vhost: z
    .strictObject({
      name: str.optional(),
      domainName: str.optional(),
      route: z
        .strictObject({ name: str.optional(), action: z.enum(['ANY', 'ROUTE', 'REDIRECT', 'DIRECT_RESPONSE']).optional() })
        .optional(),
    })
    .optional(),
  name: str.optional(),
});

const clusterMatch = z.strictObject({ portNumber: int.optional(), service: str.optional(), subset: str.optional(), name: str.optional() });

const waypointMatch = z.strictObject({
  filter: filterMatch.optional(),
  route: z.strictObject({ name: str.optional() }).optional(),
  portNumber: int.optional(),
});

const APPLY_TO = [
  'INVALID',
  'LISTENER',
  'FILTER_CHAIN',
  'NETWORK_FILTER',
  'HTTP_FILTER',
  'ROUTE_CONFIGURATION',
  'VIRTUAL_HOST',
  'HTTP_ROUTE',
  'CLUSTER',
  'EXTENSION_CONFIG',
  'BOOTSTRAP',
  'LISTENER_FILTER',
] as const;

const OPERATIONS = [
  'INVALID',
  'MERGE',
  'ADD',
  'REMOVE',
  'INSERT_BEFORE',
  'INSERT_AFTER',
  'INSERT_FIRST',
  'REPLACE',
  'MERGE_AND_REPLACE_LIST',
] as const;

const configPatch = z.strictObject({
  applyTo: z.enum(APPLY_TO).optional(),
  match: z
    .strictObject({
      context: z.enum(['ANY', 'SIDECAR_INBOUND', 'SIDECAR_OUTBOUND', 'GATEWAY', 'WAYPOINT']).optional(),
      proxy: z.strictObject({ proxyVersion: str.optional(), metadata: stringMap.optional() }).optional(),
      listener: listenerMatch.optional(),
      routeConfiguration: routeConfigurationMatch.optional(),
      cluster: clusterMatch.optional(),
      waypoint: waypointMatch.optional(),
    })
    .optional(),
  patch: z
    .strictObject({
      operation: z.enum(OPERATIONS).optional(),
      value: z.record(z.string(), z.unknown()).optional(),
      filterClass: z.enum(['UNSPECIFIED', 'AUTHN', 'AUTHZ', 'STATS']).optional(),
    })
    .optional(),
});

export const envoyFilterSpec = z.strictObject({
  workloadSelector: z.strictObject({ labels: stringMap.optional() }).optional(),
  targetRefs: z.array(targetRef).optional(),
  configPatches: z.array(configPatch).optional(),
  priority: int.optional(),
});

export type EnvoyFilterSpec = DeepReadonly<z.output<typeof envoyFilterSpec>>;
export type ConfigPatch = NonNullable<EnvoyFilterSpec['configPatches']>[number];
export type ApplyTo = (typeof APPLY_TO)[number];

/** The Envoy message each kind of patch value is. */
const PATCH_TYPES: Partial<Record<ApplyTo, string>> = {
  LISTENER: 'envoy.config.listener.v3.Listener',
  FILTER_CHAIN: 'envoy.config.listener.v3.FilterChain',
  NETWORK_FILTER: 'envoy.config.listener.v3.Filter',
  HTTP_FILTER: 'envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter',
  ROUTE_CONFIGURATION: 'envoy.config.route.v3.RouteConfiguration',
  VIRTUAL_HOST: 'envoy.config.route.v3.VirtualHost',
  HTTP_ROUTE: 'envoy.config.route.v3.Route',
  CLUSTER: 'envoy.config.cluster.v3.Cluster',
  LISTENER_FILTER: 'envoy.config.listener.v3.ListenerFilter',
};

/** A patch's value as the Envoy message it patches (vmesh's encoder form), or why it is not one. */
export function patchValue(cp: ConfigPatch): ProtoJsonResult | undefined {
  const type = cp.applyTo && PATCH_TYPES[cp.applyTo];
  if (!type || cp.patch?.value === undefined) return undefined;
  return readProtoJson(type, cp.patch.value);
}

const HCM = 'envoy.filters.network.http_connection_manager';
const LOCAL_RATE_LIMIT_URL = 'type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit';
const LISTENER_CLASS = new Set(['LISTENER', 'FILTER_CHAIN', 'NETWORK_FILTER', 'HTTP_FILTER']);
const ROUTE_CLASS = new Set(['ROUTE_CONFIGURATION', 'VIRTUAL_HOST', 'HTTP_ROUTE']);
/** Istio's bound on a proxyVersion regex it compiles. */
const MAX_PROXY_VERSION = 1024;

function port(c: Checker, path: string, n: number | undefined): void {
  if (n !== undefined && (n < 1 || n > 65535)) c.report(path, `port must be between 1-65535 (got ${n})`);
}

/** The CRD's rules on `match`: one object type at most, and `waypoint` exactly when the context is WAYPOINT. */
function checkMatchShape(c: Checker, path: string, m: NonNullable<ConfigPatch['match']>): boolean {
  const types = (['listener', 'routeConfiguration', 'cluster', 'waypoint'] as const).filter((k) => m[k] !== undefined);
  if (types.length > 1) {
    c.report(path, `must match one object type (found ${types.join(' and ')})`);
    return false;
  }
  if ((m.context === 'WAYPOINT') !== (m.waypoint !== undefined)) {
    c.report(path, 'only support waypointMatch when context is WAYPOINT');
    return false;
  }
  port(c, `${path}.waypoint.portNumber`, m.waypoint?.portNumber);
  port(c, `${path}.listener.portNumber`, m.listener?.portNumber);
  port(c, `${path}.routeConfiguration.portNumber`, m.routeConfiguration?.portNumber);
  port(c, `${path}.cluster.portNumber`, m.cluster?.portNumber);
  return true;
}

type Problem = readonly [path: string, message: string];

/** ValidateEnvoyFilter's per-patch rules: the first problem of a patch, as Istio reports it. */
function patchProblem(c: Checker, path: string, cp: ConfigPatch): Problem | undefined {
  const m = cp.match;
  if (m && !checkMatchShape(c, `${path}.match`, m)) return undefined;
  // Istio leaves waypoint patches to the CRD's rules.
  if (m?.context === 'WAYPOINT') return undefined;
  if (cp.applyTo === undefined || cp.applyTo === 'INVALID') return [`${path}.applyTo`, 'Envoy filter: missing applyTo'];
  if (cp.patch === undefined) return [`${path}.patch`, 'Envoy filter: missing patch'];
  const op = cp.patch.operation;
  if (op === undefined || op === 'INVALID') return [`${path}.patch.operation`, 'Envoy filter: missing patch operation'];
  if (op !== 'REMOVE' && cp.patch.value === undefined)
    return [`${path}.patch.value`, 'Envoy filter: missing patch value for non-remove operation'];
  const version = m?.proxy?.proxyVersion;
  if (version) {
    if (version.length > MAX_PROXY_VERSION)
      c.warn(
        `${path}.match.proxy.proxyVersion`,
        `Envoy filter: proxyVersion match exceeds ${MAX_PROXY_VERSION} characters and will be ignored`,
      );
    else if (regexProblem(version))
      return [`${path}.match.proxy.proxyVersion`, `Envoy filter: invalid regex for proxy version (${regexProblem(version)})`];
  }
  const hasType = m !== undefined && (m.listener ?? m.routeConfiguration ?? m.cluster) !== undefined;
  if (LISTENER_CLASS.has(cp.applyTo) && hasType) {
    if (!m.listener) return [`${path}.match`, 'Envoy filter: applyTo for listener class objects cannot have non listener match'];
    const f = m.listener.filterChain?.filter;
    if (!f) return undefined;
    const fp = `${path}.match.listener.filterChain.filter`;
    if (cp.applyTo === 'LISTENER' || cp.applyTo === 'FILTER_CHAIN')
      c.warn(fp, `Envoy filter: filter match has no effect when used with ${cp.applyTo}`);
    if (!f.name) return [`${fp}.name`, 'Envoy filter: filter match has no name to match on'];
    if (f.subFilter) {
      if (cp.applyTo !== 'HTTP_FILTER')
        return [`${fp}.subFilter`, 'Envoy filter: subfilter match can be used with applyTo HTTP_FILTER only'];
      if (f.name !== HCM && f.name !== 'envoy.http_connection_manager')
        return [`${fp}.name`, `Envoy filter: subfilter match requires filter match with ${HCM}`];
      if (!f.subFilter.name) return [`${fp}.subFilter.name`, 'Envoy filter: subfilter match has no name to match on'];
    }
  } else if (ROUTE_CLASS.has(cp.applyTo) && hasType && !m.routeConfiguration) {
    return [`${path}.match`, 'Envoy filter: applyTo for http route class objects cannot have non route configuration match'];
  } else if (cp.applyTo === 'CLUSTER' && hasType && !m.cluster) {
    return [`${path}.match`, 'Envoy filter: applyTo for cluster class objects cannot have non cluster match'];
  }
  return undefined;
}

export function checkEnvoyFilter(spec: EnvoyFilterSpec, c: Checker): void {
  const sel = spec.workloadSelector;
  if (sel) {
    for (const [k, v] of Object.entries(sel.labels ?? {})) {
      const p = `spec.workloadSelector.labels[${JSON.stringify(k)}]`;
      if (k === '') c.report(p, 'empty key is not supported in selector');
      else if (k.includes('*') || v.includes('*')) c.report(p, 'wildcard is not supported in selector');
      else if (c.check(p, labelKeyProblem(k))) c.check(p, labelValueProblem(k, v));
    }
    if (Object.keys(sel.labels ?? {}).length === 0)
      c.warn(
        'spec.workloadSelector',
        'Envoy filter: workload selector specified without labels, will be applied to all services in namespace',
      );
  }
  if (sel !== undefined && spec.targetRefs !== undefined)
    c.report('spec.targetRefs', 'only one of targetRefs or workloadSelector can be set');
  else checkTargetRefs(spec, c);
  spec.configPatches?.forEach((cp, i) => {
    const path = `spec.configPatches[${i}]`;
    const problem = patchProblem(c, path, cp);
    if (problem) c.report(...problem);
    else checkPatchValue(c, path, cp);
  });
}

function checkPatchValue(c: Checker, path: string, cp: ConfigPatch): void {
  if (cp.applyTo === 'BOOTSTRAP' || cp.applyTo === 'EXTENSION_CONFIG') {
    c.unsupported(
      `${path}.applyTo`,
      `${cp.applyTo} patches are not supported: vmesh's proxy has no Envoy bootstrap and vmesh serves no extension configs (ECDS)`,
    );
    return;
  }
  if (cp.patch?.operation === 'REMOVE') return;
  const r = patchValue(cp);
  if (!r) return;
  if (!r.ok) {
    const p = `${path}.patch.value${r.path}`;
    if (r.unknownType)
      c.unsupported(p, `${r.message}; use VirtualService, DestinationRule, AuthorizationPolicy or LocalRateLimit (vmesh.io)`);
    else c.report(p, `Envoy filter: ${r.message}`);
    return;
  }
  for (const [at, cfg] of typedConfigs(r.value, '')) {
    if (cfg['@type'] === LOCAL_RATE_LIMIT_URL && cfg.enable_x_ratelimit_headers !== undefined && cfg.enable_x_ratelimit_headers !== 'OFF')
      c.notImplemented(`${path}.patch.value${at}.enable_x_ratelimit_headers`, "vmesh's proxy does not send x-ratelimit-* headers");
    const ext = EXTERNAL_HTTP_FILTERS.get(String(cfg['@type']));
    if (!ext) continue;
    c.notImplemented(
      `${path}.patch.value${at}`,
      `vmesh's proxy has no client for ${ext.service}: it runs this filter as Envoy does when the service cannot be reached (${
        externalFailsOpen(ext, cfg) ? 'requests pass' : `every request is answered ${ext.status}`
      })`,
    );
  }
}

/** Every Any inside a patch value, with where it is. */
function typedConfigs(v: unknown, at: string, out: [string, Record<string, unknown>][] = []): [string, Record<string, unknown>][] {
  if (Array.isArray(v)) {
    v.forEach((x, i) => {
      typedConfigs(x, `${at}[${i}]`, out);
    });
  } else if (typeof v === 'object' && v !== null) {
    const o = v as Record<string, unknown>;
    if (typeof o['@type'] === 'string') out.push([at, o]);
    for (const [k, x] of Object.entries(o)) typedConfigs(x, `${at}.${k}`, out);
  }
  return out;
}
