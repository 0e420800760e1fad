import type { MeshConfig } from '../../api/mesh-config.js';
import type { MeshModel, MeshService } from '../../api/model.js';
import { memoOn } from '../../lib/memo.js';
import { CDS, EDS, LDS, NDS, RDS, WDS } from '../type-urls.js';
import { buildClusters } from './clusters.js';
import { buildEndpoints, nodeLocality } from './endpoints.js';
import { buildHostWorkloads } from './host-workloads.js';
import type { ConfigIndex, EnvoyResource, ProxyNode, TranslateInput } from './input.js';
import { buildListeners } from './listeners.js';
import { buildNameTable } from './name-table.js';
import { INBOUND_PASSTHROUGH_CLUSTER, VIRTUAL_INBOUND_LISTENER } from './names.js';
import { buildProxylessRoutes } from './proxyless.js';
import { buildGatewayRoutes, buildInboundRoutes, buildOutboundRoutes } from './routes.js';
import { scopeServices, sidecarFor } from './scope.js';

export { applyEnvoyFilters } from './envoy-filter.js';
export {
  type ConfigIndex,
  type EnvoyResource,
  type HostIdentity,
  indexConfig,
  type ProxyNode,
  type TranslateInput,
} from './input.js';
export { proxylessStandIn } from './proxyless.js';

/** Everything one proxy needs, by type URL: the pure translation of the mesh model for one node. */
export function translateNode(input: TranslateInput): Record<string, EnvoyResource[]> {
  const routes =
    input.node.mode === 'proxyless'
      ? buildProxylessRoutes(input)
      : input.node.mode === 'gateway'
        ? [...buildGatewayRoutes(input), ...buildOutboundRoutes(input)]
        : [...buildOutboundRoutes(input), ...buildInboundRoutes(input)];
  return {
    [CDS]: buildClusters(input),
    [EDS]: buildEndpoints(input),
    [LDS]: buildListeners(input),
    [RDS]: routes.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)),
    ...(input.node.mode === 'proxyless' ? {} : { [NDS]: buildNameTable(input), [WDS]: buildHostWorkloads(input) }),
  };
}

/** The translation input of one node: its services after Sidecar and exportTo scoping. */
export function nodeInput(mesh: MeshConfig, model: MeshModel, config: ConfigIndex, node: ProxyNode): TranslateInput {
  const locality = nodeLocality(node);
  const n = locality ? { ...node, locality } : node;
  return { mesh, model, config, node: n, services: scopeServices(model, config, n, mesh) };
}

/**
 * Nodes with the same outbound view share a translation: same mode, namespace, gateway labels and visible
 * services, and (because VirtualService sourceLabels depend on them) the same workload labels.
 */
export function sharingKey(input: TranslateInput): string {
  const usesSourceLabels = memoOn(sourceLabelsUsed, input.config, () =>
    input.config.virtualServices.some((v) => JSON.stringify(v.spec).includes('"sourceLabels"')),
  );
  // Nodes without workloads share one services array per namespace (scope.ts): its part of the key is made once.
  const hostnames = memoOn(hostnamesKey, input.services, () => JSON.stringify(input.services.map((s) => s.hostname)));
  const sc = sidecarFor(input.config, input.node, input.mesh);
  const head = JSON.stringify([
    input.node.mode,
    input.node.namespace,
    input.node.labels,
    // The Sidecar that applies decides the outbound policy of 15001, not only which services are seen.
    sc ? `${sc.metadata.namespace}/${sc.metadata.name}` : '',
    // Locality-aware endpoint priorities depend on where the node is.
    nodeLocality(input.node) ?? '',
  ]);
  // Each part is JSON on its own line, so the key stays unambiguous.
  return `${head}\n${hostnames}\n${JSON.stringify(usesSourceLabels ? input.node.workloads.map((w) => w.labels) : [])}`;
}

const sourceLabelsUsed = new WeakMap<ConfigIndex, boolean>();
const hostnamesKey = new WeakMap<readonly MeshService[], string>();

/** Resources that depend on the node's own workloads: the inbound side, and the host's workload registry. */
export function isLocalResource(typeUrl: string, name: string): boolean {
  return typeUrl === WDS || name.startsWith('inbound|') || name === VIRTUAL_INBOUND_LISTENER || name === INBOUND_PASSTHROUGH_CLUSTER;
}
