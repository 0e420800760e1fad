import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_MESH_CONFIG, type MeshConfig } from '../../../../src/api/mesh-config.js';
import type { MeshModel, MeshService } from '../../../../src/api/model.js';
import type { Resource } from '../../../../src/api/resource.js';
import { parseResources } from '../../../../src/api/resource-parse.js';
import { buildServices } from '../../../../src/discovery/build-services.js';
import type { ConsulInstance } from '../../../../src/discovery/consul-watcher.js';
import { indexConfig, type ProxyNode, type TranslateInput } from '../../../../src/xds/translate/input.js';

/**
 * The bookinfo mesh every translator's golden tests use: hosts h1 (productpage), h2 (reviews v1+v2), h3
 * (ratings, never joined: not meshed), a Consul-only `legacy-db`, an external API, and an ingress gateway
 * host `gw`. VIPs are assigned in hostname order, as the allocator does on a fresh store.
 */
export function bookinfoResources(): Resource[] {
  const r = parseResources(readFileSync(join(import.meta.dirname, 'bookinfo.yaml'), 'utf8'), { source: 'bookinfo.yaml' });
  if (!r.ok) throw new Error(`fixture does not parse: ${JSON.stringify(r.error)}`);
  return r.value;
}

const CONSUL: ReadonlyMap<string, readonly ConsulInstance[]> = new Map([
  [
    'legacy-db',
    [
      { service: 'legacy-db', id: 'legacy-db-1', node: 'db1', address: '198.18.0.40', port: 5432, tags: [], meta: {}, healthy: true },
      { service: 'legacy-db', id: 'legacy-db-2', node: 'db2', address: '198.18.0.41', port: 5432, tags: [], meta: {}, healthy: false },
    ],
  ],
]);

export function bookinfoModel(mesh: MeshConfig = DEFAULT_MESH_CONFIG, resources = bookinfoResources()): MeshModel {
  const services = buildServices({
    mesh,
    serviceEntries: resources.filter((r): r is Resource<'ServiceEntry'> => r.kind === 'ServiceEntry'),
    workloadEntries: resources.filter((r): r is Resource<'WorkloadEntry'> => r.kind === 'WorkloadEntry'),
    consul: CONSUL,
    consulNamespace: 'default',
    meshedHosts: new Set(['h1', 'h2', 'gw']),
    hostState: (h) => (h === 'h1' || h === 'h2' ? 'live' : 'unknown'),
    workloadHealthy: () => true,
  });
  const withVips = new Map<string, MeshService>();
  [...services.keys()].sort().forEach((h, i) => {
    const s = services.get(h);
    if (s) withVips.set(h, { ...s, vip: `240.240.0.${i + 1}` });
  });
  return { version: 1, services: withVips, hosts: new Map() };
}

const NODES: Record<string, Omit<ProxyNode, 'workloads'>> = {
  h1: { id: 'h1', mode: 'sidecar', addresses: ['198.18.0.11'], namespace: 'default', labels: {} },
  h2: { id: 'h2', mode: 'sidecar', addresses: ['198.18.0.12'], namespace: 'default', labels: {} },
  gw: { id: 'gw', mode: 'gateway', addresses: ['198.18.0.20'], namespace: 'default', labels: { istio: 'ingressgateway' } },
  grpc: { id: 'grpc', mode: 'proxyless', addresses: ['127.0.0.1'], namespace: 'default', labels: {} },
};

/** A complete translation input for one of the fixture's nodes: h1, h2, gw (gateway) or grpc (proxyless). */
export function bookinfoInput(
  nodeId: 'h1' | 'h2' | 'gw' | 'grpc',
  opts: { mesh?: MeshConfig; resources?: Resource[] } = {},
): TranslateInput {
  const mesh = opts.mesh ?? DEFAULT_MESH_CONFIG;
  const resources = opts.resources ?? bookinfoResources();
  const model = bookinfoModel(mesh, resources);
  const base = NODES[nodeId];
  if (!base) throw new Error(`no fixture node ${nodeId}`);
  const workloads = [...model.services.values()].flatMap((s) => s.endpoints.filter((e) => e.host === nodeId));
  const unique = [...new Map(workloads.map((w) => [`${w.namespace}/${w.workload}`, w])).values()];
  return {
    mesh,
    model,
    config: indexConfig(resources),
    node: { ...base, workloads: unique },
    services: [...model.services.values()],
  };
}
