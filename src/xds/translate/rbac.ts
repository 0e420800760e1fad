import type { Endpoint } from '../../api/model.js';
import type { AuthorizationPolicySpec, Resource } from '../../api/resource.js';
import type { CidrRange } from '../../generated/envoy/config/core/v3/CidrRange.js';
import type { Permission } from '../../generated/envoy/config/rbac/v3/Permission.js';
import type { Policy as EnvoyPolicy } from '../../generated/envoy/config/rbac/v3/Policy.js';
import type { Principal } from '../../generated/envoy/config/rbac/v3/Principal.js';
import type { RBAC } from '../../generated/envoy/config/rbac/v3/RBAC.js';
import type { RBAC as HttpRbac } from '../../generated/envoy/extensions/filters/http/rbac/v3/RBAC.js';
import type { MetadataMatcher } from '../../generated/envoy/type/matcher/v3/MetadataMatcher.js';
import type { StringMatcher } from '../../generated/envoy/type/matcher/v3/StringMatcher.js';
import type { ValueMatcher } from '../../generated/envoy/type/matcher/v3/ValueMatcher.js';
import type { Any } from '../../generated/google/protobuf/Any.js';
import { parseCidr } from '../../lib/addr.js';
import type { TranslateInput } from './input.js';
import { policiesApplying } from './policy-scope.js';
import { typedConfig } from './typed-config.js';

/**
 * AuthorizationPolicy -> Envoy RBAC filters, with Istio's semantics: inside a rule the `from` sources are OR'ed
 * and the fields of one source AND'ed (likewise `to`), `when` conditions AND'ed with both; a rule without
 * from/to/when matches everything; DENY is evaluated before ALLOW; ALLOW policies that select a workload but
 * have no rules allow nothing.
 */

/**
 * A rule the combinators below build for either side: Permission and Principal share their shapes (any, header,
 * url_path, and/or/not), so one value of both types serves both.
 */
type RbacMatch = Permission & Principal;
type Rule = NonNullable<AuthorizationPolicySpec['rules']>[number];
type Source = NonNullable<Rule['from']>[number]['source'];
type Operation = NonNullable<Rule['to']>[number]['operation'];
type Condition = NonNullable<Rule['when']>[number];
type Policy = Resource<'AuthorizationPolicy'>;
type Action = 'ALLOW' | 'DENY' | 'LOG';

/** An HTTP or a network RBAC filter: the shape HttpFilter and the listener's Filter share. */
export interface RbacFilter {
  readonly name: string;
  readonly typed_config: Any;
}

const HTTP_RBAC = 'envoy.filters.http.rbac';
const NETWORK_RBAC = 'envoy.filters.network.rbac';

interface Ctx {
  readonly trustDomains: readonly string[];
  /** Network (TCP) RBAC: HTTP-only fields cannot be evaluated there. */
  readonly tcp: boolean;
  /** The namespace of the policy being translated: a service account without one lives there. */
  readonly namespace: string;
}

// ---- string matchers with Istio's `*` rules: `*` alone = anything, `x*` = prefix, `*x` = suffix ----

type Match = { kind: 'any' } | { kind: 'exact' | 'prefix' | 'suffix'; value: string };

function istioMatch(v: string): Match {
  if (v === '*') return { kind: 'any' };
  if (v.endsWith('*')) return { kind: 'prefix', value: v.slice(0, -1) };
  if (v.startsWith('*')) return { kind: 'suffix', value: v.slice(1) };
  return { kind: 'exact', value: v };
}

function stringMatcher(m: Exclude<Match, { kind: 'any' }>, extra: StringMatcher = {}): StringMatcher {
  return { [m.kind]: m.value, ...extra };
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

// ---- boolean combinators; one member needs no wrapper, none means "anything" ----

function allOf(kind: 'permission' | 'principal', items: readonly RbacMatch[]): RbacMatch {
  if (items.length === 0) return { any: true };
  if (items.length === 1 && items[0]) return items[0];
  return kind === 'permission' ? { and_rules: { rules: [...items] } } : { and_ids: { ids: [...items] } };
}

function anyOf(kind: 'permission' | 'principal', items: readonly RbacMatch[]): RbacMatch {
  if (items.length === 1 && items[0]) return items[0];
  return kind === 'permission' ? { or_rules: { rules: [...items] } } : { or_ids: { ids: [...items] } };
}

function not(kind: 'permission' | 'principal', item: RbacMatch): RbacMatch {
  return kind === 'permission' ? { not_rule: item } : { not_id: item };
}

/** `values` OR'ed, AND'ed with none of `notValues`: Istio's value/notValue pairs. */
function field(
  kind: 'permission' | 'principal',
  values: readonly RbacMatch[] | undefined,
  notValues: readonly RbacMatch[] | undefined,
): RbacMatch[] {
  const out: RbacMatch[] = [];
  if (values && values.length > 0) out.push(anyOf(kind, values));
  if (notValues && notValues.length > 0) out.push(not(kind, anyOf(kind, notValues)));
  return out;
}

// ---- principals (who) ----

function authenticated(principalName: StringMatcher): RbacMatch {
  return { authenticated: { principal_name: principalName } };
}

/** `cluster.local/ns/x/sa/y`: the mesh's trust domain and its aliases name one identity (Istio's trust domain aliases). */
function principalIds(p: string, ctx: Ctx): RbacMatch[] {
  const m = istioMatch(p);
  if (m.kind === 'any') return [authenticated({ safe_regex: { regex: '.+' } })];
  if (m.kind === 'suffix') return [authenticated(stringMatcher(m))];
  const slash = m.value.indexOf('/');
  const td = slash > 0 ? m.value.slice(0, slash) : undefined;
  const domains = td !== undefined && ctx.trustDomains.includes(td) ? ctx.trustDomains : [td];
  return domains.map((d) => {
    const rest = d === undefined ? m.value : `${d}${m.value.slice(slash)}`;
    return authenticated(stringMatcher({ kind: m.kind, value: `spiffe://${rest}` }));
  });
}

function namespaceId(ns: string): RbacMatch {
  const m = istioMatch(ns);
  const part =
    m.kind === 'any'
      ? '[^/]+'
      : m.kind === 'prefix'
        ? `${escapeRegex(m.value)}[^/]*`
        : m.kind === 'suffix'
          ? `[^/]*${escapeRegex(m.value)}`
          : escapeRegex(m.value);
  return authenticated({ safe_regex: { regex: `spiffe://[^/]+/ns/${part}/sa/[^/]+` } });
}

/**
 * `ns/sa` (or `sa`, in the policy's namespace) -> Istio's SPIFFE regex: any trust domain (so aliases need nothing
 * more), the namespace and service account as whole path segments, other SPIFFE segments allowed around them.
 */
function serviceAccountId(v: string, ctx: Ctx): RbacMatch {
  const slash = v.indexOf('/');
  const ns = slash >= 0 ? v.slice(0, slash) : ctx.namespace;
  const sa = slash >= 0 ? v.slice(slash + 1) : v;
  return authenticated({ safe_regex: { regex: `spiffe://.+/ns/${escapeRegex(ns)}/(.+/|)sa/${escapeRegex(sa)}(/.+)?` } });
}

/** Istio's trustDomains / source.trustDomain: the trust domain part of the peer's SPIFFE id. */
function trustDomainId(v: string): RbacMatch {
  if (v === '*') return authenticated({ prefix: 'spiffe://' });
  if (!v.includes('*')) return authenticated({ prefix: `spiffe://${v}/` });
  const [a = '', b = ''] = v.split('*', 2);
  return authenticated({ safe_regex: { regex: `spiffe://${escapeRegex(a)}[^/]*${escapeRegex(b)}/.*` } });
}

// ---- request (JWT) identities: the verified token's payload, which the jwt_authn filter puts in its metadata ----

const JWT_FILTER = 'envoy.filters.http.jwt_authn';
const ANY_VALUE: StringMatcher = { safe_regex: { regex: '.+' } };

/** A claim of the token's payload (nested claims by path) compared as a string, or as any member of a list. */
function claimMatch(claims: readonly string[], value: ValueMatcher, listToo: boolean): RbacMatch {
  const metadata: MetadataMatcher = {
    filter: JWT_FILTER,
    path: ['payload', ...claims].map((key) => ({ key })),
    value: listToo ? { or_match: { value_matchers: [{ list_match: { one_of: value } }, value] } } : value,
  };
  return { metadata } as RbacMatch;
}

function claimValueMatcher(v: string): ValueMatcher {
  const m = istioMatch(v);
  return { string_match: m.kind === 'any' ? ANY_VALUE : stringMatcher(m) };
}

function anyValue(values: readonly string[]): ValueMatcher {
  const ms = values.map(claimValueMatcher);
  return ms.length === 1 && ms[0] ? ms[0] : { or_match: { value_matchers: ms } };
}

/** `iss/sub` (the last `/` splits, as issuers are often URLs), with Istio's `*` forms on either side. */
function requestPrincipalId(v: string): RbacMatch {
  const idx = v.lastIndexOf('/');
  const found = idx >= 0;
  const iss = found ? v.slice(0, idx) : v;
  const sub = found ? v.slice(idx + 1) : '';
  let mi: StringMatcher;
  let ms: StringMatcher;
  if (v === '*') [mi, ms] = [ANY_VALUE, ANY_VALUE];
  else if (v.startsWith('*')) {
    if (found) [mi, ms] = [iss === '*' ? ANY_VALUE : { suffix: iss.slice(1) }, { exact: sub }];
    else [mi, ms] = [ANY_VALUE, { suffix: v.slice(1) }];
  } else if (v.endsWith('*')) {
    if (found) [mi, ms] = [{ exact: iss }, sub === '*' ? ANY_VALUE : { prefix: sub.slice(0, -1) }];
    else [mi, ms] = [{ prefix: v.slice(0, -1) }, ANY_VALUE];
  } else [mi, ms] = [{ exact: iss }, { exact: sub }];
  return { and_ids: { ids: [claimMatch(['iss'], { string_match: mi }, false), claimMatch(['sub'], { string_match: ms }, false)] } };
}

/** `[a][b]` -> `['a', 'b']`. */
function bracketed(s: string): string[] {
  return [...s.matchAll(/\[([^[\]]+)\]/g)].map((m) => m[1] ?? '');
}

function cidr(text: string, what: string): CidrRange {
  const c = parseCidr(text, what);
  return { address_prefix: c.address, prefix_len: { value: c.prefix } };
}

function sourceIds(s: Source, ctx: Ctx, where: string): RbacMatch[] {
  const ids = (list: readonly string[] | undefined, f: (v: string) => RbacMatch[]) => list?.flatMap(f);
  const ip = (v: string): RbacMatch[] => [{ direct_remote_ip: cidr(v, `${where}.ipBlocks`) }];
  const remote = (v: string): RbacMatch[] => [{ remote_ip: cidr(v, `${where}.remoteIpBlocks`) }];
  return [
    ...field(
      'principal',
      ids(s.principals, (p) => principalIds(p, ctx)),
      ids(s.notPrincipals, (p) => principalIds(p, ctx)),
    ),
    ...field('principal', s.namespaces?.map(namespaceId), s.notNamespaces?.map(namespaceId)),
    ...field(
      'principal',
      s.serviceAccounts?.map((v) => serviceAccountId(v, ctx)),
      s.notServiceAccounts?.map((v) => serviceAccountId(v, ctx)),
    ),
    ...field('principal', ids(s.ipBlocks, ip), ids(s.notIpBlocks, ip)),
    ...field('principal', ids(s.remoteIpBlocks, remote), ids(s.notRemoteIpBlocks, remote)),
    ...field('principal', s.trustDomains?.map(trustDomainId), s.notTrustDomains?.map(trustDomainId)),
    ...(ctx.tcp ? [] : field('principal', s.requestPrincipals?.map(requestPrincipalId), s.notRequestPrincipals?.map(requestPrincipalId))),
  ];
}

// ---- permissions (what) ----

function headerRule(name: string, v: string, extra: StringMatcher = {}): RbacMatch {
  const m = istioMatch(v);
  return { header: m.kind === 'any' ? { name, present_match: true } : { name, string_match: stringMatcher(m, extra) } };
}

function pathRule(p: string): RbacMatch {
  const m = istioMatch(p);
  return m.kind === 'any' ? { any: true } : { url_path: { path: stringMatcher(m) } };
}

const HTTP_OPERATION_FIELDS = ['hosts', 'notHosts', 'methods', 'notMethods', 'paths', 'notPaths'] as const;

function operationRules(o: Operation, ctx: Ctx): RbacMatch[] {
  const host = (h: string) => headerRule(':authority', h, { ignore_case: true });
  const method = (m: string) => headerRule(':method', m);
  const port = (p: number): RbacMatch => ({ destination_port: p });
  return [
    ...(ctx.tcp ? [] : field('permission', o.hosts?.map(host), o.notHosts?.map(host))),
    ...(ctx.tcp ? [] : field('permission', o.methods?.map(method), o.notMethods?.map(method))),
    ...(ctx.tcp ? [] : field('permission', o.paths?.map(pathRule), o.notPaths?.map(pathRule))),
    ...field('permission', o.ports?.map(port), o.notPorts?.map(port)),
  ];
}

// ---- conditions (`when`): each lands on the side of the policy it describes ----

const HEADER_KEY = /^request\.headers\[([^\]]+)\]$/;
const CLAIMS_KEY = /^request\.auth\.claims((?:\[[^[\]]+\])+)$/;
const EXPERIMENTAL_KEY = /^experimental\.envoy\.filters\.([^[\]]+)((?:\[[^[\]]+\])+)$/;
/** Conditions only an HTTP request has: an ALLOW rule with them allows no TCP connection. */
const HTTP_KEY = /^(request\.|experimental\.)/;

function conditionParts(c: Condition, ctx: Ctx, where: string): { permissions: RbacMatch[]; principals: RbacMatch[] } {
  const on = (kind: 'permission' | 'principal', f: (v: string) => RbacMatch[]) => {
    const parts = field(kind, c.values?.flatMap(f), c.notValues?.flatMap(f));
    return kind === 'permission' ? { permissions: parts, principals: [] } : { permissions: [], principals: parts };
  };
  const header = HEADER_KEY.exec(c.key);
  if (header?.[1] !== undefined) {
    const name = header[1].toLowerCase();
    return ctx.tcp ? { permissions: [], principals: [] } : on('permission', (v) => [headerRule(name, v)]);
  }
  const claims = CLAIMS_KEY.exec(c.key);
  if (claims?.[1] !== undefined) {
    if (ctx.tcp) return { permissions: [], principals: [] };
    const path = bracketed(claims[1]);
    return on('principal', (v) => [claimMatch(path, claimValueMatcher(v), true)]);
  }
  const experimental = EXPERIMENTAL_KEY.exec(c.key);
  if (experimental?.[1] !== undefined && experimental[2] !== undefined) {
    const filter = `envoy.filters.${experimental[1]}`;
    const path = bracketed(experimental[2]).map((key) => ({ key }));
    return on('permission', (v) => [{ metadata: { filter, path, value: claimValueMatcher(v) } } as RbacMatch]);
  }
  switch (c.key) {
    case 'request.auth.principal':
      return ctx.tcp ? { permissions: [], principals: [] } : on('principal', (v) => [requestPrincipalId(v)]);
    case 'request.auth.audiences':
    case 'request.auth.presenter': {
      if (ctx.tcp) return { permissions: [], principals: [] };
      const claim = c.key === 'request.auth.audiences' ? 'aud' : 'azp';
      const parts = field(
        'principal',
        c.values?.length ? [claimMatch([claim], anyValue(c.values), true)] : undefined,
        c.notValues?.length ? [claimMatch([claim], anyValue(c.notValues), true)] : undefined,
      );
      return { permissions: [], principals: parts };
    }
    case 'remote.ip':
      return on('principal', (v) => [{ remote_ip: cidr(v, `${where}.values`) }]);
    case 'source.trustDomain':
      return on('principal', (v) => [trustDomainId(v)]);
    case 'source.ip':
      return on('principal', (v) => [{ direct_remote_ip: cidr(v, `${where}.values`) }]);
    case 'source.namespace':
      return on('principal', (v) => [namespaceId(v)]);
    case 'source.principal':
      return on('principal', (v) => principalIds(v, ctx));
    case 'source.serviceAccount':
      return on('principal', (v) => [serviceAccountId(v, ctx)]);
    case 'destination.ip':
      return on('permission', (v) => [{ destination_ip: cidr(v, `${where}.values`) }]);
    case 'destination.port':
      return on('permission', (v) => [{ destination_port: Number(v) }]);
    case 'connection.sni':
      return on('permission', (v) => {
        const m = istioMatch(v);
        return [m.kind === 'any' ? { any: true } : { requested_server_name: stringMatcher(m) }];
      });
    default:
      // Validation refuses every other key before it gets here.
      return { permissions: [], principals: [] };
  }
}

function hasHttpFields(r: Rule): boolean {
  return (
    (r.to ?? []).some((t) => HTTP_OPERATION_FIELDS.some((f) => (t.operation[f]?.length ?? 0) > 0)) ||
    (r.from ?? []).some((f) => (f.source.requestPrincipals?.length ?? 0) > 0 || (f.source.notRequestPrincipals?.length ?? 0) > 0) ||
    (r.when ?? []).some((w) => HTTP_KEY.test(w.key))
  );
}

/** One Envoy policy per rule: permissions = its `to` entries (OR), principals = its `from` entries (OR). */
function rulePolicy(r: Rule, ctx: Ctx, where: string): EnvoyPolicy {
  const conds = (r.when ?? []).map((c, i) => conditionParts(c, ctx, `${where}.when[${i}]`));
  const permConds = conds.flatMap((c) => c.permissions);
  const princConds = conds.flatMap((c) => c.principals);
  const to = r.to ?? [undefined];
  const from = r.from ?? [undefined];
  return {
    permissions: to.map((t) => allOf('permission', [...(t ? operationRules(t.operation, ctx) : []), ...permConds])),
    principals: from.map((f, i) =>
      allOf('principal', [...(f ? sourceIds(f.source, ctx, `${where}.from[${i}].source`) : []), ...princConds]),
    ),
  };
}

// ---- which policies apply ----

/** The AuthorizationPolicies that apply to a workload: its namespace's and the root namespace's (mesh-wide), by key. */
export function policiesFor(input: TranslateInput, workload: Endpoint): Policy[] {
  return policiesApplying(input, input.config.authorizationPolicies, workload);
}

/** Istio's dry-run annotation: the policy is evaluated and reported, never enforced. */
export function isDryRun(p: Policy): boolean {
  return p.metadata.annotations['istio.io/dry-run']?.toLowerCase() === 'true';
}

function rbacRules(policies: readonly Policy[], action: Action, ctx: Ctx): RBAC {
  const out: Record<string, EnvoyPolicy> = {};
  for (const p of policies) {
    p.spec.rules?.forEach((r, i) => {
      const where = `AuthorizationPolicy ${p.metadata.namespace}/${p.metadata.name}: spec.rules[${i}]`;
      // Istio's TCP semantics: an ALLOW rule that needs HTTP attributes can never be proven to match a connection,
      // so it is left out (it allows nothing); a DENY rule keeps only its TCP fields, so it denies more rather than
      // letting through what it was written to stop.
      if (ctx.tcp && action === 'ALLOW' && hasHttpFields(r)) return;
      out[`${p.metadata.namespace}/${p.metadata.name}[${i}]`] = rulePolicy(r, { ...ctx, namespace: p.metadata.namespace }, where);
    });
  }
  return { action, policies: out };
}

/**
 * The RBAC filters for a workload's inbound port, in evaluation order: AUDIT policies (action LOG, which only
 * marks requests), then DENY, then ALLOW. No filter for an action without policies; ALLOW policies whose rules
 * are all empty (or all dropped for TCP) leave an ALLOW filter without policies, which denies everything.
 */
export function rbacFor(input: TranslateInput, workload: Endpoint, kind: 'http' | 'network'): RbacFilter[] {
  const ctx: Ctx = { trustDomains: [input.mesh.trustDomain, ...input.mesh.trustDomainAliases], tcp: kind === 'network', namespace: '' };
  const policies = policiesFor(input, workload);
  const filters: RbacFilter[] = [];
  const order: Array<[AuthorizationPolicySpec['action'], Action]> = [
    ['AUDIT', 'LOG'],
    ['DENY', 'DENY'],
    ['ALLOW', 'ALLOW'],
  ];
  const filter = (config: HttpRbac): RbacFilter =>
    kind === 'http'
      ? { name: HTTP_RBAC, typed_config: typedConfig('httpRbac', config) }
      : { name: NETWORK_RBAC, typed_config: typedConfig('networkRbac', { stat_prefix: 'tcp.', ...config }) };
  // Dry-run policies (istio.io/dry-run: "true") are Envoy shadow rules, as Istio builds them: evaluated and
  // reported (shadow_effective_policy_id / shadow_engine_result, counters), never enforced. They go first, so a
  // request an enforced policy denies is still reported.
  for (const [specAction, action] of order) {
    const dry = policies.filter((p) => p.spec.action === specAction && isDryRun(p));
    if (dry.length === 0 || action === 'LOG') continue;
    filters.push(filter({ shadow_rules: rbacRules(dry, action, ctx), shadow_rules_stat_prefix: `istio_dry_run_${action.toLowerCase()}_` }));
  }
  for (const [specAction, action] of order) {
    const selected = policies.filter((p) => p.spec.action === specAction && !isDryRun(p));
    if (selected.length === 0) continue;
    filters.push(filter({ rules: rbacRules(selected, action, ctx) }));
  }
  return filters;
}
