import type { CorsPolicy } from '../model.js';
import { compileStringMatcher } from './matchers.js';
import { bool, fail, fraction, list, type Msg, msg, refuseSet, str, typeNameOfUrl, typeUrlOf, untypedMsg, wrappedBool } from './read.js';

export const CORS_FILTER = 'envoy.filters.http.cors';
const CORS_POLICY_TYPE = 'envoy.extensions.filters.http.cors.v3.CorsPolicy';
const FILTER_CONFIG_TYPE = 'envoy.config.route.v3.FilterConfig';

/** Envoy's per-route CorsPolicy; a policy enabled for none of the requests is none. */
function corsPolicy(c: Msg, path: string): CorsPolicy | undefined {
  if (typeNameOfUrl(typeUrlOf(c)) !== CORS_POLICY_TYPE) fail(path, `expected ${CORS_POLICY_TYPE}`);
  refuseSet(c, ['shadow_enabled', 'allow_private_network_access'], path);
  const enabled = msg(c.filter_enabled, `${path}.filter_enabled`);
  const share = enabled ? fraction(enabled.default_value, `${path}.filter_enabled.default_value`) : 1;
  if (share === 0) return undefined;
  if (share < 1) fail(`${path}.filter_enabled`, 'CORS enabled for part of the requests is not supported');
  const text = (k: string) => {
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
export function perFilterCors(v: unknown, path: string): CorsPolicy | 'none' | undefined {
  const all = msg(v, path);
  const raw = all?.[CORS_FILTER];
  if (raw === undefined) return undefined;
  const p = `${path}['${CORS_FILTER}']`;
  let c: Msg = untypedMsg(raw, p) ?? {};
  if (typeNameOfUrl(typeUrlOf(c)) === FILTER_CONFIG_TYPE) {
    if (bool(c.disabled, `${p}.disabled`)) return 'none';
    c = msg(c.config, `${p}.config`) ?? {};
  }
  return corsPolicy(c, p) ?? 'none';
}
