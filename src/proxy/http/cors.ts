import { matchString } from '../match/route-match.js';
import type { CorsPolicy } from '../proxy-config.js';
import { setHeader } from './headers.js';

/**
 * Envoy's CORS filter. A request with an Origin the route's policy allows is a CORS request: a preflight
 * (OPTIONS with Access-Control-Request-Method) is answered 200 by the proxy with the allowed methods,
 * headers and max age; any other CORS request goes on, and its response carries Access-Control-Allow-Origin
 * (the request's origin), -Allow-Credentials and -Expose-Headers. Requests without an allowed Origin pass
 * untouched (a preflight from another origin goes upstream unless forward_not_matching_preflights is off).
 */

/** A CORS request's latched policy and origin, for its response. */
export interface CorsMatch {
  readonly policy: CorsPolicy;
  readonly origin: string;
}

/** As Envoy: a matcher that matches "*" allows every origin. */
export function originAllowed(policy: CorsPolicy, origin: string): boolean {
  return policy.origins.some((m) => matchString(m, '*') || matchString(m, origin));
}

export type CorsDecision =
  | { readonly kind: 'pass' }
  | { readonly kind: 'cors'; readonly match: CorsMatch }
  | { readonly kind: 'reply'; readonly names: string[]; readonly values: string[] };

export function corsDecision(
  policy: CorsPolicy,
  method: string,
  origin: string | undefined,
  requestMethod: string | undefined,
): CorsDecision {
  if (origin === undefined || origin === '') return { kind: 'pass' };
  const preflight = method === 'OPTIONS' && requestMethod !== undefined && requestMethod !== '';
  if (!originAllowed(policy, origin)) {
    return preflight && !policy.forwardNotMatchingPreflights ? { kind: 'reply', names: [], values: [] } : { kind: 'pass' };
  }
  const match = { policy, origin };
  if (!preflight) return { kind: 'cors', match };
  const names: string[] = [];
  const values: string[] = [];
  const add = (name: string, value: string | undefined) => {
    if (value === undefined || value === '') return;
    names.push(name);
    values.push(value);
  };
  add('access-control-allow-origin', origin);
  add('access-control-allow-credentials', policy.allowCredentials ? 'true' : undefined);
  add('access-control-allow-methods', policy.allowMethods);
  add('access-control-allow-headers', policy.allowHeaders);
  add('access-control-max-age', policy.maxAge);
  return { kind: 'reply', names, values };
}

/** The response headers of an actual (not preflight) CORS request. */
export function corsResponseHeaders(m: CorsMatch, names: string[], values: string[]): void {
  setHeader(names, values, 'access-control-allow-origin', m.origin);
  if (m.policy.allowCredentials) setHeader(names, values, 'access-control-allow-credentials', 'true');
  if (m.policy.exposeHeaders) setHeader(names, values, 'access-control-expose-headers', m.policy.exposeHeaders);
}
