import type { Endpoint, MeshService, ServicePort } from '../../api/model.js';
import { isUnixAddress, unixSocketPath } from '../../api/unix-address.js';
import type { Address } from '../../generated/envoy/config/core/v3/Address.js';
import type { Locality as EnvoyLocality } from '../../generated/envoy/config/core/v3/Locality.js';
import type { ClusterLoadAssignment } from '../../generated/envoy/config/endpoint/v3/ClusterLoadAssignment.js';
import type { LbEndpoint } from '../../generated/envoy/config/endpoint/v3/LbEndpoint.js';
import { toStruct } from '../struct.js';
import { findDestinationRule, subsetsOf, type TrafficPolicy, trafficPolicyFor } from './destination-rule.js';
import type { EnvoyResource, ProxyNode, TranslateInput } from './input.js';
import { outboundClusterName, TLS_MODE_METADATA, WORKLOAD_METADATA } from './names.js';

/** How a cluster finds its endpoints: EDS (the registry's endpoints), DNS (resolve the host), ORIGINAL_DST (as asked). */
export type Discovery = 'EDS' | 'DNS' | 'ORIGINAL_DST';

/** One outbound cluster to build: a service port, or a DestinationRule subset of it, with its merged policy. */
export interface OutboundCluster {
  readonly name: string;
  readonly service: MeshService;
  readonly port: ServicePort;
  /** '' for the whole service. */
  readonly subset: string;
  /** The subset's label selector; undefined for the whole service. */
  readonly labels?: Readonly<Record<string, string>>;
  readonly policy?: TrafficPolicy;
  readonly discovery: Discovery;
}

interface Locality {
  readonly region: string;
  readonly zone: string;
  readonly subZone: string;
}

const byString = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

function discoveryOf(service: MeshService, policy: TrafficPolicy | undefined): Discovery {
  if (service.resolution === 'NONE' || policy?.loadBalancer?.simple === 'PASSTHROUGH') return 'ORIGINAL_DST';
  return service.resolution === 'DNS' ? 'DNS' : 'EDS';
}

/**
 * Every outbound cluster the node needs, sorted by name: one per visible service port and one per
 * DestinationRule subset of it (the DestinationRule the node's namespace sees), each with its merged policy.
 */
export function outboundClusters(input: TranslateInput): OutboundCluster[] {
  const out: OutboundCluster[] = [];
  for (const service of input.services) {
    const dr = findDestinationRule(input, service.hostname, input.node.namespace);
    for (const port of service.ports) {
      const policy = trafficPolicyFor(dr, port.number);
      const name = outboundClusterName(port.number, '', service.hostname);
      out.push({ name, service, port, subset: '', ...(policy ? { policy } : {}), discovery: discoveryOf(service, policy) });
      for (const s of subsetsOf(dr)) {
        const sp = trafficPolicyFor(dr, port.number, s.name);
        out.push({
          name: outboundClusterName(port.number, s.name, service.hostname),
          service,
          port,
          subset: s.name,
          labels: s.labels,
          ...(sp ? { policy: sp } : {}),
          discovery: discoveryOf(service, sp),
        });
      }
    }
  }
  return out.sort((a, b) => byString(a.name, b.name));
}

/** Where an endpoint listens for a service port: its own port for that port name, else targetPort, else the port. */
export function endpointPort(ep: Endpoint, port: ServicePort): number {
  return ep.ports[port.name] ?? port.targetPort ?? port.number;
}

/** The cluster's endpoints: the service's, narrowed by the subset's labels. */
export function clusterEndpoints(c: OutboundCluster): Endpoint[] {
  const labels = Object.entries(c.labels ?? {});
  return c.service.endpoints.filter((ep) => labels.every(([k, v]) => ep.labels[k] === v));
}

function parseLocality(text: string | undefined): Locality {
  const [region = '', zone = '', subZone = ''] = (text ?? '').split('/');
  return { region, zone, subZone };
}

/** The proxy's own locality: that of its first workload (by namespace/name) that declares one. */
export function nodeLocality(node: ProxyNode): string | undefined {
  if (node.locality) return node.locality;
  const withLocality = node.workloads.filter((w) => w.locality);
  withLocality.sort((a, b) => byString(`${a.namespace}/${a.workload}`, `${b.namespace}/${b.workload}`));
  return withLocality[0]?.locality;
}

/** Istio's LocalityMatch: `region/zone/subzone` with `*` or omitted parts matching anything. */
function localityMatches(l: Locality, pattern: string): boolean {
  const p = parseLocality(pattern);
  const part = (rule: string, value: string, emptyMatches: boolean) => rule === '*' || rule === value || (emptyMatches && rule === '');
  return part(p.region, l.region, false) && part(p.zone, l.zone, true) && part(p.subZone, l.subZone, true);
}

interface Group {
  locality: Locality;
  endpoints: Endpoint[];
  weight: number;
  priority: number;
}

/** Istio's LbPriority: 0 same subzone, 1 same zone, 2 same region, 3 elsewhere (4 when failover names another region). */
function applyFailover(groups: Group[], node: Locality, failover: readonly { from: string; to: string }[]): void {
  for (const g of groups) {
    const l = g.locality;
    let p = l.region !== node.region ? 3 : l.zone !== node.zone ? 2 : l.subZone !== node.subZone ? 1 : 0;
    const rule = failover.find((f) => f.from === node.region);
    if (p === 3 && rule && l.region !== rule.to) p = 4;
    g.priority = p;
  }
  // Priorities must run from 0 without gaps.
  const used = [...new Set(groups.map((g) => g.priority))].sort((a, b) => a - b);
  for (const g of groups) g.priority = used.indexOf(g.priority);
}

/** The most specific pattern first (no wildcard, then more labels), so overlapping `to` keys resolve the same way every time. */
function patternOrder(a: string, b: string): number {
  const rank = (p: string) => (p.includes('*') ? 0 : 100) + p.split('/').filter((x) => x !== '' && x !== '*').length;
  return rank(b) - rank(a) || byString(a, b);
}

/** Istio's applyLocalityWeights: share traffic across destination localities; localities no rule names get none. */
function applyDistribute(
  groups: Group[],
  node: Locality,
  distribute: readonly { from: string; to: Readonly<Record<string, number>> }[],
): Group[] {
  const rule = distribute.find((d) => localityMatches(node, d.from));
  if (!rule) return groups;
  const unmatched = new Set(groups);
  for (const pattern of Object.keys(rule.to).sort(patternOrder)) {
    const share = rule.to[pattern] ?? 0;
    const matched = [...unmatched].filter((g) => localityMatches(g.locality, pattern));
    const total = matched.reduce((sum, g) => sum + g.weight, 0);
    for (const g of matched) {
      unmatched.delete(g);
      const w = Math.ceil((g.weight * share) / total);
      if (w > 0) g.weight = w;
      else unmatched.add(g);
    }
  }
  return groups.filter((g) => !unmatched.has(g));
}

function groupByLocality(endpoints: readonly Endpoint[]): Group[] {
  const groups = new Map<string, Group>();
  for (const ep of endpoints) {
    const key = ep.locality ?? '';
    let g = groups.get(key);
    if (!g) {
      g = { locality: parseLocality(ep.locality), endpoints: [], weight: 0, priority: 0 };
      groups.set(key, g);
    }
    g.endpoints.push(ep);
    g.weight += Math.max(1, ep.weight);
  }
  return [...groups.entries()].sort(([a], [b]) => byString(a, b)).map(([, g]) => g);
}

/** A unix domain socket endpoint is an Envoy Pipe (`/path`, or `@name` for the abstract namespace): it has no port. */
function endpointAddress(ep: Endpoint, port: number): Address {
  const path = unixSocketPath(ep.address);
  return path !== undefined ? { pipe: { path } } : { socket_address: { address: ep.address, port_value: port } };
}

function lbEndpoint(ep: Endpoint, port: number): LbEndpoint {
  return {
    endpoint: { address: endpointAddress(ep, port) },
    health_status: ep.healthy ? 'HEALTHY' : 'UNHEALTHY',
    load_balancing_weight: { value: Math.max(1, ep.weight) },
    metadata: {
      filter_metadata: {
        ...(ep.meshed ? { [TLS_MODE_METADATA.filter]: toStruct({ [TLS_MODE_METADATA.key]: TLS_MODE_METADATA.istio }) } : {}),
        [WORKLOAD_METADATA.filter]: toStruct({ [WORKLOAD_METADATA.key]: workloadMetadata(ep) }),
        ...(ep.serviceAccount
          ? { [WORKLOAD_METADATA.vmeshFilter]: toStruct({ [WORKLOAD_METADATA.serviceAccount]: ep.serviceAccount }) }
          : {}),
      },
    },
  };
}

/** Istio's `name;namespace;canonical service;canonical revision;cluster` (the canonical labels as Istio derives them). */
function workloadMetadata(ep: Endpoint): string {
  const l = ep.labels;
  const service = l['service.istio.io/canonical-name'] ?? l['app.kubernetes.io/name'] ?? l.app ?? ep.workload;
  const revision = l['service.istio.io/canonical-revision'] ?? l['app.kubernetes.io/version'] ?? l.version ?? 'latest';
  return `${ep.workload};${ep.namespace};${service};${revision};`;
}

function localityMessage(l: Locality): EnvoyLocality {
  return { ...(l.region ? { region: l.region } : {}), ...(l.zone ? { zone: l.zone } : {}), ...(l.subZone ? { sub_zone: l.subZone } : {}) };
}

/**
 * The ClusterLoadAssignment of an outbound cluster: endpoints grouped by locality, each locality weighted by
 * the sum of its endpoints' weights (gRPC's xDS client needs locality weights), with Istio's locality
 * failover priorities (when outlier detection is on) or distribute weights, relative to the node's locality.
 */
export function loadAssignment(c: OutboundCluster, node: ProxyNode): ClusterLoadAssignment {
  // gRPC's xDS client takes socket addresses only and would refuse the whole assignment for one pipe.
  const reachable = node.mode === 'proxyless' ? clusterEndpoints(c).filter((ep) => !isUnixAddress(ep.address)) : clusterEndpoints(c);
  const endpoints = reachable.sort(
    (a, b) =>
      byString(a.locality ?? '', b.locality ?? '') || byString(a.address, b.address) || endpointPort(a, c.port) - endpointPort(b, c.port),
  );
  let groups = groupByLocality(endpoints);
  const own = nodeLocality(node);
  const lls = c.policy?.loadBalancer?.localityLbSetting;
  if (own !== undefined && lls?.enabled !== false) {
    if (lls?.distribute?.length) groups = applyDistribute(groups, parseLocality(own), lls.distribute);
    else if (c.policy?.outlierDetection) applyFailover(groups, parseLocality(own), lls?.failover ?? []);
  }
  return {
    cluster_name: c.name,
    endpoints: groups.map((g) => ({
      locality: localityMessage(g.locality),
      lb_endpoints: g.endpoints.map((ep) => lbEndpoint(ep, endpointPort(ep, c.port))),
      load_balancing_weight: { value: g.weight },
      ...(g.priority > 0 ? { priority: g.priority } : {}),
    })),
  };
}

/** One ClusterLoadAssignment per EDS cluster, named as the cluster (its eds service_name). */
export function buildEndpoints(input: TranslateInput): EnvoyResource<ClusterLoadAssignment>[] {
  return outboundClusters(input)
    .filter((c) => c.discovery === 'EDS')
    .map((c) => ({ name: c.name, message: loadAssignment(c, input.node) }));
}
