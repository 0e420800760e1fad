/**
 * The mesh model: what the controller knows, built by discovery from config, VM registrations and
 * Consul, and translated by xds into per-host Envoy resources. Plain frozen data, no behaviour.
 */

/** Istio's protocol names (ServiceEntry ports and port-name prefixes). */
export type Protocol = 'HTTP' | 'HTTP2' | 'GRPC' | 'HTTPS' | 'TLS' | 'TCP' | 'MONGO' | 'REDIS' | 'MYSQL' | 'UNKNOWN';

/** Ports whose traffic the proxies parse as HTTP (routes, retries, HTTP filters); the rest is proxied as bytes. */
export function isHttpFamily(protocol: Protocol | string): boolean {
  return protocol === 'HTTP' || protocol === 'HTTP2' || protocol === 'GRPC';
}

export interface ServicePort {
  readonly name: string;
  readonly number: number;
  readonly protocol: Protocol;
  /** Where endpoints listen when it differs from `number`. */
  readonly targetPort?: number;
}

export type EndpointSource = 'registry' | 'config' | 'consul';

export interface Endpoint {
  /** An IP, a DNS name (DNS resolution), or a unix domain socket as Istio spells it: `unix:///path`, `unix://@name`. */
  readonly address: string;
  /** Port name -> the endpoint's port, when it differs from the service port. */
  readonly ports: Readonly<Record<string, number>>;
  readonly labels: Readonly<Record<string, string>>;
  readonly healthy: boolean;
  /** `region/zone/subzone`, Istio's format. */
  readonly locality?: string;
  readonly weight: number;
  readonly namespace: string;
  readonly serviceAccount: string;
  /** The endpoint's host runs a vmesh agent: it gets mTLS automatically. */
  readonly meshed: boolean;
  /** The vmesh host it runs on, when known. */
  readonly host?: string;
  /** WorkloadEntry name or Consul service id. */
  readonly workload: string;
  /** The uid the workload runs as on its host (outbound identity). */
  readonly uid?: number;
  readonly source: EndpointSource;
}

export interface MeshService {
  /** `<name>.<namespace>.mesh`, or the external host of a MESH_EXTERNAL ServiceEntry. */
  readonly hostname: string;
  readonly name: string;
  readonly namespace: string;
  readonly ports: readonly ServicePort[];
  /** Virtual IP from 240.240.0.0/16. */
  readonly vip: string;
  /** Other names clients may use (`<name>.<namespace>.svc.cluster.local`, ServiceEntry addresses...). */
  readonly aliases: readonly string[];
  readonly endpoints: readonly Endpoint[];
  readonly location: 'MESH_INTERNAL' | 'MESH_EXTERNAL';
  readonly resolution: 'STATIC' | 'DNS' | 'NONE';
  readonly sources: readonly EndpointSource[];
  /** Namespaces it is visible to (`*` = all); from ServiceEntry exportTo. */
  readonly exportTo: readonly string[];
}

export interface HostStatus {
  readonly name: string;
  readonly live: boolean;
  readonly lastSeen?: number;
}

export interface MeshModel {
  /** Increases with every change the model builder publishes. */
  readonly version: number;
  readonly services: ReadonlyMap<string, MeshService>;
  readonly hosts: ReadonlyMap<string, HostStatus>;
  /**
   * JSON Web Key Sets the controller fetched for RequestAuthentication rules, by their source key (a `jwksUri`,
   * or `openid:<issuer>`); a set that could not be fetched yet is absent (tokens then fail, as in Istio).
   */
  readonly jwks?: ReadonlyMap<string, string>;
}
