import type { Route__Output } from '../../generated/envoy/config/route/v3/Route.js';
import type { RouteConfiguration__Output } from '../../generated/envoy/config/route/v3/RouteConfiguration.js';
import type { RouteMatch__Output } from '../../generated/envoy/config/route/v3/RouteMatch.js';
import type { VirtualHost__Output } from '../../generated/envoy/config/route/v3/VirtualHost.js';
import type { Decoded } from '../../xds/envoy-types.js';
import type {
  CorsPolicy,
  FaultPolicy,
  HeaderMatcher,
  HeaderOps,
  RateLimitAction,
  RetryPolicy,
  Route,
  RouteMatch,
  RouteTable,
  StringMatcher,
  VirtualHost,
} from '../proxy-config.js';
import { perFilterCors } from './cors.js';
import { type Config as LocalRateLimitConfig, perFilterLocalRateLimit, rateLimitActions, routeRateLimit } from './local-rate-limit.js';
import { compileHeaderMatcher, compileMetadataMatcher, compileRegex, compileStringMatcher } from './matchers.js';
import { bool, fail, list, msg, part, refuseSet, str, wrappedBool } from './read.js';
import { concatOps, headerOps, perFilterFault, retryPolicy, routeAction } from './route-action.js';

/** RouteConfiguration -> RouteTable: virtual hosts by domain, routes in order, header operations merged per route. */

type RouteMatchMsg = Decoded<RouteMatch__Output>;
type QueryMatcherMsg = NonNullable<RouteMatchMsg['query_parameters']>[number];

const GRPC_CONTENT_TYPE: HeaderMatcher = {
  name: 'content-type',
  match: { kind: 'prefix', value: 'application/grpc', ignoreCase: false },
  invert: false,
};

function pathMatch(m: Partial<RouteMatchMsg>, path: string): RouteMatch['path'] {
  const caseSensitive = wrappedBool(m.case_sensitive, `${path}.case_sensitive`) ?? true;
  const spec = typeof m.path_specifier === 'string' ? m.path_specifier : undefined;
  const has = (k: 'prefix' | 'path' | 'path_separated_prefix' | 'safe_regex') =>
    spec === undefined ? m[k] !== undefined && m[k] !== null : spec === k;
  const literal = (kind: 'prefix' | 'exact' | 'path_separated_prefix', field: 'prefix' | 'path' | 'path_separated_prefix') => {
    const value = str(m[field], `${path}.${field}`);
    return { kind, value: caseSensitive ? value : value.toLowerCase(), caseSensitive };
  };
  if (has('prefix')) return literal('prefix', 'prefix');
  if (has('path')) return literal('exact', 'path');
  if (has('path_separated_prefix')) {
    const v = str(m.path_separated_prefix, `${path}.path_separated_prefix`);
    if (!v.startsWith('/') || (v.length > 1 && v.endsWith('/')))
      fail(`${path}.path_separated_prefix`, `"${v}" must start and not end with /`);
    return literal('path_separated_prefix', 'path_separated_prefix');
  }
  // Envoy: case_sensitive does not apply to regexes.
  if (has('safe_regex')) return { kind: 'regex', regex: compileRegex(m.safe_regex, `${path}.safe_regex`) };
  return fail(path, `path matcher ${spec ?? 'none'} is not supported`);
}

function queryMatcher(v: QueryMatcherMsg | null | undefined, path: string): { name: string; match: StringMatcher } {
  const q = part(v, path);
  const name = str(q.name, `${path}.name`);
  if (!name) fail(`${path}.name`, 'empty');
  if (q.string_match) return { name, match: compileStringMatcher(q.string_match, `${path}.string_match`) };
  if (bool(q.present_match, `${path}.present_match`)) return { name, match: { kind: 'present' } };
  return fail(path, 'string_match or present_match is required');
}

export function compileRouteMatch(v: RouteMatchMsg | null | undefined, path: string): RouteMatch {
  const m = part(v, path);
  refuseSet(m, ['runtime_fraction', 'tls_context', 'connect_matcher', 'path_match_policy'], path);
  const headers = list(m.headers, `${path}.headers`).flatMap((h, i) => compileHeaderMatcher(h, `${path}.headers[${i}]`));
  if (msg(m.grpc, `${path}.grpc`)) headers.push(GRPC_CONTENT_TYPE);
  const metadata = list(m.dynamic_metadata, `${path}.dynamic_metadata`).map((d, i) =>
    compileMetadataMatcher(d, `${path}.dynamic_metadata[${i}]`),
  );
  return {
    path: pathMatch(m, path),
    headers,
    query: list(m.query_parameters, `${path}.query_parameters`).map((q, i) => queryMatcher(q, `${path}.query_parameters[${i}]`)),
    ...(metadata.length > 0 ? { metadata } : {}),
  };
}

interface Inherited {
  /** Most specific first: route, virtual host, route configuration (or the reverse, most_specific_header_mutations_wins). */
  readonly request: HeaderOps[];
  readonly response: HeaderOps[];
  readonly fault?: FaultPolicy;
  readonly cors?: CorsPolicy;
  readonly retry?: RetryPolicy;
  readonly rateLimit?: { readonly cfg: LocalRateLimitConfig; readonly path: string };
  readonly rateLimitActions: RateLimitAction[][];
}

function compileRoute(v: Decoded<Route__Output> | null | undefined, path: string, up: Inherited, mostSpecificWins: boolean): Route {
  const r = part(v, path);
  refuseSet(r, ['filter_action', 'non_forwarding_action'], path);
  const fault = perFilterFault(r.typed_per_filter_config, `${path}.typed_per_filter_config`);
  const cors = perFilterCors(r.typed_per_filter_config, `${path}.typed_per_filter_config`);
  const c = cors === undefined ? up.cors : cors === 'none' ? undefined : cors;
  const rl = perFilterLocalRateLimit(r.typed_per_filter_config, `${path}.typed_per_filter_config`);
  const rlCfg = rl === undefined ? up.rateLimit : rl === 'none' ? undefined : rl;
  // The route's own rate_limits, else its virtual host's (local_ratelimit's vh_rate_limits default, OVERRIDE).
  const own = rateLimitActions(msg(r.route, `${path}.route`)?.rate_limits, `${path}.route.rate_limits`);
  const rateLimit = rlCfg ? routeRateLimit(rlCfg.cfg, own.length > 0 ? own : up.rateLimitActions, rlCfg.path) : undefined;
  let action = routeAction(r, path);
  // The virtual host's retry policy applies to routes without their own.
  if (action.kind === 'forward' && !action.retry && up.retry) action = { ...action, retry: up.retry };
  const ownOps = [
    headerOps(r.request_headers_to_add, r.request_headers_to_remove, path, 'request'),
    headerOps(r.response_headers_to_add, r.response_headers_to_remove, path, 'response'),
  ] as const;
  const order = <T>(xs: T[]) => (mostSpecificWins ? [...xs].reverse() : xs);
  const f = fault === undefined ? up.fault : fault === 'none' ? undefined : fault;
  return {
    name: str(r.name, `${path}.name`),
    match: compileRouteMatch(r.match, `${path}.match`),
    action,
    requestHeaders: concatOps(...order([ownOps[0], ...up.request])),
    responseHeaders: concatOps(...order([ownOps[1], ...up.response])),
    ...(f ? { fault: f } : {}),
    ...(c ? { cors: c } : {}),
    ...(rateLimit ? { rateLimit } : {}),
  };
}

interface Domains {
  exact: Set<string>;
  wildcardSuffixes: string[];
  wildcardPrefixes: string[];
  matchAll: boolean;
}

function domains(v: readonly string[] | null | undefined, path: string, seen: Set<string>): Domains {
  const out: Domains = { exact: new Set(), wildcardSuffixes: [], wildcardPrefixes: [], matchAll: false };
  list(v, path).forEach((d, i) => {
    const p = `${path}[${i}]`;
    const domain = str(d, p).toLowerCase();
    if (!domain) fail(p, 'empty domain');
    // Envoy refuses a route configuration naming a domain twice.
    if (seen.has(domain)) fail(p, `domain "${domain}" appears more than once in the route configuration`);
    seen.add(domain);
    // Envoy's wildcards: `*` alone, or one `*` at the start (suffix form) or at the end (prefix form).
    const star = domain.indexOf('*');
    if (domain === '*') out.matchAll = true;
    else if (star >= 0 && domain.indexOf('*', star + 1) >= 0) fail(p, `domain "${domain}" has more than one "*"`);
    else if (star === 0) out.wildcardSuffixes.push(domain.slice(1));
    else if (star === domain.length - 1) out.wildcardPrefixes.push(domain.slice(0, -1));
    else if (star > 0) fail(p, `domain "${domain}": "*" must be the first or the last character`);
    else out.exact.add(domain);
  });
  return out;
}

function compileVirtualHost(
  v: Decoded<VirtualHost__Output> | null | undefined,
  path: string,
  config: Inherited,
  mostSpecificWins: boolean,
  seen: Set<string>,
): VirtualHost {
  const vh = part(v, path);
  refuseSet(vh, ['virtual_clusters', 'hedge_policy', 'retry_policy_typed_config', 'matcher', 'request_mirror_policies'], path);
  const fault = perFilterFault(vh.typed_per_filter_config, `${path}.typed_per_filter_config`);
  const cors = perFilterCors(vh.typed_per_filter_config, `${path}.typed_per_filter_config`);
  const retry = retryPolicy(vh.retry_policy, `${path}.retry_policy`);
  const rl = perFilterLocalRateLimit(vh.typed_per_filter_config, `${path}.typed_per_filter_config`);
  const inherited: Inherited = {
    rateLimitActions: rateLimitActions(vh.rate_limits, `${path}.rate_limits`),
    ...(rl && rl !== 'none' ? { rateLimit: rl } : {}),
    request: [headerOps(vh.request_headers_to_add, vh.request_headers_to_remove, path, 'request'), ...config.request],
    response: [headerOps(vh.response_headers_to_add, vh.response_headers_to_remove, path, 'response'), ...config.response],
    ...(fault && fault !== 'none' ? { fault } : {}),
    ...(cors && cors !== 'none' ? { cors } : {}),
    ...(retry ? { retry } : {}),
  };
  const d = domains(vh.domains, `${path}.domains`, seen);
  const requireTls = str(vh.require_tls, `${path}.require_tls`, 'NONE');
  return {
    name: str(vh.name, `${path}.name`),
    domains: d.exact,
    wildcardSuffixes: d.wildcardSuffixes,
    ...(d.wildcardPrefixes.length ? { wildcardPrefixes: d.wildcardPrefixes } : {}),
    matchAll: d.matchAll,
    routes: list(vh.routes, `${path}.routes`).map((r, i) => compileRoute(r, `${path}.routes[${i}]`, inherited, mostSpecificWins)),
    requireTls: requireTls !== 'NONE' && (requireTls as unknown) !== 0,
  };
}

/** One RouteConfiguration (RDS, or inline in an HttpConnectionManager under `name`). */
export function compileRouteTable(rc: Decoded<RouteConfiguration__Output>, name: string, path = ''): RouteTable {
  const pre = path ? `${path}.` : '';
  refuseSet(rc, ['vhds', 'cluster_specifier_plugins', 'typed_per_filter_config', 'request_mirror_policies'], path);
  const mostSpecificWins = bool(rc.most_specific_header_mutations_wins, `${pre}most_specific_header_mutations_wins`);
  const config: Inherited = {
    request: [headerOps(rc.request_headers_to_add, rc.request_headers_to_remove, path, 'request')],
    response: [headerOps(rc.response_headers_to_add, rc.response_headers_to_remove, path, 'response')],
    rateLimitActions: [],
  };
  const seen = new Set<string>();
  return {
    name,
    virtualHosts: list(rc.virtual_hosts, `${pre}virtual_hosts`).map((v, i) =>
      compileVirtualHost(v, `${pre}virtual_hosts[${i}]`, config, mostSpecificWins, seen),
    ),
  };
}
