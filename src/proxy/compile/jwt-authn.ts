import { parseJwks } from '../../api/jwks.js';
import type { JwtAuthentication__Output } from '../../generated/envoy/extensions/filters/http/jwt_authn/v3/JwtAuthentication.js';
import type { JwtProvider__Output } from '../../generated/envoy/extensions/filters/http/jwt_authn/v3/JwtProvider.js';
import type { JwtRequirement__Output } from '../../generated/envoy/extensions/filters/http/jwt_authn/v3/JwtRequirement.js';
import type { Decoded } from '../../xds/envoy-types.js';
import type { JwtAuthnConfig, JwtProvider, JwtRequirement, StringMatcher } from '../proxy-config.js';
import { bool, bytesText, fail, list, msg, num, part, refuseSet, str } from './read.js';

/**
 * Envoy's jwt_authn filter config -> JwtAuthnConfig. Keys must be inline (`local_jwks`): vmesh's controller
 * fetches remote sets, as istiod does by default, so the proxy never fetches. What the runtime cannot honour
 * (remote JWKS, per-route requirement maps, filter-state rules, subjects, lifetimes) is refused, not ignored.
 */

const MAX_DEPTH = 8;

function provider(name: string, v: Partial<Decoded<JwtProvider__Output>>, path: string): JwtProvider {
  refuseSet(v, ['remote_jwks', 'subjects', 'max_lifetime', 'require_expiration', 'header_in_metadata', 'failed_status_in_metadata'], path);
  const src = msg(v.local_jwks, `${path}.local_jwks`);
  if (!src) fail(`${path}.local_jwks`, 'inline keys are required (remote JWKS is fetched by the controller)');
  const text = src.inline_string ?? (src.inline_bytes ? bytesText(src.inline_bytes) : undefined);
  if (typeof text !== 'string') fail(`${path}.local_jwks`, 'only inline_string or inline_bytes is supported');
  const jwks = parseJwks(text);
  if (!jwks.ok) fail(`${path}.local_jwks`, `invalid JWKS: ${jwks.error}`);
  const issuer = str(v.issuer, `${path}.issuer`);
  const payloadInMetadata = str(v.payload_in_metadata, `${path}.payload_in_metadata`);
  const payloadHeader = str(v.forward_payload_header, `${path}.forward_payload_header`);
  const skew = v.clock_skew_seconds;
  return {
    name,
    ...(issuer ? { issuer } : {}),
    audiences: list(v.audiences, `${path}.audiences`).map((a, i) => str(a, `${path}.audiences[${i}]`)),
    keys: jwks.value.keys,
    fromHeaders: list(v.from_headers, `${path}.from_headers`).map((h, i) => {
      const hp = part(h, `${path}.from_headers[${i}]`);
      return {
        name: str(hp.name, `${path}.from_headers[${i}].name`),
        prefix: str(hp.value_prefix, `${path}.from_headers[${i}].value_prefix`),
      };
    }),
    fromParams: list(v.from_params, `${path}.from_params`).map((p, i) => str(p, `${path}.from_params[${i}]`)),
    fromCookies: list(v.from_cookies, `${path}.from_cookies`).map((p, i) => str(p, `${path}.from_cookies[${i}]`)),
    forward: bool(v.forward, `${path}.forward`),
    ...(payloadHeader ? { payloadHeader } : {}),
    claimToHeaders: list(v.claim_to_headers, `${path}.claim_to_headers`).map((c, i) => {
      const cp = part(c, `${path}.claim_to_headers[${i}]`);
      return {
        header: str(cp.header_name, `${path}.claim_to_headers[${i}].header_name`),
        claim: str(cp.claim_name, `${path}.claim_to_headers[${i}].claim_name`),
      };
    }),
    spaceDelimitedClaims: list(
      msg(v.normalize_payload_in_metadata, `${path}.normalize_payload_in_metadata`)?.space_delimited_claims,
      path,
    ).map(String),
    ...(payloadInMetadata ? { payloadInMetadata } : {}),
    // Envoy's default skew is 60 s; 0 on the wire means unset.
    clockSkewSeconds: typeof skew === 'number' && skew > 0 ? num(skew, `${path}.clock_skew_seconds`) : 60,
  };
}

function requirement(
  v: Decoded<JwtRequirement__Output> | null | undefined,
  path: string,
  providers: ReadonlyMap<string, JwtProvider>,
  depth = 0,
): JwtRequirement {
  if (depth > MAX_DEPTH) fail(path, `requirements nested over ${MAX_DEPTH} deep are not supported`);
  const r = part(v, path);
  if (r.provider_name) {
    if (!providers.has(r.provider_name)) fail(`${path}.provider_name`, `no provider named "${r.provider_name}"`);
    return { kind: 'provider', provider: r.provider_name };
  }
  const group = (key: 'requires_any' | 'requires_all', kind: 'any' | 'all'): JwtRequirement => {
    const g = part(r[key], `${path}.${key}`);
    const requirements = list(g.requirements, `${path}.${key}.requirements`).map((x, i) =>
      requirement(x, `${path}.${key}.requirements[${i}]`, providers, depth + 1),
    );
    return { kind, requirements };
  };
  if (r.requires_any) return group('requires_any', 'any');
  if (r.requires_all) return group('requires_all', 'all');
  if (r.allow_missing) return { kind: 'allow_missing' };
  if (r.allow_missing_or_failed) return { kind: 'allow_missing_or_failed' };
  return fail(path, r.provider_and_audiences ? 'provider_and_audiences is not supported' : 'no requirement set');
}

export function compileJwtAuthn(cfg: Decoded<JwtAuthentication__Output>, path: string): JwtAuthnConfig {
  refuseSet(cfg, ['filter_state_rules', 'requirement_map'], path);
  const providers = new Map<string, JwtProvider>();
  for (const [name, p] of Object.entries(msg(cfg.providers, `${path}.providers`) ?? {})) {
    providers.set(name, provider(name, part(p, `${path}.providers['${name}']`), `${path}.providers['${name}']`));
  }
  const rules = list(cfg.rules, `${path}.rules`).map((rule, i) => {
    const rp = `${path}.rules[${i}]`;
    const r = part(rule, rp);
    const m = part(r.match, `${rp}.match`);
    let match: StringMatcher;
    if (typeof m.prefix === 'string' && m.path_specifier !== 'path') match = { kind: 'prefix', value: m.prefix, ignoreCase: false };
    else if (typeof m.path === 'string') match = { kind: 'exact', value: m.path, ignoreCase: false };
    else return fail(`${rp}.match`, 'only prefix and path matches are supported');
    if (r.requirement_name) fail(`${rp}.requirement_name`, 'not supported');
    return r.requires ? { match, requires: requirement(r.requires, `${rp}.requires`, providers) } : { match };
  });
  return { providers, rules, bypassCorsPreflight: bool(cfg.bypass_cors_preflight, `${path}.bypass_cors_preflight`) };
}
