import { z } from 'zod';
import { parseJwks } from '../jwks.js';
import type { Checker } from './checker.js';
import { quote } from './names.js';
import { bool, type DeepReadonly, duration, matchLabelsSelector, strings } from './schema-helpers.js';
import { checkTargetRefs, targetRef } from './target-ref.js';

/**
 * RequestAuthentication (security.istio.io): which JWTs a workload accepts. As in Istio, it only says what a
 * valid token is: a request without one passes (unless a rule sets `presence: REQUIRED`), a request with an
 * invalid one is refused with 401, and AuthorizationPolicy (`requestPrincipals`, `request.auth.*`) decides who
 * may call.
 */

const jwtHeader = z.strictObject({ name: z.string(), prefix: z.string().optional() });
const claimToHeader = z.strictObject({ header: z.string(), claim: z.string() });

const jwtRule = z.strictObject({
  issuer: z.string().optional(),
  audiences: strings.optional(),
  jwksUri: z.string().optional(),
  jwks: z.string().optional(),
  fromHeaders: z.array(jwtHeader).optional(),
  fromParams: strings.optional(),
  fromCookies: strings.optional(),
  outputPayloadToHeader: z.string().optional(),
  forwardOriginalToken: bool.optional(),
  outputClaimToHeaders: z.array(claimToHeader).optional(),
  timeout: duration().optional(),
  spaceDelimitedClaims: strings.optional(),
  presence: z.enum(['OPTIONAL', 'REQUIRED']).optional(),
});

export const requestAuthenticationSpec = z.strictObject({
  selector: matchLabelsSelector.optional(),
  targetRef: targetRef.optional(),
  targetRefs: z.array(targetRef).optional(),
  jwtRules: z.array(jwtRule).optional(),
});

export type RequestAuthenticationSpec = DeepReadonly<z.output<typeof requestAuthenticationSpec>>;
export type JwtRuleSpec = NonNullable<RequestAuthenticationSpec['jwtRules']>[number];

/** Istio's CRD pattern for the header a claim is copied to. */
const CLAIM_HEADER = /^[-_A-Za-z0-9]+$/;

/** Istio's ParseJwksURI: an http or https URL. */
export function jwksUriProblem(uri: string): string | undefined {
  let u: URL;
  try {
    u = new URL(uri);
  } catch {
    return `${quote(uri)} is not a URL (url must have scheme http:// or https://)`;
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    return `URI scheme ${quote(u.protocol.slice(0, -1))} is not supported (want http or https)`;
  if (u.hostname === '') return `${quote(uri)} has no host`;
  return undefined;
}

function checkJwtRule(path: string, r: JwtRuleSpec, c: Checker): void {
  c.nonEmptyStrings(`${path}.audiences`, r.audiences);
  if (!r.issuer && !r.jwksUri) c.report(path, 'issuer or jwksUri must be set');
  if (r.jwksUri) c.check(`${path}.jwksUri`, jwksUriProblem(r.jwksUri));
  if (r.jwks !== undefined && r.jwks !== '') {
    const keys = parseJwks(r.jwks);
    if (!keys.ok) c.report(`${path}.jwks`, `jwks parse error: ${keys.error}`);
    else {
      keys.value.private.forEach((i) => {
        c.warn(`${path}.jwks`, `key at index ${i} contains private key material; only public keys are used for verification`);
      });
    }
  }
  r.fromHeaders?.forEach((h, i) => {
    if (h.name === '') c.report(`${path}.fromHeaders[${i}].name`, 'must not be an empty string');
    else c.headerName(`${path}.fromHeaders[${i}].name`, h.name);
  });
  c.nonEmptyStrings(`${path}.fromParams`, r.fromParams);
  c.nonEmptyStrings(`${path}.fromCookies`, r.fromCookies);
  c.nonEmptyStrings(`${path}.spaceDelimitedClaims`, r.spaceDelimitedClaims);
  r.outputClaimToHeaders?.forEach((o, i) => {
    const p = `${path}.outputClaimToHeaders[${i}]`;
    if (o.claim === '') c.report(`${p}.claim`, 'must not be an empty string');
    if (o.header === '') c.report(`${p}.header`, 'must not be an empty string');
    else if (!CLAIM_HEADER.test(o.header)) c.report(`${p}.header`, `${quote(o.header)} must match ${CLAIM_HEADER.source}`);
  });
  if (r.outputPayloadToHeader) c.headerName(`${path}.outputPayloadToHeader`, r.outputPayloadToHeader);
}

export function checkRequestAuthentication(spec: RequestAuthenticationSpec, c: Checker): void {
  c.labels('spec.selector.matchLabels', spec.selector?.matchLabels);
  checkTargetRefs(spec, c);
  spec.jwtRules?.forEach((r, i) => {
    checkJwtRule(`spec.jwtRules[${i}]`, r, c);
  });
}

/**
 * Where a rule's keys come from, as the controller resolves them (Istio's istiod fetch mode): the inline set,
 * the `jwksUri`, or the issuer's OpenID discovery document. The key names the fetched set in the mesh model.
 */
export type JwksSource =
  | { readonly kind: 'inline'; readonly jwks: string }
  | { readonly kind: 'uri'; readonly key: string; readonly uri: string }
  | { readonly kind: 'discovery'; readonly key: string; readonly issuer: string };

export function jwksSourceOf(r: JwtRuleSpec): JwksSource {
  if (r.jwks) return { kind: 'inline', jwks: r.jwks };
  if (r.jwksUri) return { kind: 'uri', key: r.jwksUri, uri: r.jwksUri };
  return { kind: 'discovery', key: `openid:${r.issuer ?? ''}`, issuer: r.issuer ?? '' };
}
