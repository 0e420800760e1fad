import type { HeaderValueOption__Output } from '../../generated/envoy/config/core/v3/HeaderValueOption.js';
import type { DirectResponseAction__Output } from '../../generated/envoy/config/route/v3/DirectResponseAction.js';
import type { FilterConfig__Output } from '../../generated/envoy/config/route/v3/FilterConfig.js';
import type { RedirectAction__Output } from '../../generated/envoy/config/route/v3/RedirectAction.js';
import type { RetryPolicy__Output } from '../../generated/envoy/config/route/v3/RetryPolicy.js';
import type { Route__Output } from '../../generated/envoy/config/route/v3/Route.js';
import type { RouteAction__Output } from '../../generated/envoy/config/route/v3/RouteAction.js';
import type { HTTPFault__Output } from '../../generated/envoy/extensions/filters/http/fault/v3/HTTPFault.js';
import type { Decoded, DecodedAny } from '../../xds/envoy-types.js';
import { TypedConfigUrl } from '../../xds/type-urls.js';
import type { FaultPolicy, HashPolicy, HeaderOps, RetryPolicy, RouteAction } from '../proxy-config.js';
import { FILTER_CONFIG_URL, type PerFilterConfig } from './cors.js';
import { compileRegex } from './matchers.js';
import {
  bool,
  bytesText,
  durationMs,
  fail,
  fraction,
  isTyped,
  list,
  msg,
  num,
  part,
  refuseSet,
  str,
  typedAs,
  wrapped,
  wrappedBool,
} from './read.js';

/** Route actions (config.route.v3.RouteAction / RedirectAction / DirectResponseAction) and their parts. */

/** Envoy's route timeout when none is given; 0 (as given) means no timeout. */
export const ENVOY_ROUTE_TIMEOUT_MS = 15_000;
const RETRY_BASE_MS = 25;

type RouteActionMsg = Decoded<RouteAction__Output>;
type HashPolicyMsg = NonNullable<RouteActionMsg['hash_policy']>[number];

export const EMPTY_HEADER_OPS: HeaderOps = Object.freeze({ add: Object.freeze([]), remove: Object.freeze([]) });

/** request/response_headers_to_add + _to_remove. Pseudo-headers and Host cannot be mutated (Envoy refuses them too). */
export function headerOps(
  addList: readonly Decoded<HeaderValueOption__Output>[] | null | undefined,
  removeList: readonly string[] | null | undefined,
  path: string,
  what: 'request' | 'response',
): HeaderOps {
  const addPath = `${path}${path ? '.' : ''}${what}_headers_to_add`;
  const removePath = `${path}${path ? '.' : ''}${what}_headers_to_remove`;
  const add = list(addList, addPath).map((v, i) => {
    const p = `${addPath}[${i}]`;
    const o = part(v, p);
    const h = part(o.header, `${p}.header`);
    const name = str(h.key, `${p}.header.key`).toLowerCase();
    if (name === '' || name.startsWith(':') || name === 'host') fail(`${p}.header.key`, `"${name}" cannot be modified`);
    const value = str(h.value, `${p}.header.value`) || bytesText(h.raw_value);
    const legacy = wrappedBool(o.append, `${p}.append`);
    const action = str(o.append_action, `${p}.append_action`, 'APPEND_IF_EXISTS_OR_ADD');
    let append: boolean;
    if (legacy !== undefined) append = legacy;
    else if (action === 'APPEND_IF_EXISTS_OR_ADD') append = true;
    else if (action === 'OVERWRITE_IF_EXISTS_OR_ADD') append = false;
    else return fail(`${p}.append_action`, `${action} is not supported`);
    return { name, value, append };
  });
  const remove = list(removeList, removePath).map((v, i) => str(v, `${removePath}[${i}]`).toLowerCase());
  return add.length === 0 && remove.length === 0 ? EMPTY_HEADER_OPS : { add, remove };
}

/** Several levels' header operations in the order they apply. */
export function concatOps(...ops: HeaderOps[]): HeaderOps {
  const nonEmpty = ops.filter((o) => o.add.length > 0 || o.remove.length > 0);
  if (nonEmpty.length <= 1) return nonEmpty[0] ?? EMPTY_HEADER_OPS;
  return { add: nonEmpty.flatMap((o) => o.add), remove: nonEmpty.flatMap((o) => o.remove) };
}

export function retryPolicy(v: Decoded<RetryPolicy__Output> | null | undefined, path: string): RetryPolicy | undefined {
  const r = msg(v, path);
  if (!r) return undefined;
  refuseSet(r, ['retriable_headers', 'retriable_request_headers', 'retry_options_predicates'], path);
  list(r.retry_host_predicate, `${path}.retry_host_predicate`).forEach((p, i) => {
    const name = str(msg(p, `${path}.retry_host_predicate[${i}]`)?.name, 'name');
    if (name !== 'envoy.retry_host_predicates.previous_hosts') fail(`${path}.retry_host_predicate[${i}]`, `${name} is not supported`);
  });
  const on = str(r.retry_on, `${path}.retry_on`)
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  const backoff = msg(r.retry_back_off, `${path}.retry_back_off`);
  const base = durationMs(backoff?.base_interval, `${path}.retry_back_off.base_interval`) ?? RETRY_BASE_MS;
  const perTry = durationMs(r.per_try_timeout, `${path}.per_try_timeout`);
  return {
    on: new Set(on),
    retriableStatusCodes: list(r.retriable_status_codes, `${path}.retriable_status_codes`).map((c, i) =>
      num(c, `${path}.retriable_status_codes[${i}]`),
    ),
    numRetries: wrapped(r.num_retries, `${path}.num_retries`) ?? 1,
    ...(perTry ? { perTryTimeoutMs: perTry } : {}),
    backoffBaseMs: base,
    backoffMaxMs: durationMs(backoff?.max_interval, `${path}.retry_back_off.max_interval`) ?? base * 10,
  };
}

/** HTTPFault as a route's fault policy; header-controlled and targeted faults are refused. */
export function faultPolicy(v: Decoded<HTTPFault__Output>, path: string): FaultPolicy | undefined {
  refuseSet(v, ['headers', 'downstream_nodes', 'upstream_cluster', 'max_active_faults', 'response_rate_limit'], path);
  const out: { delay?: FaultPolicy['delay']; abort?: FaultPolicy['abort'] } = {};
  const delay = msg(v.delay, `${path}.delay`);
  if (delay) {
    if (msg(delay.header_delay, `${path}.delay.header_delay`)) fail(`${path}.delay.header_delay`, 'not supported');
    out.delay = {
      ms: durationMs(delay.fixed_delay, `${path}.delay.fixed_delay`) ?? 0,
      fraction: fraction(delay.percentage, `${path}.delay.percentage`),
    };
  }
  const abort = msg(v.abort, `${path}.abort`);
  if (abort) {
    if (msg(abort.header_abort, `${path}.abort.header_abort`)) fail(`${path}.abort.header_abort`, 'not supported');
    const f = fraction(abort.percentage, `${path}.abort.percentage`);
    const kind = abort.error_type ?? (abort.grpc_status !== undefined && abort.grpc_status !== null ? 'grpc_status' : 'http_status');
    out.abort =
      kind === 'grpc_status'
        ? { grpcStatus: num(abort.grpc_status, `${path}.abort.grpc_status`), fraction: f }
        : { httpStatus: num(abort.http_status, `${path}.abort.http_status`), fraction: f };
  }
  return out.delay || out.abort ? out : undefined;
}

const FAULT_FILTER = 'envoy.filters.http.fault';
/** Per-route configs of filters the proxy runs differently without them: refused rather than ignored. */
const REFUSED_PER_ROUTE = new Set(['envoy.filters.http.rbac']);

/** typed_per_filter_config: the fault filter's config (FilterConfig-wrapped or not); other filters' are refused or ignored. */
export function perFilterFault(v: PerFilterConfig, path: string): FaultPolicy | 'none' | undefined {
  const all = msg(v, path);
  if (!all) return undefined;
  let result: FaultPolicy | 'none' | undefined;
  for (const [name, cfg] of Object.entries(all)) {
    const p = `${path}['${name}']`;
    let c: DecodedAny | null | undefined = msg(cfg, p);
    if (isTyped(c, FILTER_CONFIG_URL)) {
      const fc = typedAs<FilterConfig__Output>(c, FILTER_CONFIG_URL, p);
      if (bool(fc.disabled, `${p}.disabled`)) {
        if (name === FAULT_FILTER) result = 'none';
        continue;
      }
      c = msg(fc.config, `${p}.config`);
    }
    if (REFUSED_PER_ROUTE.has(name)) fail(p, 'per-route config of this filter is not supported');
    if (name !== FAULT_FILTER) continue;
    result = faultPolicy(typedAs<HTTPFault__Output>(c, TypedConfigUrl.fault, p), p) ?? 'none';
  }
  return result;
}

export function hashPolicies(v: readonly HashPolicyMsg[] | null | undefined, path: string): HashPolicy[] {
  return list(v, path).flatMap((x, i): HashPolicy[] => {
    const p = `${path}[${i}]`;
    const h = part(x, p);
    // As in Envoy, a filter state key the request does not carry adds nothing to the hash; this proxy keeps none
    // (gRPC's `io.grpc.channel_id`, in the routes of proxyless clients, is one).
    if (msg(h.filter_state, `${p}.filter_state`)) return [];
    const header = msg(h.header, `${p}.header`);
    if (header) {
      if (msg(header.regex_rewrite, `${p}.header.regex_rewrite`)) fail(`${p}.header.regex_rewrite`, 'not supported');
      return [{ kind: 'header', name: str(header.header_name, `${p}.header.header_name`).toLowerCase() }];
    }
    const cookie = msg(h.cookie, `${p}.cookie`);
    if (cookie) {
      refuseSet(cookie, ['attributes'], `${p}.cookie`);
      const ttl = durationMs(cookie.ttl, `${p}.cookie.ttl`);
      const cpath = str(cookie.path, `${p}.cookie.path`);
      return [
        {
          kind: 'cookie',
          name: str(cookie.name, `${p}.cookie.name`),
          ...(ttl !== undefined ? { ttlMs: ttl } : {}),
          ...(cpath ? { path: cpath } : {}),
        },
      ];
    }
    const conn = msg(h.connection_properties, `${p}.connection_properties`);
    if (conn && bool(conn.source_ip, `${p}.connection_properties.source_ip`)) return [{ kind: 'source_ip' }];
    const query = msg(h.query_parameter, `${p}.query_parameter`);
    if (query) return [{ kind: 'query', name: str(query.name, `${p}.query_parameter.name`) }];
    return fail(p, 'only header, cookie, source_ip, query_parameter and filter_state hash policies are supported');
  });
}

/** Envoy's regex_rewrite; a substitution naming a group the pattern lacks fails the config (RE2::CheckRewriteString). */
function regexRewrite(
  rr: NonNullable<RouteActionMsg['regex_rewrite']>,
  path: string,
): NonNullable<Extract<RouteAction, { kind: 'forward' }>['regexRewrite']> {
  const pattern = compileRegex(rr.pattern, `${path}.pattern`);
  const rewrite = str(rr.substitution, `${path}.substitution`);
  try {
    return { pattern, substitution: pattern.substitution(rewrite) };
  } catch (e) {
    return fail(`${path}.substitution`, (e as Error).message);
  }
}

function forward(r: RouteActionMsg, path: string): RouteAction {
  refuseSet(
    r,
    [
      'cluster_header',
      'cluster_specifier_plugin',
      'inline_cluster_specifier_plugin',
      'auto_host_rewrite',
      'host_rewrite_header',
      'host_rewrite_path_regex',
      'hedge_policy',
      'path_rewrite_policy',
      'retry_policy_typed_config',
    ],
    path,
  );
  let clusters: Array<{ name: string; weight: number; headers: HeaderOps }>;
  const weighted = msg(r.weighted_clusters, `${path}.weighted_clusters`);
  if (weighted) {
    const wp = `${path}.weighted_clusters`;
    refuseSet(weighted, ['header_name', 'random_value_specifier'], wp);
    clusters = list(weighted.clusters, `${wp}.clusters`).map((x, i) => {
      const p = `${wp}.clusters[${i}]`;
      const c = part(x, p);
      refuseSet(c, ['cluster_header', 'response_headers_to_add', 'response_headers_to_remove', 'typed_per_filter_config'], p);
      const ops = headerOps(c.request_headers_to_add, c.request_headers_to_remove, p, 'request');
      const host = str(c.host_rewrite_literal, `${p}.host_rewrite_literal`);
      // A per-destination host rewrite travels as a `host` set, applied with the cluster's own headers.
      const headers = host ? concatOps(ops, { add: [{ name: 'host', value: host, append: false }], remove: [] }) : ops;
      return { name: str(c.name, `${p}.name`), weight: wrapped(c.weight, `${p}.weight`) ?? 0, headers };
    });
    if (clusters.length === 0) fail(`${wp}.clusters`, 'empty');
  } else {
    const name = str(r.cluster, `${path}.cluster`);
    if (!name) fail(path, 'no cluster: cluster or weighted_clusters is required');
    clusters = [{ name, weight: 1, headers: EMPTY_HEADER_OPS }];
  }
  const totalWeight = clusters.reduce((a, c) => a + c.weight, 0);
  if (totalWeight <= 0) fail(`${path}.weighted_clusters`, 'total weight is 0');
  const timeout = durationMs(r.timeout, `${path}.timeout`);
  const rr = msg(r.regex_rewrite, `${path}.regex_rewrite`);
  const prefixRewrite = str(r.prefix_rewrite, `${path}.prefix_rewrite`);
  const host = str(r.host_rewrite_literal, `${path}.host_rewrite_literal`);
  const retry = retryPolicy(r.retry_policy, `${path}.retry_policy`);
  const mirrors = list(r.request_mirror_policies, `${path}.request_mirror_policies`).map((x, i) => {
    const p = `${path}.request_mirror_policies[${i}]`;
    const m = part(x, p);
    refuseSet(m, ['cluster_header'], p);
    const rf = msg(m.runtime_fraction, `${p}.runtime_fraction`);
    return {
      cluster: str(m.cluster, `${p}.cluster`),
      fraction: rf ? fraction(rf.default_value, `${p}.runtime_fraction.default_value`) : 1,
    };
  });
  return {
    kind: 'forward',
    clusters,
    totalWeight,
    timeoutMs: timeout ?? ENVOY_ROUTE_TIMEOUT_MS,
    ...(retry ? { retry } : {}),
    ...(prefixRewrite ? { prefixRewrite } : {}),
    ...(rr ? { regexRewrite: regexRewrite(rr, `${path}.regex_rewrite`) } : {}),
    ...(host ? { hostRewrite: host } : {}),
    mirrors,
    hashPolicy: hashPolicies(r.hash_policy, `${path}.hash_policy`),
  };
}

const REDIRECT_CODES: Readonly<Record<string, number>> = {
  MOVED_PERMANENTLY: 301,
  FOUND: 302,
  SEE_OTHER: 303,
  TEMPORARY_REDIRECT: 307,
  PERMANENT_REDIRECT: 308,
};
const REDIRECT_ORDER = ['MOVED_PERMANENTLY', 'FOUND', 'SEE_OTHER', 'TEMPORARY_REDIRECT', 'PERMANENT_REDIRECT'];

function redirect(r: Decoded<RedirectAction__Output>, path: string): RouteAction {
  if (bool(r.strip_query, `${path}.strip_query`)) fail(`${path}.strip_query`, 'not supported');
  if (msg(r.regex_rewrite, `${path}.regex_rewrite`)) fail(`${path}.regex_rewrite`, 'not supported');
  const code =
    typeof r.response_code === 'number'
      ? REDIRECT_ORDER[r.response_code]
      : str(r.response_code, `${path}.response_code`, 'MOVED_PERMANENTLY');
  const status = REDIRECT_CODES[code ?? ''];
  if (status === undefined) fail(`${path}.response_code`, `unknown code ${String(r.response_code)}`);
  const scheme = bool(r.https_redirect, `${path}.https_redirect`) ? 'https' : str(r.scheme_redirect, `${path}.scheme_redirect`);
  const host = str(r.host_redirect, `${path}.host_redirect`);
  const port = num(r.port_redirect, `${path}.port_redirect`);
  const p = str(r.path_redirect, `${path}.path_redirect`);
  const prefix = str(r.prefix_rewrite, `${path}.prefix_rewrite`);
  return {
    kind: 'redirect',
    status,
    ...(scheme ? { scheme } : {}),
    ...(host ? { host } : {}),
    ...(port ? { port } : {}),
    ...(p ? { path: p } : {}),
    ...(prefix ? { prefixRewrite: prefix } : {}),
  };
}

function directResponse(d: Decoded<DirectResponseAction__Output>, path: string): RouteAction {
  const status = num(d.status, `${path}.status`);
  if (status < 200 || status > 599) fail(`${path}.status`, `${status} is not an HTTP status`);
  const body = msg(d.body, `${path}.body`);
  if (!body) return { kind: 'direct_response', status };
  if (typeof body.inline_string === 'string' && body.specifier !== 'inline_bytes')
    return { kind: 'direct_response', status, body: body.inline_string };
  if (body.inline_bytes !== undefined && body.inline_bytes !== null)
    return { kind: 'direct_response', status, body: bytesText(body.inline_bytes) };
  return fail(`${path}.body`, 'only inline bodies are supported');
}

/** The action of a Route: route, redirect or direct_response. */
export function routeAction(route: Partial<Decoded<Route__Output>>, path: string): RouteAction {
  const r = msg(route.route, `${path}.route`);
  if (r) return forward(r, `${path}.route`);
  const rd = msg(route.redirect, `${path}.redirect`);
  if (rd) return redirect(rd, `${path}.redirect`);
  const d = msg(route.direct_response, `${path}.direct_response`);
  if (d) return directResponse(d, `${path}.direct_response`);
  return fail(path, 'only route, redirect and direct_response actions are supported');
}
