import type { HostWorkloads } from '../../generated/vmesh/v1/HostWorkloads.js';
import { spiffeIdOf } from './destination-rule.js';
import type { EnvoyResource, TranslateInput } from './input.js';

export const HOST_WORKLOADS_RESOURCE = 'host-workloads';

/**
 * The host's workload registry (vmesh.v1.HostWorkloads): each registered workload's identity and the uid it
 * runs as. Pushed like any xDS type, so a registration reaches the agent in one push rather than one health
 * report later; sorted, so an unchanged registry is an unchanged resource.
 */
export function buildHostWorkloads(input: TranslateInput): EnvoyResource<HostWorkloads>[] {
  const workloads = [...(input.node.identities ?? [])]
    .sort((a, b) => `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`))
    .map((w) => ({
      namespace: w.namespace,
      name: w.name,
      service_account: w.serviceAccount,
      spiffe_id: spiffeIdOf(input.mesh, w.namespace, w.serviceAccount),
      uid: w.uid ?? 0,
      has_uid: w.uid !== undefined,
    }));
  return [{ name: HOST_WORKLOADS_RESOURCE, message: { workloads } }];
}
