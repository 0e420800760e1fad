import type { MeshConfig } from '../api/mesh-config.js';
import type { Endpoint, EndpointSource, MeshService, Protocol, ServicePort } from '../api/model.js';
import type { Resource } from '../api/resource.js';
import { canonicalHost, splitMeshHost } from '../api/service-hosts.js';
import { isUnixAddress } from '../api/unix-address.js';
import type { ConsulInstance } from './consul-watcher.js';
import { consulLabels, consulServiceAccount } from './consul-watcher.js';
import { ANNOTATIONS, protocolFromPortName } from './workload-registry.js';

/** What the model is built from; every field is a plain snapshot so the build is a pure function. */
export interface ModelInputs {
  readonly mesh: MeshConfig;
  readonly serviceEntries: readonly Resource<'ServiceEntry'>[];
  readonly workloadEntries: readonly Resource<'WorkloadEntry'>[];
  readonly consul?: ReadonlyMap<string, readonly ConsulInstance[]>;
  /** Namespace Consul services appear in (`<service>.<namespace>.mesh`). */
  readonly consulNamespace: string;
  /** Hosts that joined and are not removed. */
  readonly meshedHosts: ReadonlySet<string>;
  /** Hosts an operator removed: their endpoints leave load balancing (they would be reached without mTLS). */
  readonly revokedHosts?: ReadonlySet<string>;
  /** A host's liveness: `unknown` until its agent first reports. */
  readonly hostState: (host: string) => 'live' | 'silent' | 'unknown';
  readonly workloadHealthy: (namespace: string, name: string) => boolean | undefined;
}

/** A service before its virtual IP is known. */
export type ServiceWithoutVip = Omit<MeshService, 'vip'>;

const PROTOCOLS: readonly Protocol[] = ['HTTP', 'HTTP2', 'GRPC', 'HTTPS', 'TLS', 'TCP', 'MONGO', 'REDIS', 'MYSQL'];

function protocolOf(p: string | undefined, name: string): Protocol {
  const up = (p ?? protocolFromPortName(name)).toUpperCase();
  return (PROTOCOLS as readonly string[]).includes(up) ? (up as Protocol) : 'UNKNOWN';
}

function selects(selector: Readonly<Record<string, string>>, labels: Readonly<Record<string, string>>): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

interface LabelledWorkload {
  readonly we: Resource<'WorkloadEntry'>;
  readonly labels: Readonly<Record<string, string>>;
}

/**
 * WorkloadEntries by namespace and by `label=value`, built once per model: a ServiceEntry's selector looks at the
 * entries carrying one of its labels, not at every entry (1000 services x 1000 workloads was a million checks
 * on every model change).
 */
class WorkloadIndex {
  private readonly byNamespace = new Map<string, LabelledWorkload[]>();
  private readonly byLabel = new Map<string, LabelledWorkload[]>();

  constructor(entries: readonly Resource<'WorkloadEntry'>[]) {
    for (const we of entries) {
      const w = { we, labels: { ...we.metadata.labels, ...(we.spec.labels ?? {}) } };
      push(this.byNamespace, we.metadata.namespace, w);
      for (const [k, v] of Object.entries(w.labels)) push(this.byLabel, labelKey(we.metadata.namespace, k, v), w);
    }
  }

  /** The namespace's entries the selector selects, in registration order. */
  select(namespace: string, selector: Readonly<Record<string, string>>): Resource<'WorkloadEntry'>[] {
    let candidates = this.byNamespace.get(namespace) ?? [];
    for (const [k, v] of Object.entries(selector)) {
      const c = this.byLabel.get(labelKey(namespace, k, v)) ?? [];
      if (c.length < candidates.length) candidates = c;
    }
    return candidates.filter((w) => selects(selector, w.labels)).map((w) => w.we);
  }
}

function labelKey(namespace: string, k: string, v: string): string {
  return `${namespace}\0${k}\0${v}`;
}

function push<T>(m: Map<string, T[]>, key: string, v: T): void {
  const list = m.get(key);
  if (list) list.push(v);
  else m.set(key, [v]);
}

function aliasesOf(hostname: string, mesh: MeshConfig): string[] {
  const parts = splitMeshHost(hostname, mesh);
  if (!parts) return [];
  return mesh.dnsDomainAliases.map((d) => `${parts.name}.${parts.namespace}.${d}`);
}

function workloadEndpoint(we: Resource<'WorkloadEntry'>, inputs: ModelInputs): Endpoint {
  const host = we.metadata.annotations[ANNOTATIONS.host];
  const uid = we.metadata.annotations[ANNOTATIONS.uid];
  // A unix socket is reached on the caller's own host, never through a peer's inbound mTLS port.
  const meshed = host !== undefined && inputs.meshedHosts.has(host) && !isUnixAddress(we.spec.address ?? '');
  const state = host !== undefined ? inputs.hostState(host) : 'unknown';
  const reported = inputs.workloadHealthy(we.metadata.namespace, we.metadata.name);
  // A host whose agent went silent takes its endpoints out; one never heard from is trusted until it reports.
  const revoked = host !== undefined && (inputs.revokedHosts?.has(host) ?? false);
  const healthy = !revoked && state !== 'silent' && reported !== false;
  return {
    address: we.spec.address ?? '',
    ports: { ...(we.spec.ports ?? {}) },
    labels: { ...we.metadata.labels, ...(we.spec.labels ?? {}) },
    healthy,
    ...(we.spec.locality !== undefined ? { locality: we.spec.locality } : {}),
    weight: we.spec.weight ?? 1,
    namespace: we.metadata.namespace,
    serviceAccount: we.spec.serviceAccount ?? 'default',
    meshed,
    ...(host !== undefined ? { host } : {}),
    workload: we.metadata.name,
    ...(uid !== undefined ? { uid: Number(uid) } : {}),
    source: 'registry',
  };
}

function consulEndpoint(inst: ConsulInstance, namespace: string, portName: string): Endpoint {
  return {
    address: inst.address,
    ports: { [portName]: inst.port },
    labels: consulLabels(inst),
    healthy: inst.healthy,
    weight: 1,
    namespace,
    serviceAccount: consulServiceAccount(inst),
    meshed: false,
    workload: inst.id,
    source: 'consul',
  };
}

function consulProtocol(instances: readonly ConsulInstance[]): { name: string; protocol: Protocol } {
  const declared = instances.map((i) => i.meta.protocol ?? i.tags.find((t) => /^(http|http2|grpc|tcp)$/i.test(t))).find(Boolean);
  const protocol = protocolOf(declared ?? 'TCP', 'tcp');
  return { name: protocol.toLowerCase(), protocol };
}

/**
 * The services of the mesh from ServiceEntries (their inline endpoints and the WorkloadEntries they
 * select) and from Consul. A Consul service and a ServiceEntry with the same hostname are one service.
 */
export function buildServices(inputs: ModelInputs): Map<string, ServiceWithoutVip> {
  const out = new Map<string, ServiceWithoutVip>();
  const workloads = new WorkloadIndex(inputs.workloadEntries);
  const sorted = [...inputs.serviceEntries].sort((a, b) =>
    `${a.metadata.namespace}/${a.metadata.name}`.localeCompare(`${b.metadata.namespace}/${b.metadata.name}`),
  );
  for (const se of sorted) {
    const ns = se.metadata.namespace;
    const ports: ServicePort[] = (se.spec.ports ?? []).map((p) => ({
      name: p.name,
      number: p.number,
      protocol: protocolOf(p.protocol, p.name),
      ...(p.targetPort !== undefined ? { targetPort: p.targetPort } : {}),
    }));
    const endpoints: Endpoint[] = [];
    for (const [i, e] of (se.spec.endpoints ?? []).entries()) {
      endpoints.push({
        address: e.address ?? '',
        ports: { ...(e.ports ?? {}) },
        labels: { ...(e.labels ?? {}) },
        healthy: true,
        ...(e.locality !== undefined ? { locality: e.locality } : {}),
        weight: e.weight ?? 1,
        namespace: ns,
        serviceAccount: e.serviceAccount ?? 'default',
        meshed: false,
        workload: `${se.metadata.name}-${i}`,
        source: 'config',
      });
    }
    const selector = se.spec.workloadSelector?.labels;
    if (selector) {
      for (const we of workloads.select(ns, selector)) endpoints.push(workloadEndpoint(we, inputs));
    }
    for (const h of se.spec.hosts) {
      const hostname = canonicalHost(h, ns, inputs.mesh);
      if (out.has(hostname) || hostname.includes('*')) continue; // first ServiceEntry for a host wins, as in Istio
      const parts = splitMeshHost(hostname, inputs.mesh);
      const sources: EndpointSource[] = [...new Set(endpoints.map((e) => e.source))];
      out.set(hostname, {
        hostname,
        name: parts?.name ?? hostname,
        namespace: parts?.namespace ?? ns,
        ports,
        aliases: [...aliasesOf(hostname, inputs.mesh), ...(se.spec.addresses ?? [])],
        endpoints: sortEndpoints(endpoints),
        location: se.spec.location,
        resolution: se.spec.resolution === 'DNS_ROUND_ROBIN' ? 'DNS' : se.spec.resolution,
        sources: sources.length > 0 ? sources : ['config'],
        exportTo: se.spec.exportTo && se.spec.exportTo.length > 0 ? [...se.spec.exportTo] : ['*'],
      });
    }
  }
  for (const [name, instances] of inputs.consul ?? new Map<string, readonly ConsulInstance[]>()) {
    const hostname = `${name}.${inputs.consulNamespace}.${inputs.mesh.dnsDomain}`;
    const { name: portName, protocol } = consulProtocol(instances);
    const eps = instances.map((i) => consulEndpoint(i, inputs.consulNamespace, portName));
    const existing = out.get(hostname);
    if (existing) {
      out.set(hostname, {
        ...existing,
        endpoints: sortEndpoints([...existing.endpoints, ...eps]),
        sources: [...new Set([...existing.sources, 'consul' as const])],
      });
      continue;
    }
    const port = instances[0]?.port ?? 0;
    out.set(hostname, {
      hostname,
      name,
      namespace: inputs.consulNamespace,
      ports: [{ name: portName, number: port, protocol }],
      aliases: aliasesOf(hostname, inputs.mesh),
      endpoints: sortEndpoints(eps),
      location: 'MESH_INTERNAL',
      resolution: 'STATIC',
      sources: ['consul'],
      exportTo: ['*'],
    });
  }
  return out;
}

function sortEndpoints(eps: Endpoint[]): Endpoint[] {
  return eps.sort((a, b) => `${a.address}/${a.workload}`.localeCompare(`${b.address}/${b.workload}`));
}
