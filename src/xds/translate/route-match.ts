import type { HttpRoute } from '../../api/resources/networking-virtual-service.js';
import { MESH_GATEWAY } from '../../api/resources/networking-virtual-service-check.js';
import type { StringMatch } from '../../api/resources/schema-helpers.js';
import { routingClaim } from '../../api/routing-claim.js';
import type { HeaderMatcher } from '../../generated/envoy/config/route/v3/HeaderMatcher.js';
import type { QueryParameterMatcher } from '../../generated/envoy/config/route/v3/QueryParameterMatcher.js';
import type { RouteMatch } from '../../generated/envoy/config/route/v3/RouteMatch.js';
import type { MetadataMatcher } from '../../generated/envoy/type/matcher/v3/MetadataMatcher.js';
import type { StringMatcher } from '../../generated/envoy/type/matcher/v3/StringMatcher.js';
import type { ValueMatcher } from '../../generated/envoy/type/matcher/v3/ValueMatcher.js';

/** One `match` block of a VirtualService HTTP route. */
export type HttpMatch = NonNullable<HttpRoute['match']>[number];

/**
 * Who the routes are built for: the route config's port, the gateways it serves (`mesh` for sidecars,
 * `<namespace>/<name>` for a gateway server), the label sets of the node's workloads (gateways: the node's
 * labels) and their namespaces. A match block whose conditions exclude this node is dropped, as Istio does.
 */
export interface MatchContext {
  readonly port: number;
  readonly gateways: ReadonlySet<string>;
  readonly labelSets: readonly Readonly<Record<string, string>>[];
  readonly namespaces: ReadonlySet<string>;
}

/** `mesh` stays; `name` is the gateway `name` in the VirtualService's namespace; `ns/name` stays. */
export function resolveGatewayName(name: string, vsNamespace: string): string {
  if (name === MESH_GATEWAY || name.includes('/')) return name;
  return `${vsNamespace}/${name}`;
}

function subsetOf(wanted: Readonly<Record<string, string>>, labels: Readonly<Record<string, string>>): boolean {
  return Object.entries(wanted).every(([k, v]) => labels[k] === v);
}

/**
 * Whether a match block applies to this node: its `port` is the route config's, its `gateways` (if any)
 * name one the routes are for, its `sourceLabels` are carried by one of the node's workloads and its
 * `sourceNamespace` is one of theirs.
 */
export function matchApplies(m: HttpMatch | undefined, vsNamespace: string, ctx: MatchContext): boolean {
  if (!m) return true;
  if (m.port !== undefined && m.port !== ctx.port) return false;
  if (m.gateways && m.gateways.length > 0 && !m.gateways.some((g) => ctx.gateways.has(resolveGatewayName(g, vsNamespace)))) return false;
  const wanted = m.sourceLabels;
  if (wanted && Object.keys(wanted).length > 0 && !ctx.labelSets.some((l) => subsetOf(wanted, l))) return false;
  return m.sourceNamespace === undefined || ctx.namespaces.has(m.sourceNamespace);
}

/** An Istio StringMatch as Envoy's StringMatcher (the regex is RE2, a full match in both). */
export function stringMatcher(sm: StringMatch): StringMatcher {
  if (sm.exact !== undefined) return { exact: sm.exact };
  if (sm.prefix !== undefined) return { prefix: sm.prefix };
  return { safe_regex: { regex: sm.regex ?? '' } };
}

/** Istio reads an empty match, and the regex `*` (not RE2, a shell habit), as "present". */
function isPresence(sm: StringMatch | undefined): boolean {
  return !sm || (sm.exact === undefined && sm.prefix === undefined && (sm.regex === undefined || sm.regex === '*'));
}

function headerMatcher(name: string, sm: StringMatch | undefined): HeaderMatcher {
  if (!sm || isPresence(sm)) return { name, present_match: true };
  return { name, string_match: stringMatcher(sm) };
}

const byName = (a: { readonly name?: string }, b: { readonly name?: string }) => {
  const x = String(a.name);
  const y = String(b.name);
  return x < y ? -1 : x > y ? 1 : 0;
};

/** Envoy RouteMatch for one Istio match block (undefined: the catch-all `prefix: /`). */
export function translateMatch(m: HttpMatch | undefined): RouteMatch {
  if (!m) return { prefix: '/' };
  const out: RouteMatch = {};
  if (m.uri?.exact !== undefined) out.path = m.uri.exact;
  else if (m.uri?.prefix !== undefined) out.prefix = m.uri.prefix;
  else if (m.uri?.regex !== undefined) out.safe_regex = { regex: m.uri.regex };
  else out.prefix = '/';
  if (m.ignoreUriCase) out.case_sensitive = { value: false };

  const metadata: MetadataMatcher[] = [];
  const headers: HeaderMatcher[] = [];
  for (const [name, sm] of Object.entries(m.headers ?? {})) {
    const claims = routingClaim(name);
    if (claims?.length) metadata.push(claimMatcher(claims, sm));
    else headers.push(headerMatcher(name, sm));
  }
  for (const [name, sm] of Object.entries(m.withoutHeaders ?? {})) {
    const claims = routingClaim(name);
    if (claims?.length) {
      metadata.push({ ...claimMatcher(claims, sm), invert: true });
      continue;
    }
    const h = headerMatcher(name, sm);
    // A missing header does not equal the value either, so it must pass the inverted match (Istio does this).
    headers.push(isPresence(sm) ? { ...h, invert_match: true } : { ...h, invert_match: true, treat_missing_header_as_empty: true });
  }
  headers.sort(byName);
  if (m.method) headers.push(headerMatcher(':method', m.method));
  if (m.authority) headers.push(headerMatcher(':authority', m.authority));
  if (m.scheme) headers.push(headerMatcher(':scheme', m.scheme));
  if (headers.length > 0) out.headers = headers;

  const query = Object.entries(m.queryParams ?? {})
    .map(
      ([name, sm]): QueryParameterMatcher => (isPresence(sm) ? { name, present_match: true } : { name, string_match: stringMatcher(sm) }),
    )
    .sort(byName);
  if (query.length > 0) out.query_parameters = query;
  const claimName = (x: MetadataMatcher) => ({ name: x.path?.map((p) => p.key).join('.') ?? '' });
  if (metadata.length > 0) out.dynamic_metadata = metadata.sort((a, b) => byName(claimName(a), claimName(b)));
  return out;
}

/** As Istio's MetadataMatcherForJWTClaims: the claim's string, or any member of a list claim. */
function claimMatcher(claims: readonly string[], sm: StringMatch | undefined): MetadataMatcher {
  const value: ValueMatcher = !sm || isPresence(sm) ? { present_match: true } : { string_match: stringMatcher(sm) };
  return {
    filter: 'envoy.filters.http.jwt_authn',
    path: ['payload', ...claims].map((key) => ({ key })),
    value: { or_match: { value_matchers: [{ list_match: { one_of: value } }, value] } },
  };
}

/** A route nothing after can be reached past: `/` (or `.*`) with no header or query conditions. */
/** Whether a route's match takes every request (nothing behind it is reachable). */
export function isCatchAll(route: { readonly match?: RouteMatch | null }): boolean {
  const match = route.match ?? {};
  const path = match.prefix === '/' || match.safe_regex?.regex === '.*';
  return path && match.headers === undefined && match.query_parameters === undefined && match.dynamic_metadata === undefined;
}
