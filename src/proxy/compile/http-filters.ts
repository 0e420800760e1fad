import type { RuntimeFractionalPercent__Output } from '../../generated/envoy/config/core/v3/RuntimeFractionalPercent.js';
import type { HTTPFault__Output } from '../../generated/envoy/extensions/filters/http/fault/v3/HTTPFault.js';
import type { JwtAuthentication__Output } from '../../generated/envoy/extensions/filters/http/jwt_authn/v3/JwtAuthentication.js';
import type { LocalRateLimit__Output } from '../../generated/envoy/extensions/filters/http/local_ratelimit/v3/LocalRateLimit.js';
import type { RBAC__Output as HttpRbac__Output } from '../../generated/envoy/extensions/filters/http/rbac/v3/RBAC.js';
import type { HttpConnectionManager__Output } from '../../generated/envoy/extensions/filters/network/http_connection_manager/v3/HttpConnectionManager.js';
import type { HttpFilter__Output } from '../../generated/envoy/extensions/filters/network/http_connection_manager/v3/HttpFilter.js';
import type { TypedStruct__Output } from '../../generated/xds/type/v3/TypedStruct.js';
import type { Decoded } from '../../xds/envoy-types.js';
import { protos } from '../../xds/protos.js';
import { TypedConfigUrl } from '../../xds/type-urls.js';
import type { HttpFilters, JwtAuthnConfig, LocalRateLimit, NetworkAction, RbacConfig, RouteTable, StatsConfig } from '../proxy-config.js';
import { compileAccessLogs } from './access-log.js';
import { compileJwtAuthn } from './jwt-authn.js';
import { compileRbacRules } from './rbac.js';
import { bool, durationMs, fail, fraction, list, msg, num, part, refuseSet, str, typedAs, typeUrlOf, wrapped } from './read.js';
import { faultPolicy } from './route-action.js';
import { compileRouteTable } from './routes.js';
import { compileStats, isStatsStruct } from './stats.js';
import { compileTracing } from './tracing.js';

/** The HttpConnectionManager network filter: its route source and the HTTP filters the proxy implements. */

const ROUTER = TypedConfigUrl.router;

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

/** local_ratelimit: one token bucket for the listener. Partially enabled or enforced buckets are refused. */
function localRateLimit(cfg: Decoded<LocalRateLimit__Output>, path: string): LocalRateLimit | undefined {
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
  const bucket = msg(cfg.token_bucket, `${path}.token_bucket`);
  if (!bucket) return undefined;
  const enabled = runtimeFraction(cfg.filter_enabled, `${path}.filter_enabled`);
  const enforced = runtimeFraction(cfg.filter_enforced, `${path}.filter_enforced`);
  // Disabled, or only counting (shadow mode): nothing is limited.
  if (enabled === 0 || enforced === 0) return undefined;
  if (enabled < 1 || enforced < 1) fail(path, 'a rate limit enabled or enforced for part of the requests is not supported');
  const code = msg(cfg.status, `${path}.status`)?.code;
  const status = code === undefined || code === null ? 429 : typeof code === 'number' ? code : statusCode(String(code));
  if (status === undefined) fail(`${path}.status.code`, `${String(code)} is not supported`);
  const fillIntervalMs = durationMs(bucket.fill_interval, `${path}.token_bucket.fill_interval`) ?? 0;
  if (fillIntervalMs <= 0) fail(`${path}.token_bucket.fill_interval`, 'must be positive');
  return {
    maxTokens: num(bucket.max_tokens, `${path}.token_bucket.max_tokens`),
    tokensPerFill: wrapped(bucket.tokens_per_fill, `${path}.token_bucket.tokens_per_fill`) ?? 1,
    fillIntervalMs,
    status,
  };
}

function httpFilters(v: readonly Decoded<HttpFilter__Output>[] | null | undefined, path: string): HttpFilters {
  const rbac: RbacConfig[] = [];
  let jwt: JwtAuthnConfig | undefined;
  let rateLimit: LocalRateLimit | undefined;
  let fault = false;
  let cors = false;
  let stats: StatsConfig | undefined;
  let router = false;
  list(v, path).forEach((f, i) => {
    const p = `${path}[${i}]`;
    const filter = part(f, p);
    const name = str(filter.name, `${p}.name`);
    if (router) fail(p, `${name}: filters after the router never run`);
    if (bool(filter.disabled, `${p}.disabled`)) return;
    const typed = msg(filter.typed_config, `${p}.typed_config`);
    const url = typeUrlOf(typed);
    const tp = `${p}.typed_config`;
    switch (url) {
      case ROUTER:
        router = true;
        return;
      case TypedConfigUrl.jwtAuthn: {
        if (jwt) fail(p, 'a second jwt_authn filter is not supported');
        if (rbac.length > 0) fail(p, 'jwt_authn after an RBAC filter is not supported (RBAC reads what it verifies)');
        jwt = compileJwtAuthn(typedAs<JwtAuthentication__Output>(typed, url, tp), tp);
        return;
      }
      case TypedConfigUrl.httpRbac: {
        const r = compileRbacRules(typedAs<HttpRbac__Output>(typed, url, tp), tp);
        if (r) rbac.push(r);
        return;
      }
      case TypedConfigUrl.httpLocalRateLimit: {
        if (rateLimit) fail(p, 'a second local_ratelimit filter is not supported');
        rateLimit = localRateLimit(typedAs<LocalRateLimit__Output>(typed, url, tp), tp);
        return;
      }
      case TypedConfigUrl.cors:
        // Envoy's filter config has no fields: the routes' policies say everything.
        cors = true;
        return;
      case TypedConfigUrl.typedStruct:
        // Envoy skips an optional filter it does not know; a TypedStruct names its real type inside.
        if (!isStatsStruct(typed) && bool(filter.is_optional, `${p}.is_optional`)) return;
        if (stats) fail(p, 'a second istio.stats filter is not supported');
        stats = compileStats(typedAs<TypedStruct__Output>(typed, url, tp), tp);
        return;
      case TypedConfigUrl.fault:
        // The filter's own delay/abort would apply to every route: only per-route faults are implemented.
        if (faultPolicy(typedAs<HTTPFault__Output>(typed, url, tp), tp))
          fail(tp, 'filter-level fault injection is not supported (use per-route faults)');
        fault = true;
        return;
      default:
        // Envoy skips an optional filter it does not know; anything else would change what the chain does.
        if (bool(filter.is_optional, `${p}.is_optional`)) return;
        fail(p, `HTTP filter ${name || url} (${url || 'no type'}) is not supported`);
    }
  });
  if (!router) fail(path, 'the router filter must be last');
  return {
    ...(jwt ? { jwt } : {}),
    rbac,
    ...(rateLimit ? { rateLimit } : {}),
    fault,
    ...(cors ? { cors } : {}),
    ...(stats ? { stats } : {}),
  };
}

/** What an HCM compiles to, plus the inline route table to register (named `inlineName`) when it has one. */
export type HcmMsg = Decoded<HttpConnectionManager__Output>;

export function compileHcm(
  cfg: HcmMsg,
  path: string,
  inlineName: string,
  inbound = false,
): { action: Extract<NetworkAction, { kind: 'http' }>; inline?: RouteTable } {
  refuseSet(cfg, ['scoped_routes', 'original_ip_detection_extensions'], path);
  const rds = msg(cfg.rds, `${path}.rds`);
  const inlineRc = msg(cfg.route_config, `${path}.route_config`);
  let routeConfig: string;
  let inline: RouteTable | undefined;
  if (rds) routeConfig = str(rds.route_config_name, `${path}.rds.route_config_name`);
  else if (inlineRc) {
    inline = compileRouteTable(inlineRc, inlineName, `${path}.route_config`);
    routeConfig = inlineName;
  } else return fail(path, 'rds or route_config is required');
  const fcc = str(cfg.forward_client_cert_details, `${path}.forward_client_cert_details`, 'SANITIZE');
  if (fcc === 'FORWARD_ONLY' || fcc === 'ALWAYS_FORWARD_ONLY') fail(`${path}.forward_client_cert_details`, `${fcc} is not supported`);
  const accessLog = compileAccessLogs(cfg.access_log, `${path}.access_log`);
  const tracing = compileTracing(cfg.tracing, `${path}.tracing`, inbound ? 'SERVER' : 'CLIENT', {
    value: cfg.request_id_extension,
    path: `${path}.request_id_extension`,
  });
  return {
    action: {
      kind: 'http',
      ...(accessLog.length ? { accessLog } : {}),
      ...(tracing ? { tracing } : {}),
      routeConfig,
      filters: httpFilters(cfg.http_filters, `${path}.http_filters`),
      statPrefix: str(cfg.stat_prefix, `${path}.stat_prefix`),
      forwardClientCert: fcc === 'SANITIZE_SET' || fcc === 'APPEND_FORWARD',
    },
    ...(inline ? { inline } : {}),
  };
}
