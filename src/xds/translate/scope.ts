import type { MeshConfig } from '../../api/mesh-config.js';
import type { MeshModel, MeshService } from '../../api/model.js';
import type { Resource } from '../../api/resource.js';
import { canonicalHost, hostMatches } from '../../api/service-hosts.js';
import type { ConfigIndex, ProxyNode, TranslateInput } from './input.js';

const byName = (a: Resource<'Sidecar'>, b: Resource<'Sidecar'>) => (a.metadata.name < b.metadata.name ? -1 : 1);

// Model and config index objects are immutable per generation: what derives from them alone is computed once.
const sortedSidecars = new WeakMap<ConfigIndex, Resource<'Sidecar'>[]>();
const sortedServices = new WeakMap<MeshModel, MeshService[]>();
/** Scopes of nodes without workloads (they depend on the namespace alone), by model, config, mesh, namespace. */
const workloadlessScopes = new WeakMap<MeshModel, WeakMap<ConfigIndex, WeakMap<MeshConfig, Map<string, MeshService[]>>>>();

function servicesByHostname(model: MeshModel): MeshService[] {
  let sorted = sortedServices.get(model);
  if (!sorted) {
    sorted = [...model.services.values()].sort((a, b) => (a.hostname < b.hostname ? -1 : 1));
    sortedServices.set(model, sorted);
  }
  return sorted;
}

function workloadlessScope(model: MeshModel, config: ConfigIndex, mesh: MeshConfig): Map<string, MeshService[]> {
  let byConfig = workloadlessScopes.get(model);
  if (!byConfig) {
    byConfig = new WeakMap();
    workloadlessScopes.set(model, byConfig);
  }
  let byMesh = byConfig.get(config);
  if (!byMesh) {
    byMesh = new WeakMap();
    byConfig.set(config, byMesh);
  }
  let byNs = byMesh.get(mesh);
  if (!byNs) {
    byNs = new Map();
    byMesh.set(mesh, byNs);
  }
  return byNs;
}

function selects(selector: Readonly<Record<string, string>>, labels: Readonly<Record<string, string>>): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

/**
 * The Sidecar that applies to a node, as Istio picks one: a Sidecar whose workloadSelector matches one of the
 * node's workloads in that workload's namespace, else the node namespace's Sidecar without selector, else the
 * root namespace's. Ties go to the first name, so the answer does not depend on arrival order.
 */
export function sidecarFor(config: ConfigIndex, node: ProxyNode, mesh: MeshConfig): Resource<'Sidecar'> | undefined {
  let sidecars = sortedSidecars.get(config);
  if (!sidecars) {
    sidecars = [...config.sidecars].sort(byName);
    sortedSidecars.set(config, sidecars);
  }
  const workloads = [...node.workloads].sort((a, b) => (`${a.namespace}/${a.workload}` < `${b.namespace}/${b.workload}` ? -1 : 1));
  for (const w of workloads) {
    const match = sidecars.find((s) => {
      const labels = s.spec.workloadSelector?.labels;
      return s.metadata.namespace === w.namespace && labels && Object.keys(labels).length > 0 && selects(labels, w.labels);
    });
    if (match) return match;
  }
  const withoutSelector = (ns: string) =>
    sidecars.find((s) => s.metadata.namespace === ns && Object.keys(s.spec.workloadSelector?.labels ?? {}).length === 0);
  return withoutSelector(node.namespace) ?? withoutSelector(mesh.rootNamespace);
}

/** ServiceEntry exportTo: `*` everyone, `.` the service's own namespace, `~` nobody, else namespace names. */
export function visibleFrom(service: MeshService, namespace: string): boolean {
  return service.exportTo.some((e) => e === '*' || e === namespace || (e === '.' && service.namespace === namespace));
}

/** Whether one Sidecar egress host (`ns/host`) selects the service; `.` is the Sidecar's namespace, `~` none. */
function egressMatches(entry: string, sidecarNs: string, service: MeshService, mesh: MeshConfig): boolean {
  const slash = entry.indexOf('/');
  const ns = entry.slice(0, slash);
  const host = entry.slice(slash + 1);
  if (ns === '~') return false;
  if (ns !== '*' && (ns === '.' ? sidecarNs : ns) !== service.namespace) return false;
  const pattern = canonicalHost(host, service.namespace, mesh);
  return [service.hostname, ...service.aliases.map((a) => canonicalHost(a, service.namespace, mesh))].some((h) => hostMatches(pattern, h));
}

/** The service's ports the Sidecar's egress listeners reach: all of them through a port-less listener, else the listed ports. */
function egressPorts(sidecar: Resource<'Sidecar'>, service: MeshService, mesh: MeshConfig): MeshService['ports'] | undefined {
  const ns = sidecar.metadata.namespace;
  const listeners = (sidecar.spec.egress ?? []).filter((l) => l.hosts.some((h) => egressMatches(h, ns, service, mesh)));
  if (listeners.length === 0) return undefined;
  if (listeners.some((l) => l.port === undefined)) return service.ports;
  const numbers = new Set(listeners.map((l) => l.port?.number));
  return service.ports.filter((p) => numbers.has(p.number));
}

/**
 * What a node sees, sorted by hostname: services exported to its namespace, narrowed to a Sidecar's egress hosts
 * (and ports) when a Sidecar with egress applies; always including the services its own workloads belong to.
 */
export function scopeServices(model: MeshModel, config: ConfigIndex, node: ProxyNode, mesh: MeshConfig): MeshService[] {
  if (node.workloads.length > 0) return computeScope(model, config, node, mesh);
  // Without workloads the scope depends on the namespace alone: alike nodes get the very same array.
  const memo = workloadlessScope(model, config, mesh);
  let scope = memo.get(node.namespace);
  if (!scope) {
    scope = computeScope(model, config, node, mesh);
    memo.set(node.namespace, scope);
  }
  return scope;
}

function computeScope(model: MeshModel, config: ConfigIndex, node: ProxyNode, mesh: MeshConfig): MeshService[] {
  const sidecar = sidecarFor(config, node, mesh);
  const own = new Set(node.workloads.map((w) => `${w.namespace}/${w.workload}`));
  const out: MeshService[] = [];
  for (const service of servicesByHostname(model)) {
    if (service.endpoints.some((ep) => own.has(`${ep.namespace}/${ep.workload}`))) {
      out.push(service);
      continue;
    }
    if (!visibleFrom(service, node.namespace)) continue;
    if (!sidecar?.spec.egress?.length) {
      out.push(service);
      continue;
    }
    const ports = egressPorts(sidecar, service, mesh);
    if (ports === undefined || (ports.length === 0 && service.ports.length > 0)) continue;
    out.push(ports.length === service.ports.length ? service : { ...service, ports });
  }
  return out;
}

/**
 * ALLOW_ANY unless the node's Sidecar (else the mesh) says REGISTRY_ONLY: what 15001 does with unknown
 * destinations, and whether a service's listener takes a Host no service claims.
 */
export function outboundTrafficMode(input: TranslateInput): 'ALLOW_ANY' | 'REGISTRY_ONLY' {
  return sidecarFor(input.config, input.node, input.mesh)?.spec.outboundTrafficPolicy?.mode ?? input.mesh.outboundTrafficPolicy.mode;
}
