import { EXTERNAL_HTTP_FILTERS, externalFailsOpen } from '../../api/envoy-extensions.js';
import type { HTTPFault__Output } from '../../generated/envoy/extensions/filters/http/fault/v3/HTTPFault.js';
import type { JwtAuthentication__Output } from '../../generated/envoy/extensions/filters/http/jwt_authn/v3/JwtAuthentication.js';
import type { LocalRateLimit__Output } from '../../generated/envoy/extensions/filters/http/local_ratelimit/v3/LocalRateLimit.js';
import type { RBAC__Output as HttpRbac__Output } from '../../generated/envoy/extensions/filters/http/rbac/v3/RBAC.js';
import type { HttpConnectionManager__Output } from '../../generated/envoy/extensions/filters/network/http_connection_manager/v3/HttpConnectionManager.js';
import type { HttpFilter__Output } from '../../generated/envoy/extensions/filters/network/http_connection_manager/v3/HttpFilter.js';
import type { TypedStruct__Output } from '../../generated/xds/type/v3/TypedStruct.js';
import type { Decoded } from '../../xds/envoy-types.js';
import { TypedConfigUrl } from '../../xds/type-urls.js';
import type {
  HttpFilters,
  JwtAuthnConfig,
  LocalRateLimit,
  NetworkAction,
  RbacConfig,
  RouteTable,
  StatsConfig,
  UnavailableFilter,
} from '../proxy-config.js';
import { compileAccessLogs } from './access-log.js';
import { compileJwtAuthn } from './jwt-authn.js';
import { localRateLimit } from './local-rate-limit.js';
import { compileRbacRules } from './rbac.js';
import { bool, fail, list, msg, part, refuseSet, str, typedAs, typeUrlOf } from './read.js';
import { faultPolicy } from './route-action.js';
import { compileRouteTable } from './routes.js';
import { compileStats, isStatsStruct } from './stats.js';
import { compileTracing } from './tracing.js';

/** The HttpConnectionManager network filter: its route source and the HTTP filters the proxy implements. */

const ROUTER = TypedConfigUrl.router;

function httpFilters(v: readonly Decoded<HttpFilter__Output>[] | null | undefined, path: string): HttpFilters {
  const rbac: RbacConfig[] = [];
  let jwt: JwtAuthnConfig | undefined;
  let rateLimit: LocalRateLimit | undefined;
  let routeRateLimits = false;
  let unavailable: UnavailableFilter | undefined;
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
        // Another one (an EnvoyFilter's beside a LocalRateLimit's) may only carry per-route configs.
        const own = localRateLimit(typedAs<LocalRateLimit__Output>(typed, url, tp), tp);
        if (own && rateLimit) fail(p, 'a second local_ratelimit filter with its own token bucket is not supported');
        rateLimit ??= own;
        routeRateLimits = true;
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
      default: {
        const ext = EXTERNAL_HTTP_FILTERS.get(url);
        if (ext) {
          // No client for its service: Envoy's behaviour when the service cannot be reached.
          if (!unavailable && !externalFailsOpen(ext, typed as Record<string, unknown>)) {
            unavailable = { name, status: ext.status, ...(ext.flag ? { flag: ext.flag } : {}) };
          }
          return;
        }
        // Envoy skips an optional filter it does not know; anything else would change what the chain does.
        if (bool(filter.is_optional, `${p}.is_optional`)) return;
        fail(p, `HTTP filter ${name || url} (${url || 'no type'}) is not supported`);
      }
    }
  });
  if (!router) fail(path, 'the router filter must be last');
  return {
    ...(unavailable ? { unavailable } : {}),
    ...(jwt ? { jwt } : {}),
    rbac,
    ...(rateLimit ? { rateLimit } : {}),
    ...(routeRateLimits ? { routeRateLimits } : {}),
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
