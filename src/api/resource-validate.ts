import { ErrorCode } from '../lib/errors.js';
import { canonicalHost, hostMatches, splitMeshHost } from './hosts.js';
import { DEFAULT_MESH_CONFIG, type MeshConfig } from './mesh-config.js';
import { isKind, RESOURCE_KINDS, type Resource, resourceKey, resourceLabel, type ValidationIssue } from './resource.js';
import { Checker } from './resources/checker.js';
import { quote } from './resources/names.js';
import type { Destination } from './resources/networking-virtual-service.js';
import { MESH_GATEWAY } from './resources/networking-virtual-service-check.js';
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

/**
 * Semantic checks over a set of resources: each resource's own rules (Istio's validation: hosts, ports,
 * weights, regexes, principals, resolution vs endpoints, TLS settings...) and the rules between resources
 * (duplicates, subsets and gateways that must exist, one mesh-wide policy). Pass everything the result must
 * be consistent with: the store's resources with the new versions in place of the old.
 */
export function validateResources(resources: readonly Resource[], opts: ValidateOptions = {}): ValidationIssue[] {
  const mesh = opts.mesh ?? DEFAULT_MESH_CONFIG;
  const out: ValidationIssue[] = [];
  const report: Report = (r, path, message, unsupported = false) => {
    if (opts.only && !opts.only.has(resourceKey(r))) return;
    out.push({ resource: resourceLabel(r), path, message, code: unsupported ? ErrorCode.UnsupportedField : ErrorCode.InvalidResource });
  };
  for (const r of resources) checkOne(r, mesh, report);
  checkDuplicates(resources, report);
  checkReferences(resources, mesh, report);
  checkSingletons(resources, mesh, report);
  return out;
}

function checkOne(r: Resource, mesh: MeshConfig, report: Report): void {
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
  for (const f of c.findings) report(r, f.path, f.message, f.unsupported);
}

function checkDuplicates(resources: readonly Resource[], report: Report): void {
  const seen = new Set<string>();
  for (const r of resources) {
    const key = resourceKey(r);
    if (seen.has(key)) report(r, 'metadata.name', `${resourceLabel(r)} is defined more than once`);
    seen.add(key);
  }
}

/** Whether a resource with `exportTo` in namespace `owner` is visible from namespace `ns`. */
function visible(exportTo: readonly string[] | undefined, owner: string, ns: string): boolean {
  if (exportTo === undefined || exportTo.length === 0 || exportTo.includes('*')) return true;
  return exportTo.some((e) => (e === '.' ? owner : e) === ns);
}

interface RuleEntry {
  readonly r: Resource<'DestinationRule'>;
  readonly host: string;
}

/** DestinationRules by exact canonical host, and the wildcard ones to scan: large stores stay linear. */
interface RuleIndex {
  readonly exact: ReadonlyMap<string, RuleEntry[]>;
  readonly wildcard: readonly RuleEntry[];
}

function indexRules(resources: readonly Resource[], mesh: MeshConfig): RuleIndex {
  const exact = new Map<string, RuleEntry[]>();
  const wildcard: RuleEntry[] = [];
  for (const r of resources) {
    if (!isKind(r, 'DestinationRule')) continue;
    const e = { r, host: canonicalHost(r.spec.host, r.metadata.namespace, mesh) };
    if (e.host.includes('*')) wildcard.push(e);
    else exact.set(e.host, [...(exact.get(e.host) ?? []), e]);
  }
  return { exact, wildcard };
}

/**
 * The DestinationRules that apply to `host` for a client in `ns`, as Istio picks them: those in the client's
 * namespace first, then the service's, then the root namespace; within one, the most specific host. Rules for
 * the same host in one namespace are merged (their subsets add up).
 */
function rulesFor(host: string, ns: string, rules: RuleIndex, mesh: MeshConfig): RuleEntry[] {
  const candidates = [...(rules.exact.get(host) ?? []), ...rules.wildcard.filter((d) => hostMatches(d.host, host))];
  const matching = candidates.filter((d) => visible(d.r.spec.exportTo, d.r.metadata.namespace, ns));
  const tiers = [ns, splitMeshHost(host, mesh)?.namespace, mesh.rootNamespace];
  for (const tier of tiers) {
    const inTier = matching.filter((d) => d.r.metadata.namespace === tier);
    if (inTier.length === 0) continue;
    const exact = inTier.filter((d) => d.host === host);
    if (exact.length > 0) return exact;
    const longest = Math.max(...inTier.map((d) => d.host.length));
    return inTier.filter((d) => d.host.length === longest);
  }
  return [];
}

function checkSubset(
  vs: Resource<'VirtualService'>,
  path: string,
  d: Destination,
  rules: RuleIndex,
  mesh: MeshConfig,
  report: Report,
): void {
  if (d.subset === undefined) return;
  const host = canonicalHost(d.host, vs.metadata.namespace, mesh);
  const applying = rulesFor(host, vs.metadata.namespace, rules, mesh);
  if (applying.length === 0) {
    report(
      vs,
      `${path}.subset`,
      `subset ${quote(d.subset)} needs a DestinationRule for host ${host}, and none is visible from namespace ${vs.metadata.namespace}`,
    );
    return;
  }
  const defined = applying.flatMap((a) => (a.r.spec.subsets ?? []).map((s) => s.name));
  if (!defined.includes(d.subset)) {
    const names = applying.map((a) => `${a.r.metadata.namespace}/${a.r.metadata.name}`).join(', ');
    const has = defined.length > 0 ? `it defines ${defined.join(', ')}` : 'it defines no subsets';
    report(vs, `${path}.subset`, `subset ${quote(d.subset)} is not defined by DestinationRule ${names} for host ${host} (${has})`);
  }
}

function checkGatewayRef(vs: Resource<'VirtualService'>, path: string, ref: string, gateways: ReadonlySet<string>, report: Report): void {
  if (ref === MESH_GATEWAY) return;
  const parts = ref.split('/');
  const key = parts.length === 2 ? ref : `${vs.metadata.namespace}/${ref}`;
  if (parts.length <= 2 && !gateways.has(key)) report(vs, path, `Gateway ${quote(key)} is not defined`);
}

/** Subsets named by VirtualService destinations exist in a DestinationRule; gateways they bind to exist. */
function checkReferences(resources: readonly Resource[], mesh: MeshConfig, report: Report): void {
  const rules = indexRules(resources, mesh);
  const gateways = new Set(resources.filter((r) => r.kind === 'Gateway').map((r) => `${r.metadata.namespace}/${r.metadata.name}`));
  for (const r of resources) {
    if (!isKind(r, 'VirtualService')) continue;
    const s = r.spec;
    const subset = (path: string, d: Destination) => checkSubset(r, path, d, rules, mesh, report);
    const gateway = (path: string, list: readonly string[] | undefined) => {
      list?.forEach((g, i) => {
        checkGatewayRef(r, `${path}[${i}]`, g, gateways, report);
      });
    };
    gateway('spec.gateways', s.gateways);
    s.http?.forEach((h, i) => {
      h.route?.forEach((d, j) => {
        subset(`spec.http[${i}].route[${j}].destination`, d.destination);
      });
      if (h.mirror) subset(`spec.http[${i}].mirror`, h.mirror);
      h.match?.forEach((m, j) => {
        gateway(`spec.http[${i}].match[${j}].gateways`, m.gateways);
      });
    });
    for (const [proto, routes] of [
      ['tcp', s.tcp],
      ['tls', s.tls],
    ] as const) {
      routes?.forEach((t, i) => {
        t.route.forEach((d, j) => {
          subset(`spec.${proto}[${i}].route[${j}].destination`, d.destination);
        });
        t.match?.forEach((m, j) => {
          gateway(`spec.${proto}[${i}].match[${j}].gateways`, m.gateways);
        });
      });
    }
  }
}

/** One namespace-wide PeerAuthentication per namespace (one mesh-wide in the root namespace); one default Sidecar per namespace. */
function checkSingletons(resources: readonly Resource[], mesh: MeshConfig, report: Report): void {
  const first = new Map<string, Resource>();
  for (const r of resources) {
    let key: string | undefined;
    let message = '';
    if (isKind(r, 'PeerAuthentication') && isNamespaceWide(r.spec)) {
      key = `pa/${r.metadata.namespace}`;
      message =
        r.metadata.namespace === mesh.rootNamespace
          ? `only one mesh-wide PeerAuthentication (namespace ${mesh.rootNamespace}, no selector) is allowed`
          : `only one namespace-wide PeerAuthentication (no selector) is allowed in namespace ${r.metadata.namespace}`;
    } else if (isKind(r, 'Sidecar') && Object.keys(r.spec.workloadSelector?.labels ?? {}).length === 0) {
      key = `sidecar/${r.metadata.namespace}`;
      message = `only one Sidecar without workloadSelector is allowed in namespace ${r.metadata.namespace}`;
    }
    if (key === undefined) continue;
    const prior = first.get(key);
    if (prior && resourceKey(prior) !== resourceKey(r)) report(r, 'spec', `${message}; ${resourceLabel(prior)} is one already`);
    else if (!prior) first.set(key, r);
  }
}
