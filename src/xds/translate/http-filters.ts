import type { Endpoint } from '../../api/model.js';
import type { Resource } from '../../api/resource.js';
import { canonicalHost, hostMatches } from '../../api/service-hosts.js';
import type { HttpFilter as EnvoyHttpFilter } from '../../generated/envoy/extensions/filters/network/http_connection_manager/v3/HttpFilter.js';
import type { StatusCode } from '../../generated/envoy/type/v3/StatusCode.js';
import type { Any } from '../../generated/google/protobuf/Any.js';
import { ErrorCode, vmeshError } from '../../lib/errors.js';
import { protos } from '../protos.js';
import type { TranslateInput } from './input.js';
import { STATS_FILTER, statsConfigFor } from './metrics.js';
import { CORS_FILTER, corsSupported, FAULT_FILTER, protoDuration } from './route-action.js';
import { localWorkloadPorts, routeFeatures } from './routes.js';
import type { TelemetryScope } from './telemetry-scope.js';
import { typedConfig } from './typed-config.js';
import { type WasmSite, wasmHttpFilters } from './wasm-plugin.js';

export const LOCAL_RATE_LIMIT_FILTER = 'envoy.filters.http.local_ratelimit';
export const ROUTER_FILTER = 'envoy.filters.http.router';

/** The filters the translator writes always carry a name and a typed config. */
export type HttpFilter = EnvoyHttpFilter & { readonly name: string; readonly typed_config: Any };

export interface HttpFilterOptions {
  readonly direction: 'outbound' | 'inbound' | 'gateway';
  /** The service port (outbound), workload port (inbound) or gateway server port. */
  readonly port: number;
  /** Outbound: the route configuration behind the filters (its per-route configs decide which filters run). */
  readonly route?: string;
  /** Inbound: the workloads served on `port`; by default the node's workloads listening on it. */
  readonly workloads?: readonly Endpoint[];
}

function sameWorkload(a: Endpoint, b: Endpoint): boolean {
  return a.workload === b.workload && a.namespace === b.namespace && a.address === b.address;
}

/** How closely a LocalRateLimit targets a workload: 2 by selector or host, 1 its namespace, 0 the mesh; -1 not at all. */
function rank(input: TranslateInput, rl: Resource<'LocalRateLimit'>, w: Endpoint): number {
  const ns = rl.metadata.namespace;
  const specific = rl.spec.selector !== undefined || rl.spec.targetHosts !== undefined;
  if (ns !== w.namespace) return ns === input.mesh.rootNamespace && !specific ? 0 : -1;
  if (!specific) return 1;
  if (rl.spec.selector) {
    return Object.entries(rl.spec.selector.matchLabels ?? {}).every(([k, v]) => w.labels[k] === v) ? 2 : -1;
  }
  const patterns = (rl.spec.targetHosts ?? []).map((h) => canonicalHost(h, ns, input.mesh));
  for (const s of input.model.services.values()) {
    if (patterns.some((p) => hostMatches(p, s.hostname)) && s.endpoints.some((e) => sameWorkload(e, w))) return 2;
  }
  return -1;
}

/**
 * The LocalRateLimit that applies to these workloads: the most specific one (selector or targetHosts, then
 * namespace-wide, then mesh-wide from the root namespace), ties to the first name. Undefined when none does.
 */
export function localRateLimitFor(input: TranslateInput, workloads: readonly Endpoint[]): Resource<'LocalRateLimit'> | undefined {
  let best: { rl: Resource<'LocalRateLimit'>; rank: number } | undefined;
  for (const rl of input.config.localRateLimits) {
    const r = Math.max(-1, ...workloads.map((w) => rank(input, rl, w)));
    if (r < 0) continue;
    const key = `${rl.metadata.namespace}/${rl.metadata.name}`;
    const bestKey = best ? `${best.rl.metadata.namespace}/${best.rl.metadata.name}` : '';
    if (!best || r > best.rank || (r === best.rank && key < bestKey)) best = { rl, rank: r };
  }
  return best?.rl;
}

/** Envoy's HttpStatus takes only the codes its StatusCode enum names; others would be NACKed. */
function statusName(rl: Resource<'LocalRateLimit'>): StatusCode {
  const name = protos().root.lookupEnum('envoy.type.v3.StatusCode').valuesById[rl.spec.statusCode];
  if (name === undefined) {
    throw vmeshError(
      ErrorCode.UnsupportedField,
      `LocalRateLimit ${rl.metadata.namespace}/${rl.metadata.name}: spec.statusCode: ${rl.spec.statusCode} is not a status Envoy can send (e.g. 429, 503)`,
    );
  }
  // A name of the enum, read from the enum itself.
  return name as StatusCode;
}

const ALWAYS = { numerator: 100, denominator: 'HUNDRED' } as const;

/** The HTTP local_ratelimit filter config: one token bucket per proxy, enabled and enforced for every request. */
export function localRateLimitConfig(rl: Resource<'LocalRateLimit'>, port: number): Any {
  const b = rl.spec.tokenBucket;
  return typedConfig('httpLocalRateLimit', {
    stat_prefix: `local_rate_limit_${port}`,
    status: { code: statusName(rl) },
    token_bucket: { max_tokens: b.maxTokens, tokens_per_fill: { value: b.tokensPerFill }, fill_interval: protoDuration(b.fillInterval) },
    filter_enabled: { runtime_key: 'local_rate_limit_enabled', default_value: ALWAYS },
    filter_enforced: { runtime_key: 'local_rate_limit_enforced', default_value: ALWAYS },
  });
}

/**
 * Whose traffic a listener carries, for WasmPlugin selection. The outbound side of a host is shared by all its
 * workloads: a plugin selecting any of them applies to it (never less than Istio denies). A plugin attached to
 * a Service (targetRefs) is about calls to it, so only the inbound side names the workload.
 */
function wasmSite(input: TranslateInput, opts: HttpFilterOptions): WasmSite {
  const node = { namespace: input.node.namespace, labels: input.node.labels };
  if (opts.direction === 'gateway') return { mode: 'CLIENT', port: opts.port, subjects: [node] };
  if (opts.direction === 'outbound') {
    const local = input.node.workloads.map((w) => ({ namespace: w.namespace, labels: w.labels }));
    return { mode: 'CLIENT', port: opts.port, subjects: [node, ...local] };
  }
  const workloads =
    opts.workloads ??
    localWorkloadPorts(input)
      .filter((l) => l.port === opts.port)
      .map((l) => l.workload);
  return {
    mode: 'SERVER',
    port: opts.port,
    subjects: workloads.map((w) => ({ namespace: w.namespace, labels: w.labels, workload: w.workload })),
  };
}

/**
 * The HTTP filters of one HttpConnectionManager, in order: the deny-all filters standing in for the fail-closed
 * WasmPlugins that select it (wasm-plugin.ts; behind the listeners' jwt_authn and RBAC, as the proxy runs its
 * RBAC filters in a row anyway), fault (empty, so each route's own fault config applies; only when a route behind it injects faults), CORS (likewise, when its protos are loaded),
 * local_ratelimit (inbound, when a LocalRateLimit selects the workloads), istio.stats (when Telemetry overrides
 * metrics for this side) and the router last. RBAC is the
 * listeners' business: they put it in front.
 */
export function httpFiltersFor(input: TranslateInput, opts: HttpFilterOptions): HttpFilter[] {
  const filters: HttpFilter[] = [];
  filters.push(...wasmHttpFilters(input, wasmSite(input, opts)));
  let scope: TelemetryScope = { mode: 'CLIENT', namespace: input.node.namespace, labels: input.node.labels };
  if (opts.direction !== 'inbound') {
    const f = routeFeatures(input, opts.direction, opts.port, opts.route);
    if (f.fault) filters.push({ name: FAULT_FILTER, typed_config: typedConfig('fault', {}) });
    if (f.cors && corsSupported()) filters.push({ name: CORS_FILTER, typed_config: typedConfig('cors', {}) });
  } else {
    const workloads =
      opts.workloads ??
      localWorkloadPorts(input)
        .filter((l) => l.port === opts.port)
        .map((l) => l.workload);
    const rl = localRateLimitFor(input, workloads);
    if (rl) filters.push({ name: LOCAL_RATE_LIMIT_FILTER, typed_config: localRateLimitConfig(rl, opts.port) });
    // The inbound listener reports as its (first) workload, as its access log does.
    const w = workloads[0];
    scope = { mode: 'SERVER', namespace: w?.namespace ?? input.node.namespace, labels: w?.labels ?? {} };
  }
  const stats = statsConfigFor(input, scope);
  if (stats) filters.push({ name: STATS_FILTER, typed_config: stats });
  filters.push({ name: ROUTER_FILTER, typed_config: typedConfig('router', {}) });
  return filters;
}
