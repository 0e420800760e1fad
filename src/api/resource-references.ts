import type { MeshConfig } from './mesh-config.js';
import { isKind, type Resource } from './resource.js';
import { quote } from './resources/names.js';
import type { Destination } from './resources/networking-virtual-service.js';
import { MESH_GATEWAY } from './resources/networking-virtual-service-check.js';
import { canonicalHost, hostMatches, splitMeshHost } from './service-hosts.js';

/**
 * References between resources, as `istioctl analyze` checks them (IST0101 ReferencedResourceNotFound): a
 * VirtualService's subsets and gateways. Istio's validation accepts either in any order, so these are warnings;
 * meanwhile a route to a missing subset answers 503 (no cluster, flag NC) as Envoy does.
 */
type Report = (r: Resource, path: string, message: string) => void;

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
      `subset ${quote(d.subset)} of host ${host} is not defined: no DestinationRule for that host is visible from namespace ${vs.metadata.namespace}; requests routed to it get 503 (no cluster) until one is applied`,
    );
    return;
  }
  const defined = applying.flatMap((a) => (a.r.spec.subsets ?? []).map((s) => s.name));
  if (!defined.includes(d.subset)) {
    const names = applying.map((a) => `${a.r.metadata.namespace}/${a.r.metadata.name}`).join(', ');
    const has = defined.length > 0 ? `it defines ${defined.join(', ')}` : 'it defines no subsets';
    report(
      vs,
      `${path}.subset`,
      `subset ${quote(d.subset)} is not defined by DestinationRule ${names} for host ${host} (${has}); requests routed to it get 503 (no cluster)`,
    );
  }
}

function checkGatewayRef(vs: Resource<'VirtualService'>, path: string, ref: string, gateways: ReadonlySet<string>, report: Report): void {
  if (ref === MESH_GATEWAY) return;
  const parts = ref.split('/');
  const key = parts.length === 2 ? ref : `${vs.metadata.namespace}/${ref}`;
  if (parts.length <= 2 && !gateways.has(key))
    report(vs, path, `Gateway ${quote(key)} is not defined (yet); routes bound to it serve nothing until it is`);
}

/** Subsets named by VirtualService destinations exist in a DestinationRule; gateways they bind to exist. */
export function checkReferences(resources: readonly Resource[], mesh: MeshConfig, report: Report): void {
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
