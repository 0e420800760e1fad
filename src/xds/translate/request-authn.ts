import { type JwtRuleSpec, jwksSourceOf } from '../../api/resources/security-request-authentication.js';
import type { JwtAuthentication } from '../../generated/envoy/extensions/filters/http/jwt_authn/v3/JwtAuthentication.js';
import type { JwtProvider } from '../../generated/envoy/extensions/filters/http/jwt_authn/v3/JwtProvider.js';
import type { JwtRequirement } from '../../generated/envoy/extensions/filters/http/jwt_authn/v3/JwtRequirement.js';
import type { HttpFilter } from './http-filters.js';
import type { TranslateInput } from './input.js';
import { type PolicySubject, policiesApplying } from './policy-scope.js';
import { typedConfig } from './typed-config.js';

/**
 * RequestAuthentication -> Envoy's jwt_authn filter, as istiod builds it: every rule of every policy that applies
 * is a provider (sorted by issuer), a token that is present must verify, a request without one passes (unless a
 * rule says `presence: REQUIRED`), and the verified payload goes to the metadata key `payload`, where the RBAC
 * rules of `requestPrincipals` and `request.auth.*` look. Keys are inline: the rule's own `jwks`, or the set the
 * controller fetched (istiod's default fetch mode); a set not fetched yet is empty, so tokens fail rather than pass.
 */

export const JWT_AUTHN_FILTER = 'envoy.filters.http.jwt_authn';
/** Istio's default claims matched word by word (`scope: "a b"` holds `a`). */
const SPACE_DELIMITED = ['permission', 'scope'];
const EMPTY_JWKS = '{"keys":[]}';

function jwksText(input: TranslateInput, r: JwtRuleSpec): string {
  const src = jwksSourceOf(r);
  if (src.kind === 'inline') return src.jwks;
  return input.model.jwks?.get(src.key) ?? EMPTY_JWKS;
}

function provider(input: TranslateInput, r: JwtRuleSpec): JwtProvider {
  const claims = [...new Set([...(r.spaceDelimitedClaims ?? []), ...SPACE_DELIMITED])].sort();
  return {
    ...(r.issuer ? { issuer: r.issuer } : {}),
    ...(r.audiences?.length ? { audiences: [...r.audiences] } : {}),
    local_jwks: { inline_string: jwksText(input, r) },
    forward: r.forwardOriginalToken ?? false,
    ...(r.fromHeaders?.length ? { from_headers: r.fromHeaders.map((h) => ({ name: h.name, value_prefix: h.prefix ?? '' })) } : {}),
    ...(r.fromParams?.length ? { from_params: [...r.fromParams] } : {}),
    ...(r.fromCookies?.length ? { from_cookies: [...r.fromCookies] } : {}),
    ...(r.outputPayloadToHeader ? { forward_payload_header: r.outputPayloadToHeader } : {}),
    ...(r.outputClaimToHeaders?.length
      ? { claim_to_headers: r.outputClaimToHeaders.map((c) => ({ header_name: c.header, claim_name: c.claim })) }
      : {}),
    payload_in_metadata: 'payload',
    normalize_payload_in_metadata: { space_delimited_claims: claims },
  };
}

const byName = (name: string): JwtRequirement => ({ provider_name: name });

/**
 * Istio's requirement: one provider -> {P or missing}; several -> any of {P1, P2, ..., all of {Pi or missing}}
 * (the outer "any" serves providers sharing a location). A REQUIRED rule's provider must also verify.
 */
function requirement(names: readonly string[], required: readonly string[]): JwtRequirement {
  const optional = (n: string): JwtRequirement => ({ requires_any: { requirements: [byName(n), { allow_missing: {} }] } });
  const base: JwtRequirement =
    names.length === 1 && names[0] !== undefined
      ? optional(names[0])
      : { requires_any: { requirements: [...names.map(byName), { requires_all: { requirements: names.map(optional) } }] } };
  if (required.length === 0) return base;
  return { requires_all: { requirements: [...required.map(byName), base] } };
}

/** The jwt_authn filter for a workload (or gateway) the RequestAuthentications select; none when none does. */
export function jwtFilterFor(input: TranslateInput, subject: PolicySubject): HttpFilter[] {
  const rules = policiesApplying(input, input.config.requestAuthentications, subject)
    .flatMap((p) => p.spec.jwtRules ?? [])
    .sort((a, b) => ((a.issuer ?? '') < (b.issuer ?? '') ? -1 : (a.issuer ?? '') > (b.issuer ?? '') ? 1 : 0));
  if (rules.length === 0) return [];
  const providers: Record<string, JwtProvider> = {};
  const names: string[] = [];
  const required: string[] = [];
  rules.forEach((r, i) => {
    const name = `origins-${i}`;
    providers[name] = provider(input, r);
    names.push(name);
    if (r.presence === 'REQUIRED') required.push(name);
  });
  const config: JwtAuthentication = {
    providers,
    rules: [{ match: { prefix: '/' }, requires: requirement(names, required) }],
    bypass_cors_preflight: true,
  };
  return [{ name: JWT_AUTHN_FILTER, typed_config: typedConfig('jwtAuthn', config) }];
}
