import type { RetryPolicy } from '../../generated/envoy/config/route/v3/RetryPolicy.js';
import type { Route } from '../../generated/envoy/config/route/v3/Route.js';
import type { RouteAction } from '../../generated/envoy/config/route/v3/RouteAction.js';
import type { RouteMatch } from '../../generated/envoy/config/route/v3/RouteMatch.js';
import { FAULT_FILTER, millionths } from './route-action.js';
import { typedConfig } from './typed-config.js';

/**
 * The sidecar's Envoy routes, cut down to what gRPC's xDS client implements (gRFC A28 matching and weighted
 * clusters, A31 timeouts, A33 fault injection, A42 hash policies, A44 retries), so proxyless clients and
 * sidecars share one route translation. Anything else is left out rather than sent: gRPC rejects a whole
 * RouteConfiguration for one action it does not know (redirect, direct_response), and silently ignores the
 * rest, which would make `proxy-config` show routing the client does not do.
 */

type HashPolicy = NonNullable<RouteAction['hash_policy']>[number];

/** The retry conditions gRPC knows (A44); Envoy's HTTP-level ones (connect-failure, 5xx...) mean nothing to it. */
const GRPC_RETRY_ON = new Set(['cancelled', 'deadline-exceeded', 'internal', 'resource-exhausted', 'unavailable']);
/** Match fields gRPC evaluates; `query_parameters` is handled apart (a gRPC request has no query). */
const MATCH_FIELDS = ['prefix', 'path', 'safe_regex', 'case_sensitive', 'headers', 'runtime_fraction'] as const;

function pickMatch(from: RouteMatch): RouteMatch {
  const out: RouteMatch = {};
  const copy = <K extends keyof RouteMatch>(k: K) => {
    if (from[k] !== undefined) out[k] = from[k];
  };
  for (const k of MATCH_FIELDS) copy(k);
  return out;
}

/**
 * A42 hashes on a header or on the channel (`io.grpc.channel_id`): the nearest thing a gRPC client has to
 * Istio's useSourceIp, since each client process is one source. Cookies and query parameters do not exist in gRPC.
 */
function grpcHashPolicy(policies: readonly HashPolicy[]): HashPolicy[] {
  const out: HashPolicy[] = [];
  for (const p of policies) {
    if (p.header) out.push({ header: p.header });
    else if (p.connection_properties?.source_ip) out.push({ filter_state: { key: 'io.grpc.channel_id' } });
  }
  return out;
}

/** A44: gRPC status conditions only, retry count; none left means no retries (gRPC's default). */
function grpcRetryPolicy(policy: RetryPolicy | null | undefined): RetryPolicy | undefined {
  if (!policy) return undefined;
  const on = String(policy.retry_on ?? '')
    .split(',')
    .filter((c) => GRPC_RETRY_ON.has(c));
  if (on.length === 0) return undefined;
  return { retry_on: on.join(','), num_retries: policy.num_retries };
}

function grpcAction(route: RouteAction): RouteAction {
  const out: RouteAction = {};
  if (route.cluster !== undefined) out.cluster = route.cluster;
  else {
    const clusters = (route.weighted_clusters?.clusters ?? []).map((c) => ({ name: c.name, weight: c.weight }));
    out.weighted_clusters = { clusters };
  }
  const retry = grpcRetryPolicy(route.retry_policy);
  if (retry) out.retry_policy = retry;
  const hashes = grpcHashPolicy(route.hash_policy ?? []);
  if (hashes.length > 0) out.hash_policy = hashes;
  // A31: grpc_timeout_header_max caps the call's deadline (zero: the application's deadline stands).
  const max = route.max_stream_duration?.grpc_timeout_header_max;
  if (max && (Number(max.seconds ?? 0) > 0 || Number(max.nanos ?? 0) > 0)) out.max_stream_duration = { grpc_timeout_header_max: max };
  return out;
}

/** The HTTP status a sidecar would answer instead of forwarding: a direct response's, or a redirect's code. */
function answeredStatus(route: Route): number | undefined {
  const direct = route.direct_response;
  if (direct) return Number(direct.status);
  const redirect = route.redirect;
  if (!redirect) return undefined;
  const codes: Record<string, number> = {
    MOVED_PERMANENTLY: 301,
    FOUND: 302,
    SEE_OTHER: 303,
    TEMPORARY_REDIRECT: 307,
    PERMANENT_REDIRECT: 308,
  };
  return codes[String(redirect.response_code ?? 'MOVED_PERMANENTLY')] ?? 301;
}

/**
 * The gRPC form of one sidecar route, or undefined for a query parameter match (never true for a gRPC request)
 * or a JWT-claim match (a proxyless client verifies no token, so it has no claims).
 * gRPC has no redirect or direct response: such a route aborts every call with the route's HTTP status (fault
 * injection, A33), which the client maps to a gRPC status as it would the sidecar's answer; `serviceCluster`
 * only fills the route's required cluster.
 */
export function grpcRoute(route: Route, serviceCluster: string): Route | undefined {
  const match = route.match ?? {};
  if (match.query_parameters !== undefined || match.dynamic_metadata !== undefined) return undefined;
  const answered = answeredStatus(route);
  const out: Route = {
    ...(route.name !== undefined ? { name: route.name } : {}),
    match: pickMatch(match),
    route: answered === undefined ? grpcAction(route.route ?? {}) : { cluster: serviceCluster },
  };
  const fault =
    answered === undefined
      ? route.typed_per_filter_config?.[FAULT_FILTER]
      : typedConfig('fault', { abort: { http_status: answered, percentage: millionths(100) } });
  if (fault) out.typed_per_filter_config = { [FAULT_FILTER]: fault };
  return out;
}

/** Whether routes carry fault configs: the listener then needs the fault filter ahead of the router. */
export function usesFault(routes: readonly Route[]): boolean {
  return routes.some((r) => FAULT_FILTER in (r.typed_per_filter_config ?? {}));
}
