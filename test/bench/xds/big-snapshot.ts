import { DEFAULT_MESH_CONFIG } from '../../../src/api/mesh-config.js';
import type { MeshModel, MeshService } from '../../../src/api/model.js';
import type { Resource } from '../../../src/api/resource.js';
import { parseResources } from '../../../src/api/resource-parse.js';
import { buildServices } from '../../../src/discovery/build-services.js';
import { type EnvoyResource, indexConfig, nodeInput, translateNode } from '../../../src/xds/translate/index.js';
import { agentHost, benchAddress, NAMESPACE, PORT, serviceName } from './setup.js';

/**
 * The xDS bench's mesh without a controller: `services` services with `hostsPerService` workloads each, every
 * workload on a host of its own, translated by the project's own translator for one host (bench-1).
 */
export function bigSnapshot(services = 1000, hostsPerService = 2): Record<string, EnvoyResource[]> {
  const docs: string[] = [];
  let h = 0;
  for (let i = 0; i < services; i++) {
    const svc = serviceName(i);
    docs.push(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ${svc}, namespace: ${NAMESPACE}}
spec: {hosts: [${svc}.${NAMESPACE}.mesh], location: MESH_INTERNAL, resolution: STATIC, ports: [{number: ${PORT}, name: http, protocol: HTTP}], workloadSelector: {labels: {app: ${svc}}}}`);
    for (let j = 0; j < hostsPerService; j++) {
      h += 1;
      docs.push(`apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ${svc}-${j}, namespace: ${NAMESPACE}, annotations: {vmesh.io/host: ${agentHost(h)}, vmesh.io/uid: "${1000 + h}"}}
spec: {address: ${benchAddress(h)}, ports: {http: ${PORT}}, labels: {app: ${svc}, version: v1}, serviceAccount: ${svc}}`);
    }
  }
  const parsed = parseResources(docs.join('\n---\n'), { source: 'bench' });
  if (!parsed.ok) throw new Error(`bench mesh does not parse: ${JSON.stringify(parsed.error)}`);
  const resources: Resource[] = parsed.value;
  const built = buildServices({
    mesh: DEFAULT_MESH_CONFIG,
    serviceEntries: resources.filter((r): r is Resource<'ServiceEntry'> => r.kind === 'ServiceEntry'),
    workloadEntries: resources.filter((r): r is Resource<'WorkloadEntry'> => r.kind === 'WorkloadEntry'),
    consul: new Map(),
    consulNamespace: NAMESPACE,
    meshedHosts: new Set(Array.from({ length: h }, (_, i) => agentHost(i + 1))),
    hostState: () => 'live',
    workloadHealthy: () => true,
  });
  const withVips = new Map<string, MeshService>();
  [...built.keys()].sort().forEach((name, i) => {
    const s = built.get(name);
    if (s) withVips.set(name, { ...s, vip: `240.240.${(i + 1) >> 8}.${(i + 1) & 255}` });
  });
  const model: MeshModel = { version: 1, services: withVips, hosts: new Map() };
  const host = agentHost(1);
  const workloads = [...withVips.values()].flatMap((s) => s.endpoints.filter((e) => e.host === host));
  const input = nodeInput(DEFAULT_MESH_CONFIG, model, indexConfig(resources), {
    id: host,
    mode: 'sidecar',
    addresses: [benchAddress(1)],
    namespace: NAMESPACE,
    labels: {},
    workloads,
  });
  return translateNode(input);
}
