import type { MeshConfig } from '../../api/mesh-config.js';
import type { Endpoint, MeshModel, MeshService } from '../../api/model.js';
import type { Resource } from '../../api/resource.js';
import type { Cluster } from '../../generated/envoy/config/cluster/v3/Cluster.js';
import type { ClusterLoadAssignment } from '../../generated/envoy/config/endpoint/v3/ClusterLoadAssignment.js';
import type { Listener } from '../../generated/envoy/config/listener/v3/Listener.js';
import type { RouteConfiguration } from '../../generated/envoy/config/route/v3/RouteConfiguration.js';
import type { HostWorkloads } from '../../generated/vmesh/v1/HostWorkloads.js';
import type { NameTable } from '../../generated/vmesh/v1/NameTable.js';

/** The proxy a snapshot is for: one per host (all its workloads), a gateway, or a proxyless gRPC client. */
export interface ProxyNode {
  /** The node id on the ADS stream: the vmesh host name (gateways: their host name too). */
  readonly id: string;
  readonly mode: 'sidecar' | 'gateway' | 'proxyless';
  /** The host's own addresses (inbound listeners match them). */
  readonly addresses: readonly string[];
  /** Workloads registered on this host: what the inbound side serves, with their identities. */
  readonly workloads: readonly Endpoint[];
  /** Namespace whose Sidecar and short names apply when the host's workloads don't say (default `default`). */
  readonly namespace: string;
  /** Labels Gateway.spec.selector matches (gateway mode), e.g. `{ istio: ingressgateway }`. */
  readonly labels: Readonly<Record<string, string>>;
  /** `region/zone/subzone` of the node; when absent, that of its first workload. */
  readonly locality?: string;
  /** Every workload registered on this host, services' endpoints and pure clients alike: the identities it serves. */
  readonly identities?: readonly HostIdentity[];
}

/** A workload registered on a host, as its agent needs it to present the workload's identity. */
export interface HostIdentity {
  readonly namespace: string;
  readonly name: string;
  readonly serviceAccount: string;
  readonly uid?: number;
}

/** Config resources by kind, typed; translation reads only these and the model. */
export interface ConfigIndex {
  readonly virtualServices: readonly Resource<'VirtualService'>[];
  readonly destinationRules: readonly Resource<'DestinationRule'>[];
  readonly gateways: readonly Resource<'Gateway'>[];
  readonly sidecars: readonly Resource<'Sidecar'>[];
  readonly peerAuthentications: readonly Resource<'PeerAuthentication'>[];
  readonly authorizationPolicies: readonly Resource<'AuthorizationPolicy'>[];
  readonly requestAuthentications: readonly Resource<'RequestAuthentication'>[];
  readonly telemetries: readonly Resource<'Telemetry'>[];
  readonly wasmPlugins: readonly Resource<'WasmPlugin'>[];
  readonly envoyFilters: readonly Resource<'EnvoyFilter'>[];
  readonly localRateLimits: readonly Resource<'LocalRateLimit'>[];
  readonly healthChecks: readonly Resource<'HealthCheck'>[];
}

export interface TranslateInput {
  readonly mesh: MeshConfig;
  readonly model: MeshModel;
  readonly config: ConfigIndex;
  readonly node: ProxyNode;
  /** The services this node sees, after Sidecar egress scoping and exportTo (see scope.ts). */
  readonly services: readonly MeshService[];
}

/** What the translator sends: the resource types of CDS, EDS, LDS, RDS and vmesh's NDS and WDS (generated input types). */
export type EnvoyMessage = Cluster | ClusterLoadAssignment | Listener | RouteConfiguration | NameTable | HostWorkloads;

/** One Envoy resource before encoding: proto field names (snake_case), typed configs as `{ '@type', ... }` Any. */
export interface EnvoyResource<M extends EnvoyMessage = EnvoyMessage> {
  readonly name: string;
  readonly message: M;
}

export function indexConfig(resources: readonly Resource[]): ConfigIndex {
  const of = <K extends Resource['kind']>(k: K) => resources.filter((r): r is Resource<K> => r.kind === k) as Resource<K>[];
  return {
    virtualServices: of('VirtualService'),
    destinationRules: of('DestinationRule'),
    gateways: of('Gateway'),
    sidecars: of('Sidecar'),
    peerAuthentications: of('PeerAuthentication'),
    authorizationPolicies: of('AuthorizationPolicy'),
    requestAuthentications: of('RequestAuthentication'),
    telemetries: of('Telemetry'),
    wasmPlugins: of('WasmPlugin'),
    envoyFilters: of('EnvoyFilter'),
    localRateLimits: of('LocalRateLimit'),
    healthChecks: of('HealthCheck'),
  };
}
