import type { UpstreamEndpoint } from '../proxy-config.js';
import type { UpstreamHost } from '../runtime-types.js';

/** One endpoint of a cluster and what the proxy learned about it; kept across updates by `address:port` (a pipe: its path). */
export interface HostState {
  readonly key: string;
  /** Replaced (not mutated) when the endpoint's config changes, so handed-out hosts stay consistent. */
  host: UpstreamHost;
  endpoint: UpstreamEndpoint;
  /** Outlier detection. */
  consecutive5xx: number;
  consecutiveGatewayErrors: number;
  ejected: boolean;
  timesEjected: number;
  unejectTimer: NodeJS.Timeout | undefined;
  /** Active health checking: `unknown` until the first check answers. */
  hc: 'unknown' | 'healthy' | 'unhealthy';
  hcSuccesses: number;
  hcFailures: number;
  /** Requests (HTTP) or proxied connections (TCP) in flight: LEAST_REQUEST's load. */
  active: number;
  removed: boolean;
  /** When the host joined the cluster (the proxy's monotonic clock, ms): slow start ramps from here. */
  readonly addedAt: number;
}

export function newHostState(endpoint: UpstreamEndpoint, addedAt = performance.now()): HostState {
  const key = endpointKey(endpoint);
  return {
    key,
    host: { key, endpoint },
    endpoint,
    consecutive5xx: 0,
    consecutiveGatewayErrors: 0,
    ejected: false,
    timesEjected: 0,
    unejectTimer: undefined,
    hc: 'unknown',
    hcSuccesses: 0,
    hcFailures: 0,
    active: 0,
    removed: false,
    addedAt,
  };
}

/** As Envoy names upstream hosts (admin, access logs): `ip:port`, `[ip6]:port`, or a pipe's path. */
export function endpointKey(ep: Pick<UpstreamEndpoint, 'address' | 'port' | 'pipe'>): string {
  return ep.pipe ? ep.address : hostKey(ep.address, ep.port);
}

export function hostKey(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

/** EDS health, active health checks and outlier ejection all have to agree. */
export function hostAvailable(h: HostState): boolean {
  return h.endpoint.healthy && !h.ejected && h.hc !== 'unhealthy';
}
