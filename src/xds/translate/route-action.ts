import type { Resource } from '../../api/resource.js';
import type { Destination, Headers, HttpRoute } from '../../api/resources/networking-virtual-service.js';
import { GRPC_STATUSES } from '../../api/resources/networking-virtual-service-check.js';
import { canonicalHost } from '../../api/service-hosts.js';
import type { HeaderValueOption } from '../../generated/envoy/config/core/v3/HeaderValueOption.js';
import type { DirectResponseAction } from '../../generated/envoy/config/route/v3/DirectResponseAction.js';
import type { RedirectAction } from '../../generated/envoy/config/route/v3/RedirectAction.js';
import type { RetryPolicy } from '../../generated/envoy/config/route/v3/RetryPolicy.js';
import type { Route } from '../../generated/envoy/config/route/v3/Route.js';
import type { RouteAction } from '../../generated/envoy/config/route/v3/RouteAction.js';
import type { HTTPFault } from '../../generated/envoy/extensions/filters/http/fault/v3/HTTPFault.js';
import type { Any } from '../../generated/google/protobuf/Any.js';
import { ErrorCode, vmeshError } from '../../lib/errors.js';
import { protos } from '../protos.js';
import { TYPE_URL_PREFIX } from '../type-urls.js';
import { findDestinationRule, hashPolicyFor, trafficPolicyFor } from './destination-rule.js';
import type { TranslateInput } from './input.js';
import { outboundClusterName } from './names.js';
import { type HttpMatch, stringMatcher, translateMatch } from './route-match.js';
import { typedConfig } from './typed-config.js';

type HashPolicy = NonNullable<RouteAction['hash_policy']>[number];
type ResponseCode = NonNullable<RedirectAction['response_code']>;

/** HTTP filter names: per-route configs are keyed by them, so routes and the filter chain must agree. */
export const FAULT_FILTER = 'envoy.filters.http.fault';
export const CORS_FILTER = 'envoy.filters.http.cors';
export const CORS_POLICY_TYPE = 'envoy.extensions.filters.http.cors.v3.CorsPolicy';
export const CORS_FILTER_TYPE = 'envoy.extensions.filters.http.cors.v3.Cors';

/**
 * The retry extensions' protos are not among the loaded ones, so their configs travel as raw Any: an empty
 * PreviousHostsPredicate, and PreviousPrioritiesConfig { update_frequency: 2 } (field 1, varint 2 = 08 02).
 */
const PREVIOUS_HOSTS = {
  name: 'envoy.retry_host_predicates.previous_hosts',
  typed_config: { type_url: `${TYPE_URL_PREFIX}envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate`, value: '' },
};
const PREVIOUS_PRIORITIES = {
  name: 'envoy.retry_priorities.previous_priorities',
  typed_config: {
    type_url: `${TYPE_URL_PREFIX}envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig`,
    value: Buffer.from([0x08, 0x02]).toString('base64'),
  },
};
/** Istio's default: retry twice on failures that never reached the application, and on 503. */
const DEFAULT_RETRY_ON = 'connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes';

const REDIRECT_CODES: Readonly<Record<number, ResponseCode>> = {
  301: 'MOVED_PERMANENTLY',
  302: 'FOUND',
  303: 'SEE_OTHER',
  307: 'TEMPORARY_REDIRECT',
  308: 'PERMANENT_REDIRECT',
};

/** Where the routes are built: the VirtualService they come from, the route config's port, downstream TLS. */
export interface RouteContext {
  readonly input: TranslateInput;
  readonly vs: Resource<'VirtualService'>;
  readonly port: number;
  /** The listener terminates TLS (a gateway HTTPS server): redirects without a scheme stay on https. */
  readonly tls: boolean;
}

export function protoDuration(ms: number): { seconds: number; nanos: number } {
  return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1_000_000 };
}

/** Istio's Percent (0..100, fractional) as an Envoy FractionalPercent in millionths. */
export function millionths(percent: number): { numerator: number; denominator: 'MILLION' } {
  return { numerator: Math.round(percent * 10_000), denominator: 'MILLION' };
}

/** Timeouts: 0 disables Envoy's 15s default (Istio's default); grpc-timeout headers are honoured up to it. */
function timeouts(ms: number): Required<Pick<RouteAction, 'timeout' | 'max_stream_duration'>> {
  const d = protoDuration(ms);
  return { timeout: d, max_stream_duration: { grpc_timeout_header_max: d } };
}

export interface Resolved {
  readonly hostname: string;
  readonly port: number;
  readonly subset: string;
  readonly cluster: string;
}

/** Istio's GetDestinationCluster: the given port, else the service's only port, else the port routed on. */
export function resolveDestination(d: Destination, ctx: Pick<RouteContext, 'input' | 'port'>, namespace: string): Resolved {
  const hostname = canonicalHost(d.host, namespace, ctx.input.mesh);
  const service = ctx.input.model.services.get(hostname);
  const only = service?.ports.length === 1 ? service.ports[0]?.number : undefined;
  const port = d.port?.number ?? only ?? ctx.port;
  const subset = d.subset ?? '';
  return { hostname, port, subset, cluster: outboundClusterName(port, subset, hostname) };
}

/** The consistent-hash key of the DestinationRule (merged for port and subset) the node sees for a destination. */
export function hashPolicyOf(input: TranslateInput, d: Pick<Resolved, 'hostname' | 'port' | 'subset'>): HashPolicy[] {
  const dr = findDestinationRule(input, d.hostname, input.node.namespace);
  return hashPolicyFor(trafficPolicyFor(dr, d.port, d.subset || undefined));
}

/**
 * Istio's retry.ConvertPolicy. Unset: two retries on connect failures, refused streams and 503, preferring
 * hosts not tried yet (not when hashing: the request belongs on its host). `attempts: 0` disables retries.
 * Status codes in retryOn go to retriable_status_codes.
 */
export function retryPolicy(retries: HttpRoute['retries'], consistentHash: boolean): RetryPolicy | undefined {
  if (retries && (retries.attempts ?? 0) <= 0) return undefined;
  let retryOn = DEFAULT_RETRY_ON;
  let codes: number[] = [503];
  if (retries?.retryOn !== undefined) {
    const parts = retries.retryOn
      .split(',')
      .map((p) => p.trim())
      .filter((p) => p !== '');
    codes = parts.filter((p) => /^[1-5]\d\d$/.test(p)).map(Number);
    const policies = parts.filter((p) => !/^[1-5]\d\d$/.test(p));
    if (codes.length > 0 && !policies.includes('retriable-status-codes')) policies.push('retriable-status-codes');
    retryOn = policies.join(',');
  }
  return {
    retry_on: retryOn,
    num_retries: { value: retries?.attempts ?? 2 },
    ...(retries?.perTryTimeout !== undefined ? { per_try_timeout: protoDuration(retries.perTryTimeout) } : {}),
    ...(retries?.retryRemoteLocalities ? { retry_priority: PREVIOUS_PRIORITIES } : {}),
    ...(consistentHash ? {} : { retry_host_predicate: [PREVIOUS_HOSTS] }),
    host_selection_retry_max_attempts: 5,
    ...(codes.length > 0 ? { retriable_status_codes: codes } : {}),
  };
}

interface HeaderLists {
  request_headers_to_add: HeaderValueOption[];
  request_headers_to_remove: string[];
  response_headers_to_add: HeaderValueOption[];
  response_headers_to_remove: string[];
}

/** Pseudo-headers and Host cannot be set as headers; Istio turns an authority "header" into a host rewrite. */
const isInternal = (name: string) => name.startsWith(':') || name.toLowerCase() === 'host';
const isAuthority = (name: string) => name.toLowerCase() === ':authority' || name.toLowerCase() === 'host';

function headerValues(values: Readonly<Record<string, string>> | undefined, append: boolean): HeaderValueOption[] {
  return Object.keys(values ?? {})
    .filter((k) => !isInternal(k))
    .sort()
    .map(
      (key): HeaderValueOption => ({
        header: { key, value: values?.[key] ?? '' },
        append_action: append ? 'APPEND_IF_EXISTS_OR_ADD' : 'OVERWRITE_IF_EXISTS_OR_ADD',
      }),
    );
}

function authorityOf(h: Headers | undefined): string | undefined {
  const pick = (m: Readonly<Record<string, string>> | undefined) => Object.entries(m ?? {}).find(([k]) => isAuthority(k))?.[1];
  return pick(h?.request?.set) ?? pick(h?.request?.add);
}

function headerLists(h: Headers | undefined): HeaderLists {
  return {
    request_headers_to_add: [...headerValues(h?.request?.set, false), ...headerValues(h?.request?.add, true)],
    request_headers_to_remove: (h?.request?.remove ?? []).filter((k) => !isInternal(k)),
    response_headers_to_add: [...headerValues(h?.response?.set, false), ...headerValues(h?.response?.add, true)],
    response_headers_to_remove: (h?.response?.remove ?? []).filter((k) => !isInternal(k)),
  };
}

function concatLists(a: HeaderLists, b: HeaderLists): HeaderLists {
  return {
    request_headers_to_add: [...a.request_headers_to_add, ...b.request_headers_to_add],
    request_headers_to_remove: [...a.request_headers_to_remove, ...b.request_headers_to_remove],
    response_headers_to_add: [...a.response_headers_to_add, ...b.response_headers_to_add],
    response_headers_to_remove: [...a.response_headers_to_remove, ...b.response_headers_to_remove],
  };
}

/** Only the non-empty lists, in a fixed order (the output is compared byte for byte). */
function nonEmpty(l: HeaderLists): Partial<HeaderLists> {
  const out: Partial<HeaderLists> = {};
  const keep = <K extends keyof HeaderLists>(k: K) => {
    if (l[k].length > 0) out[k] = l[k];
  };
  keep('request_headers_to_add');
  keep('request_headers_to_remove');
  keep('response_headers_to_add');
  keep('response_headers_to_remove');
  return out;
}

function dedupe<T>(policies: T[]): T[] {
  const seen = new Set<string>();
  return policies.filter((p) => {
    const key = JSON.stringify(p);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** RouteAction of a forwarding route; destination headers of a single destination join the route's own. */
function routeAction(http: HttpRoute, ctx: RouteContext, routeHeaders: HeaderLists): { action: RouteAction; headers: HeaderLists } {
  const ns = ctx.vs.metadata.namespace;
  const dests = http.route ?? [];
  const action: RouteAction = {};
  const hashes: HashPolicy[] = [];
  let headers = routeHeaders;
  let authority = authorityOf(http.headers);
  let consistentHash = false;
  const first = dests[0];
  if (dests.length === 1 && first) {
    const d = resolveDestination(first.destination, ctx, ns);
    action.cluster = d.cluster;
    const hp = hashPolicyOf(ctx.input, d);
    hashes.push(...hp);
    consistentHash = hp.length > 0;
    headers = concatLists(headers, headerLists(first.headers));
    authority ??= authorityOf(first.headers);
  } else {
    // Istio drops zero-weight destinations when there are several.
    const clusters = dests
      .filter((w) => (w.weight ?? 0) > 0)
      .map((w) => {
        const d = resolveDestination(w.destination, ctx, ns);
        hashes.push(...hashPolicyOf(ctx.input, d));
        const host = authorityOf(w.headers);
        return {
          name: d.cluster,
          weight: { value: w.weight ?? 0 },
          ...nonEmpty(headerLists(w.headers)),
          ...(host !== undefined ? { host_rewrite_literal: host } : {}),
        };
      });
    action.weighted_clusters = { clusters };
  }
  const rw = http.rewrite;
  if (rw?.uriRegexRewrite)
    action.regex_rewrite = { pattern: { regex: rw.uriRegexRewrite.match }, substitution: rw.uriRegexRewrite.rewrite };
  // For exact and regex path matches Envoy swaps the whole matched path, as Istio relies on.
  else if (rw?.uri !== undefined && rw.uri !== '') action.prefix_rewrite = rw.uri;
  if (rw?.authority) authority = rw.authority;
  if (authority !== undefined) action.host_rewrite_literal = authority;
  const t = timeouts(http.timeout ?? 0);
  action.timeout = t.timeout;
  const retry = retryPolicy(http.retries, consistentHash);
  if (retry) action.retry_policy = retry;
  const mirrorPct = http.mirrorPercentage?.value ?? 100;
  if (http.mirror && mirrorPct > 0) {
    const m = resolveDestination(http.mirror, ctx, ns);
    action.request_mirror_policies = [
      { cluster: m.cluster, runtime_fraction: { default_value: millionths(mirrorPct) }, trace_sampled: { value: false } },
    ];
  }
  if (hashes.length > 0) action.hash_policy = dedupe(hashes);
  action.max_stream_duration = t.max_stream_duration;
  return { action, headers };
}

function redirectAction(rd: NonNullable<HttpRoute['redirect']>, ctx: RouteContext, path: string): RedirectAction {
  const code = rd.redirectCode ?? 301;
  const responseCode = REDIRECT_CODES[code];
  if (responseCode === undefined) {
    throw vmeshError(
      ErrorCode.UnsupportedField,
      `VirtualService ${ctx.vs.metadata.namespace}/${ctx.vs.metadata.name}: ${path}.redirect.redirectCode: ${code} cannot be sent; use 301, 302, 303, 307 or 308`,
    );
  }
  const scheme = rd.scheme ?? (ctx.tls ? 'https' : 'http');
  let port = rd.port ?? (rd.derivePort === 'FROM_REQUEST_PORT' ? ctx.port : undefined);
  // Default ports are left out of the Location header, as browsers write them.
  if ((port === 80 && scheme === 'http') || (port === 443 && scheme === 'https')) port = undefined;
  return {
    ...(rd.scheme !== undefined ? { scheme_redirect: rd.scheme } : {}),
    ...(rd.authority !== undefined ? { host_redirect: rd.authority } : {}),
    ...(port !== undefined ? { port_redirect: port } : {}),
    ...(rd.uri !== undefined ? { path_redirect: rd.uri } : {}),
    response_code: responseCode,
  };
}

function directResponse(dr: NonNullable<HttpRoute['directResponse']>): DirectResponseAction {
  const body =
    dr.body?.string !== undefined
      ? { inline_string: dr.body.string }
      : dr.body?.bytes !== undefined
        ? { inline_bytes: dr.body.bytes }
        : undefined;
  return { status: dr.status, ...(body ? { body } : {}) };
}

/** Envoy HTTPFault for a route's typed_per_filter_config; an unset percentage injects nothing, as in Istio. */
export function faultConfig(f: NonNullable<HttpRoute['fault']>): Any {
  const out: HTTPFault = {};
  if (f.delay) out.delay = { fixed_delay: protoDuration(f.delay.fixedDelay), percentage: millionths(f.delay.percentage?.value ?? 0) };
  // As Istio: an abort without an error type aborts nothing.
  if (f.abort && (f.abort.httpStatus !== undefined || f.abort.grpcStatus !== undefined)) {
    const grpc = f.abort.grpcStatus !== undefined ? (GRPC_STATUSES as readonly string[]).indexOf(f.abort.grpcStatus) : -1;
    out.abort = {
      ...(f.abort.httpStatus !== undefined ? { http_status: f.abort.httpStatus } : { grpc_status: Math.max(grpc, 0) }),
      percentage: millionths(f.abort.percentage?.value ?? 0),
    };
  }
  return typedConfig('fault', out);
}

/** Envoy's CORS filter per-route policy (Istio's TranslateCORSPolicy). */
export function corsConfig(c: NonNullable<HttpRoute['corsPolicy']>): Any {
  return typedConfig('corsPolicy', {
    ...(c.allowOrigins
      ? { allow_origin_string_match: c.allowOrigins.map(stringMatcher) }
      : c.allowOrigin
        ? { allow_origin_string_match: c.allowOrigin.map((exact) => stringMatcher({ exact })) }
        : {}),
    ...(c.allowMethods ? { allow_methods: c.allowMethods.join(',') } : {}),
    ...(c.allowHeaders ? { allow_headers: c.allowHeaders.join(',') } : {}),
    ...(c.exposeHeaders ? { expose_headers: c.exposeHeaders.join(',') } : {}),
    ...(c.maxAge !== undefined ? { max_age: String(Math.floor(c.maxAge / 1000)) } : {}),
    ...(c.allowCredentials !== undefined ? { allow_credentials: { value: c.allowCredentials } } : {}),
    filter_enabled: { default_value: { numerator: 100, denominator: 'HUNDRED' } },
    forward_not_matching_preflights: { value: c.unmatchedPreflights !== 'IGNORE' },
  });
}

/** Whether the CORS filter's protos are loaded: without them corsPolicy cannot be expressed and is left out. */
export function corsSupported(): boolean {
  return protos().has(CORS_POLICY_TYPE) && protos().has(CORS_FILTER_TYPE);
}

/**
 * One Envoy Route for an Istio HTTP route and one of its match blocks: `route` (cluster or weighted clusters),
 * `redirect` or `direct_response`, header edits, and fault/CORS per-filter configs. `path` names the route
 * in messages (`spec.http[2]`).
 */
export function translateRoute(http: HttpRoute, match: HttpMatch | undefined, ctx: RouteContext, path: string): Route {
  const name = [http.name, match?.name].filter((n) => n !== undefined && n !== '').join('.');
  const out: Route = { ...(name ? { name } : {}), match: translateMatch(match) };
  let headers = headerLists(http.headers);
  if (http.redirect) out.redirect = redirectAction(http.redirect, ctx, path);
  else if (http.directResponse) out.direct_response = directResponse(http.directResponse);
  else {
    const r = routeAction(http, ctx, headers);
    out.route = r.action;
    headers = r.headers;
  }
  Object.assign(out, nonEmpty(headers));
  const perFilter: Record<string, Any> = {};
  if (http.fault) perFilter[FAULT_FILTER] = faultConfig(http.fault);
  if (http.corsPolicy && corsSupported()) perFilter[CORS_FILTER] = corsConfig(http.corsPolicy);
  if (Object.keys(perFilter).length > 0) out.typed_per_filter_config = perFilter;
  return out;
}

/** The route of a service port no VirtualService routes: everything to the service, Istio's default retries. */
export function defaultRoute(input: TranslateInput, hostname: string, port: number): Route {
  const hashes = hashPolicyOf(input, { hostname, port, subset: '' });
  const t = timeouts(0);
  return {
    name: 'default',
    match: { prefix: '/' },
    route: {
      cluster: outboundClusterName(port, '', hostname),
      timeout: t.timeout,
      retry_policy: retryPolicy(undefined, hashes.length > 0),
      ...(hashes.length > 0 ? { hash_policy: hashes } : {}),
      max_stream_duration: t.max_stream_duration,
    },
  };
}

/** The inbound route: everything to the local workload, no timeout (the caller's side decides). */
export function inboundRoute(cluster: string): Route {
  const t = timeouts(0);
  return {
    name: 'default',
    match: { prefix: '/' },
    route: { cluster, timeout: t.timeout, max_stream_duration: { max_stream_duration: t.timeout, grpc_timeout_header_max: t.timeout } },
  };
}
