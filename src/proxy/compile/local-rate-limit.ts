import type { RuntimeFractionalPercent__Output } from '../../generated/envoy/config/core/v3/RuntimeFractionalPercent.js';
import type { RateLimit__Output } from '../../generated/envoy/config/route/v3/RateLimit.js';
import type { LocalRateLimit__Output } from '../../generated/envoy/extensions/filters/http/local_ratelimit/v3/LocalRateLimit.js';
import type { TokenBucket__Output } from '../../generated/envoy/type/v3/TokenBucket.js';
import type { Decoded } from '../../xds/envoy-types.js';
import { protos } from '../../xds/protos.js';
import { TypedConfigUrl } from '../../xds/type-urls.js';
import type { LocalRateLimit, RateLimitAction, RouteRateLimit } from '../proxy-config.js';
import { type PerFilterConfig, perFilterEntry } from './cors.js';
import { compileHeaderMatcher } from './matchers.js';
import { bool, durationMs, fail, fraction, list, msg, num, part, refuseSet, str, typedAs, wrapped, wrappedBool } from './read.js';

/**
 * Envoy's HTTP local rate limit: the filter's own token bucket (one per listener) and the per-route config an
 * EnvoyFilter adds, whose descriptors are built by the route's rate_limits actions.
 */

export type Config = Decoded<LocalRateLimit__Output>;

/** envoy.type.v3.StatusCode names (`TooManyRequests`) as numbers; protobufjs decodes the enum by name. */
function statusCode(name: string): number | undefined {
  const v = protos().root.lookupEnum('envoy.type.v3.StatusCode').values[name];
  return v !== undefined && v >= 200 ? v : undefined;
}

/** A RuntimeFractionalPercent's default; unset is 0% (Envoy's local_ratelimit is then disabled or not enforced). */
function runtimeFraction(v: Decoded<RuntimeFractionalPercent__Output> | null | undefined, path: string): number {
  const rf = msg(v, path);
  return rf ? fraction(rf.default_value, `${path}.default_value`) : 0;
}

function bucketOf(v: Decoded<TokenBucket__Output> | null | undefined, status: number, path: string): LocalRateLimit | undefined {
  const bucket = msg(v, path);
  if (!bucket) return undefined;
  const fillIntervalMs = durationMs(bucket.fill_interval, `${path}.fill_interval`) ?? 0;
  if (fillIntervalMs <= 0) fail(`${path}.fill_interval`, 'must be positive');
  return {
    maxTokens: num(bucket.max_tokens, `${path}.max_tokens`),
    tokensPerFill: wrapped(bucket.tokens_per_fill, `${path}.tokens_per_fill`) ?? 1,
    fillIntervalMs,
    status,
  };
}

/** Enabled and enforced for every request, or not at all (undefined): partial fractions are refused. */
function enforcedStatus(cfg: Config, path: string): number | undefined {
  const enabled = runtimeFraction(cfg.filter_enabled, `${path}.filter_enabled`);
  const enforced = runtimeFraction(cfg.filter_enforced, `${path}.filter_enforced`);
  // Disabled, or only counting (shadow mode): nothing is limited.
  if (enabled === 0 || enforced === 0) return undefined;
  if (enabled < 1 || enforced < 1) fail(path, 'a rate limit enabled or enforced for part of the requests is not supported');
  const code = msg(cfg.status, `${path}.status`)?.code;
  const status = code === undefined || code === null ? 429 : typeof code === 'number' ? code : statusCode(String(code));
  if (status === undefined) fail(`${path}.status.code`, `${String(code)} is not supported`);
  return status;
}

/** The filter's own config: one token bucket for the listener (none: only routes' configs limit). */
export function localRateLimit(cfg: Config, path: string): LocalRateLimit | undefined {
  refuseSet(
    cfg,
    [
      'descriptors',
      'request_headers_to_add_when_not_enforced',
      'response_headers_to_add',
      'local_rate_limit_per_downstream_connection',
      'rate_limited_as_resource_exhausted',
    ],
    path,
  );
  if (!msg(cfg.token_bucket, `${path}.token_bucket`)) return undefined;
  const status = enforcedStatus(cfg, path);
  return status === undefined ? undefined : bucketOf(cfg.token_bucket, status, `${path}.token_bucket`);
}

/**
 * A route's (or virtual host's) per-filter config, with the rate_limits actions that build its descriptors.
 * `x-ratelimit-*` headers (enable_x_ratelimit_headers) are not sent.
 */
export function routeRateLimit(cfg: Config, actions: RateLimitAction[][], path: string): RouteRateLimit | undefined {
  refuseSet(
    cfg,
    ['request_headers_to_add_when_not_enforced', 'local_rate_limit_per_downstream_connection', 'rate_limited_as_resource_exhausted'],
    path,
  );
  const status = enforcedStatus(cfg, path);
  if (status === undefined) return undefined;
  const descriptors = list(cfg.descriptors, `${path}.descriptors`).map((d, i) => {
    const p = `${path}.descriptors[${i}]`;
    const entries = list(part(d, p).entries, `${p}.entries`).map((e, j) => {
      const x = part(e, `${p}.entries[${j}]`);
      return [str(x.key, `${p}.entries[${j}].key`), str(x.value, `${p}.entries[${j}].value`)] as const;
    });
    const bucket = bucketOf(part(d, p).token_bucket, status, `${p}.token_bucket`);
    if (!bucket) fail(`${p}.token_bucket`, 'required');
    return { entries, bucket };
  });
  const limitedHeaders = list(cfg.response_headers_to_add, `${path}.response_headers_to_add`).map((h, i) => {
    const hv = part(part(h, `${path}.response_headers_to_add[${i}]`).header, `${path}.response_headers_to_add[${i}].header`);
    return [str(hv.key, `${path}.response_headers_to_add[${i}].header.key`).toLowerCase(), str(hv.value, '')] as const;
  });
  const bucket = bucketOf(cfg.token_bucket, status, `${path}.token_bucket`);
  return {
    ...(bucket ? { bucket } : {}),
    descriptors,
    alwaysConsumeDefault: wrappedBool(cfg.always_consume_default_token_bucket, `${path}.always_consume_default_token_bucket`) ?? true,
    actions,
    limitedHeaders,
    status,
  };
}

const FILTER = 'envoy.filters.http.local_ratelimit';

/** The filter's entry in a route's or virtual host's typed_per_filter_config ('none' when disabled there). */
export function perFilterLocalRateLimit(v: PerFilterConfig, path: string): { cfg: Config; path: string } | 'none' | undefined {
  const e = perFilterEntry(v, FILTER, path);
  if (e === undefined || e === 'none') return e;
  return { cfg: typedAs<LocalRateLimit__Output>(e.typed, TypedConfigUrl.httpLocalRateLimit, e.path), path: e.path };
}

/** rate_limits entries: each one's actions build one descriptor. Limits for another stage or disabled by key are refused. */
export function rateLimitActions(v: readonly Decoded<RateLimit__Output>[] | null | undefined, path: string): RateLimitAction[][] {
  return list(v, path).map((rl, i) => {
    const p = `${path}[${i}]`;
    const r = part(rl, p);
    refuseSet(r, ['disable_key', 'limit'], p);
    if (num(wrapped(r.stage, `${p}.stage`) ?? 0, `${p}.stage`) !== 0) fail(`${p}.stage`, 'only stage 0 is supported');
    return list(r.actions, `${p}.actions`).map((a, j) => action(part(a, `${p}.actions[${j}]`), `${p}.actions[${j}]`));
  });
}

type ActionMsg = Partial<NonNullable<Decoded<RateLimit__Output>['actions']>[number]>;

function action(a: ActionMsg, path: string): RateLimitAction {
  if (msg(a.remote_address, `${path}.remote_address`)) return { kind: 'remote_address' };
  if (msg(a.destination_cluster, `${path}.destination_cluster`)) return { kind: 'destination_cluster' };
  const g = msg(a.generic_key, `${path}.generic_key`);
  if (g)
    return {
      kind: 'generic_key',
      key: str(g.descriptor_key, '') || 'generic_key',
      value: str(g.descriptor_value, `${path}.generic_key.descriptor_value`),
    };
  const h = msg(a.request_headers, `${path}.request_headers`);
  if (h) {
    return {
      kind: 'request_headers',
      header: str(h.header_name, `${path}.request_headers.header_name`).toLowerCase(),
      key: str(h.descriptor_key, `${path}.request_headers.descriptor_key`),
      skipIfAbsent: bool(h.skip_if_absent, `${path}.request_headers.skip_if_absent`),
    };
  }
  const m = msg(a.header_value_match, `${path}.header_value_match`);
  if (m) {
    const p = `${path}.header_value_match`;
    return {
      kind: 'header_value_match',
      key: str(m.descriptor_key, '') || 'header_match',
      value: str(m.descriptor_value, `${p}.descriptor_value`),
      expectMatch: wrappedBool(m.expect_match, `${p}.expect_match`) ?? true,
      headers: list(m.headers, `${p}.headers`).flatMap((x, k) => compileHeaderMatcher(x, `${p}.headers[${k}]`)),
    };
  }
  return fail(path, 'only remote_address, destination_cluster, generic_key, request_headers and header_value_match actions are supported');
}
