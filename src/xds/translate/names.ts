/**
 * Resource names shared by every translator and by the proxy that reads them. Istio's conventions, so
 * `vmesh proxy-config` output reads like `istioctl proxy-config`.
 */

/** `outbound|9080|v2|reviews.default.mesh` (subset empty for the whole service). */
export function outboundClusterName(port: number, subset: string, hostname: string): string {
  return `outbound|${port}|${subset}|${hostname}`;
}

export function parseOutboundClusterName(name: string): { port: number; subset: string; hostname: string } | undefined {
  const m = /^outbound\|(\d+)\|([^|]*)\|(.+)$/.exec(name);
  return m ? { port: Number(m[1]), subset: m[2] ?? '', hostname: m[3] ?? '' } : undefined;
}

/** `inbound|9080||`: the local workload listening on 9080. */
export function inboundClusterName(port: number): string {
  return `inbound|${port}||`;
}

export const PASSTHROUGH_CLUSTER = 'PassthroughCluster';
export const BLACKHOLE_CLUSTER = 'BlackHoleCluster';
export const INBOUND_PASSTHROUGH_CLUSTER = 'InboundPassthroughCluster';
/** The agent's local SDS server, as a static cluster the proxy knows without xDS. */
export const SDS_CLUSTER = 'sds-grpc';

/** Outbound listener for one service port: `240.240.0.7_9080`. */
export function outboundListenerName(vip: string, port: number): string {
  return `${vip}_${port}`;
}

/** The 15001 catch-all and the 15006 inbound listener. */
export const VIRTUAL_OUTBOUND_LISTENER = 'virtualOutbound';
export const VIRTUAL_INBOUND_LISTENER = 'virtualInbound';

/**
 * Outbound HTTP routes belong to one service and port (`reviews.default.mesh:9080`, as Istio names a listener's
 * own route), not a port-wide table, so that a change to one service re-sends one small route configuration.
 */
export function outboundRouteName(hostname: string, port: number): string {
  return `${hostname}:${port}`;
}

export function inboundRouteName(port: number): string {
  return `inbound|${port}||`;
}

/** Gateway listeners: `0.0.0.0_443`; their routes: `http.8080` / `https.443.<server name>`, as Istio. */
export function gatewayListenerName(port: number): string {
  return `0.0.0.0_${port}`;
}

export function gatewayRouteName(protocol: string, port: number, server?: string): string {
  return server ? `${protocol.toLowerCase()}.${port}.${server}` : `${protocol.toLowerCase()}.${port}`;
}

/** Proxyless gRPC clients look listeners up by `host:port` (an ApiListener), as Istio serves them. */
export function proxylessListenerName(hostname: string, port: number): string {
  return `${hostname}:${port}`;
}

/**
 * SDS secret names. Private keys stay on the host: xDS only names them, and the agent's local SDS
 * serves the certificate and key. `default` is the identity the host's proxy presents when no
 * workload identity is selected; per-workload identities are named by their SPIFFE id.
 */
export const SDS_DEFAULT_CERT = 'default';
export const SDS_ROOT_CA = 'ROOTCA';
export function workloadSecretName(spiffeId: string): string {
  return spiffeId;
}

/** Endpoint metadata key the proxy uses to pick mTLS for meshed endpoints (Istio's `tlsMode: istio`). */
export const TLS_MODE_METADATA = Object.freeze({ filter: 'envoy.transport_socket_match', key: 'tlsMode', istio: 'istio' });

/**
 * Endpoint metadata naming the workload behind an endpoint, for telemetry labels: Istio's own
 * `istio.workload` (`name;namespace;canonical service;canonical revision;cluster`), and vmesh's service account,
 * which lets a proxy name the workload of a verified peer identity (vmesh has no peer metadata exchange).
 */
export const WORKLOAD_METADATA = Object.freeze({
  filter: 'istio',
  key: 'workload',
  vmeshFilter: 'vmesh.io',
  serviceAccount: 'service_account',
});
