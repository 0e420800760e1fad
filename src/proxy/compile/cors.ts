import type { FilterConfig__Output } from '../../generated/envoy/config/route/v3/FilterConfig.js';
import type { CorsPolicy__Output } from '../../generated/envoy/extensions/filters/http/cors/v3/CorsPolicy.js';
import type { DecodedAny } from '../../xds/envoy-types.js';
import { TYPE_URL_PREFIX } from '../../xds/type-urls.js';
import type { CorsPolicy } from '../proxy-config.js';
import { compileStringMatcher } from './matchers.js';
import { bool, fail, fraction, isTyped, list, msg, refuseSet, str, typedAs, wrappedBool } from './read.js';

export const CORS_FILTER = 'envoy.filters.http.cors';
const CORS_POLICY_URL = `${TYPE_URL_PREFIX}envoy.extensions.filters.http.cors.v3.CorsPolicy`;
export const FILTER_CONFIG_URL = `${TYPE_URL_PREFIX}envoy.config.route.v3.FilterConfig`;

/** A route's or virtual host's typed_per_filter_config: filter name -> typed config. */
export type PerFilterConfig = { readonly [filter: string]: DecodedAny } | null | undefined;

/** Envoy's per-route CorsPolicy; a policy enabled for none of the requests is none. */
function corsPolicy(typed: DecodedAny | null | undefined, path: string): CorsPolicy | undefined {
  const c = typedAs<CorsPolicy__Output>(typed, CORS_POLICY_URL, path);
  refuseSet(c, ['shadow_enabled', 'allow_private_network_access'], path);
  const enabled = msg(c.filter_enabled, `${path}.filter_enabled`);
  const share = enabled ? fraction(enabled.default_value, `${path}.filter_enabled.default_value`) : 1;
  if (share === 0) return undefined;
  if (share < 1) fail(`${path}.filter_enabled`, 'CORS enabled for part of the requests is not supported');
  const text = (k: 'allow_methods' | 'allow_headers' | 'expose_headers' | 'max_age') => {
    const v = str(c[k], `${path}.${k}`);
    return v === '' ? undefined : v;
  };
  const methods = text('allow_methods');
  const headers = text('allow_headers');
  const expose = text('expose_headers');
  const maxAge = text('max_age');
  return {
    origins: list(c.allow_origin_string_match, `${path}.allow_origin_string_match`).map((m, i) =>
      compileStringMatcher(m, `${path}.allow_origin_string_match[${i}]`),
    ),
    ...(methods ? { allowMethods: methods } : {}),
    ...(headers ? { allowHeaders: headers } : {}),
    ...(expose ? { exposeHeaders: expose } : {}),
    ...(maxAge ? { maxAge } : {}),
    allowCredentials: wrappedBool(c.allow_credentials, `${path}.allow_credentials`) ?? false,
    forwardNotMatchingPreflights: wrappedBool(c.forward_not_matching_preflights, `${path}.forward_not_matching_preflights`) ?? true,
  };
}

/**
 * typed_per_filter_config's CORS policy (FilterConfig-wrapped or not): the policy, 'none' when the route
 * disables CORS, undefined when it says nothing (the virtual host's applies).
 */
/** One filter's entry of a typed_per_filter_config (unwrapped from a FilterConfig); 'none' when disabled there. */
export function perFilterEntry(
  v: PerFilterConfig,
  filter: string,
  path: string,
): { readonly typed: DecodedAny | null | undefined; readonly path: string } | 'none' | undefined {
  const all = msg(v, path);
  const raw = all?.[filter];
  if (raw === undefined) return undefined;
  const p = `${path}['${filter}']`;
  let c: DecodedAny | null | undefined = msg(raw, p);
  if (isTyped(c, FILTER_CONFIG_URL)) {
    const fc = typedAs<FilterConfig__Output>(c, FILTER_CONFIG_URL, p);
    if (bool(fc.disabled, `${p}.disabled`)) return 'none';
    c = msg(fc.config, `${p}.config`);
  }
  return { typed: c, path: p };
}

export function perFilterCors(v: PerFilterConfig, path: string): CorsPolicy | 'none' | undefined {
  const e = perFilterEntry(v, CORS_FILTER, path);
  if (e === undefined || e === 'none') return e;
  return corsPolicy(e.typed, e.path) ?? 'none';
}
