import { ErrorCode } from '../lib/errors.js';
import { DEFAULT_MESH_CONFIG, type MeshConfig } from './mesh-config.js';
import {
  isKind,
  RESOURCE_KINDS,
  type Resource,
  resourceKey,
  resourceLabel,
  type ValidationIssue,
  type ValidationWarning,
  WarningCode,
} from './resource.js';
import { checkReferences } from './resource-references.js';
import { Checker } from './resources/checker.js';
import { quote } from './resources/names.js';
import { KINDS } from './resources/registry.js';
import { isNamespaceWide } from './resources/security-peer-authentication.js';

export interface ValidateOptions {
  readonly mesh?: MeshConfig;
  /**
   * Report only issues about these resources (by resourceKey); the others are context, e.g. the store's
   * resources when checking what an apply adds. All issues when not given.
   */
  readonly only?: ReadonlySet<string>;
}

type Report = (r: Resource, path: string, message: string, unsupported?: boolean) => void;
type Warn = (r: Resource, path: string, message: string, code?: WarningCode) => void;

export interface CheckResult {
  /** Each refuses the resource it names. */
  readonly errors: ValidationIssue[];
  /** Reported, refusing nothing: where Istio's validation warns, and references to resources not there (yet). */
  readonly warnings: ValidationWarning[];
}

/**
 * Semantic checks over a set of resources: each resource's own rules (Istio's validation: hosts, ports,
 * weights, regexes, principals, resolution vs endpoints, TLS settings...) and the rules between resources
 * (duplicates, one mesh-wide policy). As in Istio, a reference to a resource that is not there (a subset, a
 * gateway) is a warning, not an error: resources may arrive in any order. Pass everything the result must be
 * consistent with: the store's resources with the new versions in place of the old.
 */
export function checkResources(resources: readonly Resource[], opts: ValidateOptions = {}): CheckResult {
  const mesh = opts.mesh ?? DEFAULT_MESH_CONFIG;
  const errors: ValidationIssue[] = [];
  const warnings: ValidationWarning[] = [];
  const mine = (r: Resource) => !opts.only || opts.only.has(resourceKey(r));
  const report: Report = (r, path, message, unsupported = false) => {
    if (mine(r))
      errors.push({
        resource: resourceLabel(r),
        path,
        message,
        code: unsupported ? ErrorCode.UnsupportedField : ErrorCode.InvalidResource,
      });
  };
  const warn: Warn = (r, path, message, code = WarningCode.ReferenceNotFound) => {
    if (mine(r)) warnings.push({ resource: resourceLabel(r), path, message, code });
  };
  for (const r of resources) checkOne(r, mesh, report, warn);
  checkDuplicates(resources, report);
  checkReferences(resources, mesh, (r, path, message) => warn(r, path, message));
  checkSingletons(resources, mesh, warn);
  return { errors, warnings };
}

/** The errors of checkResources: what refuses an apply. */
export function validateResources(resources: readonly Resource[], opts: ValidateOptions = {}): ValidationIssue[] {
  return checkResources(resources, opts).errors;
}

function checkOne(r: Resource, mesh: MeshConfig, report: Report, warn: Warn): void {
  if (!(RESOURCE_KINDS as readonly string[]).includes(r.kind)) {
    report(r, 'kind', `unknown kind ${quote(String(r.kind))}`);
    return;
  }
  const c = new Checker(r.metadata.namespace, mesh);
  try {
    (KINDS[r.kind].check as (spec: unknown, c: Checker) => void)(r.spec, c);
  } catch (e) {
    // Only resources built by hand (not by the parser) can be malformed enough to get here.
    report(r, 'spec', `is malformed for ${r.kind}: ${e instanceof Error ? e.message : String(e)}`);
  }
  // A dry-run policy is evaluated and reported, never enforced (Envoy's shadow rules), for ALLOW and DENY as
  // in Istio; an AUDIT policy only marks requests already, so a dry-run one has nothing to shadow.
  if (
    isKind(r, 'AuthorizationPolicy') &&
    r.metadata.annotations['istio.io/dry-run']?.toLowerCase() === 'true' &&
    r.spec.action === 'AUDIT'
  ) {
    report(r, 'metadata.annotations["istio.io/dry-run"]', 'dry-run is implemented for ALLOW and DENY policies, not AUDIT', true);
  }
  for (const f of c.findings) {
    if (f.warning) warn(r, f.path, f.message, f.notImplemented ? WarningCode.NotImplemented : WarningCode.Istio);
    else report(r, f.path, f.message, f.unsupported);
  }
}

function checkDuplicates(resources: readonly Resource[], report: Report): void {
  const seen = new Set<string>();
  for (const r of resources) {
    const key = resourceKey(r);
    if (seen.has(key)) report(r, 'metadata.name', `${resourceLabel(r)} is defined more than once`);
    seen.add(key);
  }
}

/**
 * One namespace-wide PeerAuthentication per namespace (one mesh-wide in the root namespace), one default Sidecar
 * per namespace. Istio accepts more (its analyzer flags them) and uses one; so does vmesh, the first by name
 * (it has no creation times), and warns on each of them, naming the one that applies.
 */
function checkSingletons(resources: readonly Resource[], mesh: MeshConfig, warn: Warn): void {
  const groups = new Map<string, { what: string; members: Resource[] }>();
  for (const r of resources) {
    let key: string | undefined;
    let what = '';
    if (isKind(r, 'PeerAuthentication') && isNamespaceWide(r.spec)) {
      key = `pa/${r.metadata.namespace}`;
      what =
        r.metadata.namespace === mesh.rootNamespace
          ? `mesh-wide PeerAuthentications (namespace ${mesh.rootNamespace}, no selector)`
          : `namespace-wide PeerAuthentications (no selector) in namespace ${r.metadata.namespace}`;
    } else if (isKind(r, 'Sidecar') && Object.keys(r.spec.workloadSelector?.labels ?? {}).length === 0) {
      key = `sidecar/${r.metadata.namespace}`;
      what = `Sidecars without workloadSelector in namespace ${r.metadata.namespace}`;
    }
    if (key === undefined) continue;
    const g = groups.get(key) ?? { what, members: [] };
    if (!g.members.some((m) => resourceKey(m) === resourceKey(r))) g.members.push(r);
    groups.set(key, g);
  }
  for (const { what, members } of groups.values()) {
    if (members.length < 2) continue;
    const sorted = [...members].sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : a.metadata.name > b.metadata.name ? 1 : 0));
    const winner = sorted[0] as Resource;
    const names = sorted.map((m) => m.metadata.name).join(', ');
    for (const r of sorted) {
      const verdict =
        r === winner ? 'this one applies (the first by name)' : `${resourceLabel(winner)} applies (the first by name), not this one`;
      warn(r, 'spec', `${members.length} ${what} (${names}): ${verdict}`, WarningCode.Conflict);
    }
  }
}
