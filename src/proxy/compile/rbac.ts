import type { CidrRange__Output } from '../../generated/envoy/config/core/v3/CidrRange.js';
import type { Permission__Output } from '../../generated/envoy/config/rbac/v3/Permission.js';
import type { Principal__Output } from '../../generated/envoy/config/rbac/v3/Principal.js';
import type { RBAC__Output } from '../../generated/envoy/config/rbac/v3/RBAC.js';
import type { Decoded } from '../../xds/envoy-types.js';
import { cidrFromRange } from '../match/cidr.js';
import type { CidrMatcher, HeaderMatcher, Permission, Principal, RbacConfig } from '../proxy-config.js';
import { compileHeaderMatcher, compileMetadataMatcher, compileStringMatcher, type HeaderMatcherMsg } from './matchers.js';
import { bool, fail, list, msg, num, part, refuseSet, str, which } from './read.js';

type PermissionMsg = Decoded<Permission__Output>;
type PrincipalMsg = Decoded<Principal__Output>;

/** What the HTTP and the network RBAC filters share: the rules, in force or in shadow mode. */
export interface RbacFilterMsg {
  readonly rules?: Decoded<RBAC__Output> | null;
  readonly shadow_rules?: Decoded<RBAC__Output> | null;
  readonly shadow_rules_stat_prefix?: string;
  readonly matcher?: unknown;
  readonly shadow_matcher?: unknown;
}

/**
 * Envoy RBAC (config.rbac.v3.RBAC inside the HTTP or network RBAC filter) -> RbacConfig. Rules the evaluator
 * cannot decide (metadata, SNI, CEL conditions...) are refused rather than guessed.
 */

function cidr(v: Decoded<CidrRange__Output> | null | undefined, path: string): CidrMatcher {
  const r = msg(v, path);
  const c = r ? cidrFromRange(r) : undefined;
  if (!c) fail(path, `invalid CIDR range ${JSON.stringify(v)}`);
  return c;
}

/** A HeaderMatcher may compile to two (see compileHeaderMatcher): they must both hold. */
function headerRule<T>(v: HeaderMatcherMsg | null | undefined, path: string, one: (h: HeaderMatcher) => T, all: (items: T[]) => T): T {
  const hs = compileHeaderMatcher(v, path).map(one);
  return hs.length === 1 ? (hs[0] as T) : all(hs);
}

const PERMISSION_RULES: readonly (keyof PermissionMsg & string)[] = [
  'and_rules',
  'or_rules',
  'any',
  'header',
  'url_path',
  'destination_ip',
  'destination_port',
  'destination_port_range',
  'metadata',
  'not_rule',
  'requested_server_name',
  'matcher',
  'uri_template',
];

export function compilePermission(v: PermissionMsg | null | undefined, path: string): Permission {
  const m = part(v, path);
  const kind = which<PermissionMsg>(m, 'rule', PERMISSION_RULES);
  switch (kind) {
    case 'any':
      if (!bool(m.any, `${path}.any`)) fail(`${path}.any`, 'must be true');
      return { kind: 'any' };
    case 'and_rules':
    case 'or_rules': {
      const set = msg(m[kind], `${path}.${kind}`);
      const rules = list(set?.rules, `${path}.${kind}.rules`).map((r, i) => compilePermission(r, `${path}.${kind}.rules[${i}]`));
      return { kind: kind === 'and_rules' ? 'and' : 'or', rules };
    }
    case 'not_rule':
      return { kind: 'not', rule: compilePermission(m.not_rule, `${path}.not_rule`) };
    case 'header':
      return headerRule<Permission>(
        m.header,
        `${path}.header`,
        (header) => ({ kind: 'header', header }),
        (rules) => ({ kind: 'and', rules }),
      );
    case 'url_path': {
      const p = part(m.url_path, `${path}.url_path`);
      if (!p.path) fail(`${path}.url_path`, 'only url_path.path is supported');
      return { kind: 'path', match: compileStringMatcher(p.path, `${path}.url_path.path`) };
    }
    case 'destination_port': {
      const port = num(m.destination_port, `${path}.destination_port`);
      return { kind: 'destination_port', port };
    }
    case 'destination_ip':
      return { kind: 'destination_ip', cidr: cidr(m.destination_ip, `${path}.destination_ip`) };
    case 'metadata':
      return { kind: 'metadata', metadata: compileMetadataMatcher(m.metadata, `${path}.metadata`) };
    default:
      return fail(`${path}${kind ? `.${kind}` : ''}`, kind ? 'not supported' : 'no rule set');
  }
}

const PRINCIPAL_IDS: readonly (keyof PrincipalMsg & string)[] = [
  'and_ids',
  'or_ids',
  'any',
  'authenticated',
  'source_ip',
  'direct_remote_ip',
  'remote_ip',
  'header',
  'url_path',
  'metadata',
  'filter_state',
  'not_id',
];

export function compilePrincipal(v: PrincipalMsg | null | undefined, path: string): Principal {
  const m = part(v, path);
  const kind = which<PrincipalMsg>(m, 'identifier', PRINCIPAL_IDS);
  switch (kind) {
    case 'any':
      if (!bool(m.any, `${path}.any`)) fail(`${path}.any`, 'must be true');
      return { kind: 'any' };
    case 'and_ids':
    case 'or_ids': {
      const set = msg(m[kind], `${path}.${kind}`);
      const ids = list(set?.ids, `${path}.${kind}.ids`).map((r, i) => compilePrincipal(r, `${path}.${kind}.ids[${i}]`));
      return { kind: kind === 'and_ids' ? 'and' : 'or', ids };
    }
    case 'not_id':
      return { kind: 'not', id: compilePrincipal(m.not_id, `${path}.not_id`) };
    case 'authenticated': {
      const a = part(m.authenticated, `${path}.authenticated`);
      const pn = msg(a.principal_name, `${path}.authenticated.principal_name`);
      return pn
        ? { kind: 'authenticated', match: compileStringMatcher(pn, `${path}.authenticated.principal_name`) }
        : { kind: 'authenticated' };
    }
    case 'source_ip':
    case 'direct_remote_ip':
    case 'remote_ip':
      return { kind, cidr: cidr(m[kind], `${path}.${kind}`) };
    case 'header':
      return headerRule<Principal>(
        m.header,
        `${path}.header`,
        (header) => ({ kind: 'header', header }),
        (ids) => ({ kind: 'and', ids }),
      );
    case 'metadata':
      return { kind: 'metadata', metadata: compileMetadataMatcher(m.metadata, `${path}.metadata`) };
    default:
      return fail(`${path}${kind ? `.${kind}` : ''}`, kind ? 'not supported' : 'no identifier set');
  }
}

const ACTIONS = ['ALLOW', 'DENY', 'LOG'] as const;

/**
 * The `rules` of an RBAC filter; undefined when it has none (Envoy then enforces nothing). Policies keep their
 * map order, which is the translator's sorted order.
 */
export function compileRbacRules(filter: RbacFilterMsg, path: string): RbacConfig | undefined {
  refuseSet(filter, ['matcher', 'shadow_matcher'], path);
  const enforced = msg(filter.rules, `${path}.rules`);
  const shadow = msg(filter.shadow_rules, `${path}.shadow_rules`);
  // vmesh's translator puts shadow rules in a filter of their own, as Istio does for dry-run policies.
  if (enforced && shadow) fail(`${path}.shadow_rules`, 'shadow_rules together with rules in one filter are not supported');
  const rules = enforced ?? shadow;
  if (!rules) return undefined;
  const field = enforced ? 'rules' : 'shadow_rules';
  const a = rules.action;
  const action = typeof a === 'number' ? ACTIONS[a] : str(a, `${path}.${field}.action`, 'ALLOW');
  if (action !== 'ALLOW' && action !== 'DENY' && action !== 'LOG') return fail(`${path}.${field}.action`, `${String(a)} is not supported`);
  const policies = Object.entries(msg(rules.policies, `${path}.${field}.policies`) ?? {}).map(([name, pv]) => {
    const pp = `${path}.${field}.policies['${name}']`;
    const p = part(pv, pp);
    refuseSet(p, ['condition', 'checked_condition'], pp);
    return {
      name,
      permissions: list(p.permissions, `${pp}.permissions`).map((x, i) => compilePermission(x, `${pp}.permissions[${i}]`)),
      principals: list(p.principals, `${pp}.principals`).map((x, i) => compilePrincipal(x, `${pp}.principals[${i}]`)),
    };
  });
  if (!enforced)
    return { action, policies, shadow: { statPrefix: str(filter.shadow_rules_stat_prefix, `${path}.shadow_rules_stat_prefix`) } };
  return { action, policies };
}
