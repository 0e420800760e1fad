import type { OrigDstAddr, RemoteAddr } from '../../lib/addr.js';
import type { Permission, Principal, RbacConfig } from '../proxy-config.js';
import { cidrContains } from './cidr.js';
import { headerMatches, matchString, metadataMatches } from './route-match.js';

/**
 * What RBAC sees of a connection or request. `header` and `path` are absent on L4 (network RBAC): permissions
 * and principals on them then never match. `header` takes lower-case names and must answer the pseudo-headers
 * `:method`, `:authority`, `:path` and `:scheme`.
 */
export interface RbacAttrs {
  /** The peer's verified SPIFFE id (URI SAN); absent for plaintext or unauthenticated peers. */
  peerIdentity?: string;
  /** The connection's client end: `source.ip`, `remote_ip`, `direct_remote_ip`. */
  readonly remote: RemoteAddr;
  /** Where the client was going: `destination.ip`, `destination.port`. */
  readonly originalDst: OrigDstAddr;
  header?(name: string): string | undefined;
  /** The request path; a query string is ignored for url_path matching, as in Envoy. */
  path?: string;
  /** A filter's dynamic metadata (the JWT filter's verified `payload`); absent on L4. */
  metadata?(filter: string): unknown;
}

/** What a shadow (dry-run) filter would have decided: Envoy's shadow_engine_result and shadow_effective_policy_id. */
export interface ShadowResult {
  readonly statPrefix: string;
  readonly allowed: boolean;
  readonly policy?: string;
}

export interface RbacDecision {
  readonly allowed: boolean;
  /** Shadow (dry-run) filters' would-be results, in chain order; they never change `allowed`. */
  readonly shadow?: readonly ShadowResult[];
  /** The policy that decided: the matching DENY policy, or the matching ALLOW policy of the last ALLOW filter. */
  readonly policy?: string;
  /** The first LOG (audit) policy that matched. */
  readonly logged?: string;
}

const ALLOWED: RbacDecision = Object.freeze({ allowed: true });
const DENIED: RbacDecision = Object.freeze({ allowed: false });

function pathOnly(path: string): string {
  const q = path.indexOf('?');
  return q < 0 ? path : path.slice(0, q);
}

function header(attrs: RbacAttrs, name: string): string | undefined {
  if (!attrs.header) return undefined;
  if (name === 'host') return attrs.header(':authority');
  return attrs.header(name);
}

export function permissionMatches(p: Permission, attrs: RbacAttrs): boolean {
  switch (p.kind) {
    case 'any':
      return true;
    case 'and':
      for (const r of p.rules) if (!permissionMatches(r, attrs)) return false;
      return true;
    case 'or':
      for (const r of p.rules) if (permissionMatches(r, attrs)) return true;
      return false;
    case 'not':
      return !permissionMatches(p.rule, attrs);
    case 'header':
      return attrs.header !== undefined && headerMatches(p.header, header(attrs, p.header.name));
    case 'path':
      return attrs.path !== undefined && matchString(p.match, pathOnly(attrs.path));
    case 'destination_port':
      return attrs.originalDst.port === p.port;
    case 'destination_ip':
      return cidrContains(p.cidr, attrs.originalDst.address);
    case 'metadata':
      return metadataMatches(p.metadata, attrs);
  }
}

export function principalMatches(p: Principal, attrs: RbacAttrs): boolean {
  switch (p.kind) {
    case 'any':
      return true;
    case 'and':
      for (const r of p.ids) if (!principalMatches(r, attrs)) return false;
      return true;
    case 'or':
      for (const r of p.ids) if (principalMatches(r, attrs)) return true;
      return false;
    case 'not':
      return !principalMatches(p.id, attrs);
    case 'authenticated':
      if (attrs.peerIdentity === undefined) return false;
      return p.match === undefined || matchString(p.match, attrs.peerIdentity);
    case 'direct_remote_ip':
    case 'remote_ip':
    case 'source_ip':
      return cidrContains(p.cidr, attrs.remote.address);
    case 'header':
      return attrs.header !== undefined && headerMatches(p.header, header(attrs, p.header.name));
    case 'metadata':
      return metadataMatches(p.metadata, attrs);
  }
}

/** The first policy of a filter whose permissions and principals both match (any of each), by name. */
export function matchingPolicy(filter: RbacConfig, attrs: RbacAttrs): string | undefined {
  for (const policy of filter.policies) {
    let perm = false;
    for (const p of policy.permissions) {
      if (permissionMatches(p, attrs)) {
        perm = true;
        break;
      }
    }
    if (!perm) continue;
    for (const id of policy.principals) if (principalMatches(id, attrs)) return policy.name;
  }
  return undefined;
}

/**
 * Envoy's RBAC filters in chain order: LOG filters only mark; a DENY filter denies when a policy matches; an
 * ALLOW filter denies when none does (so an ALLOW filter without policies denies everything). Every filter
 * must pass for the request to be allowed.
 */
export function evaluateRbac(filters: readonly RbacConfig[], attrs: RbacAttrs): RbacDecision {
  if (filters.length === 0) return ALLOWED;
  const d = enforce(filters, attrs);
  let shadow: ShadowResult[] | undefined;
  for (const f of filters) {
    if (!f.shadow) continue;
    const hit = matchingPolicy(f, attrs);
    const allowed = f.action === 'DENY' ? hit === undefined : f.action === 'ALLOW' ? hit !== undefined : true;
    if (!shadow) shadow = [];
    shadow.push({ statPrefix: f.shadow.statPrefix, allowed, ...(hit !== undefined ? { policy: hit } : {}) });
  }
  return shadow ? { ...d, shadow } : d;
}

function enforce(filters: readonly RbacConfig[], attrs: RbacAttrs): RbacDecision {
  let logged: string | undefined;
  let allowedBy: string | undefined;
  for (const f of filters) {
    if (f.shadow) continue;
    const hit = matchingPolicy(f, attrs);
    if (f.action === 'LOG') {
      logged ??= hit;
    } else if (f.action === 'DENY') {
      if (hit !== undefined) return logged === undefined ? { allowed: false, policy: hit } : { allowed: false, policy: hit, logged };
    } else if (hit === undefined) {
      return logged === undefined ? DENIED : { allowed: false, logged };
    } else allowedBy = hit;
  }
  if (logged === undefined && allowedBy === undefined) return ALLOWED;
  return { allowed: true, ...(allowedBy !== undefined ? { policy: allowedBy } : {}), ...(logged !== undefined ? { logged } : {}) };
}
