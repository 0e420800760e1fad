import { endpointKey } from '../cluster/host.js';
import type { EndpointWorkload, ProxyConfig } from '../proxy-config.js';

/**
 * What one config tells telemetry about workloads: the workload behind each upstream host (`address:port`, a pipe's path), the workload
 * of a SPIFFE identity (`ns/sa`, when exactly one workload runs as it), and the service a local workload's port
 * serves. Istio learns peers' workloads by metadata exchange; vmesh reads them from EDS endpoint metadata, which
 * every proxy has. Built once per config, on first use.
 */
export class WorkloadIndex {
  readonly byHost = new Map<string, EndpointWorkload>();
  private readonly byIdentity = new Map<string, EndpointWorkload | null>();
  private readonly services = new Map<string, string>();

  constructor(config: ProxyConfig) {
    for (const c of config.clusters.values()) {
      const parts = c.name.split('|');
      const host = parts[0] === 'outbound' && parts.length === 4 && parts[2] === '' ? parts[3] : undefined;
      for (const ep of c.endpoints) {
        const w = ep.workload;
        if (!w) continue;
        this.byHost.set(endpointKey(ep), w);
        if (w.serviceAccount) {
          const key = `${w.namespace}/${w.serviceAccount}`;
          const prev = this.byIdentity.get(key);
          // Several workloads sharing a service account cannot be told apart by identity: `unknown`.
          this.byIdentity.set(key, prev === undefined || (prev !== null && sameWorkload(prev, w)) ? w : null);
        }
        if (host) {
          const key = `${w.namespace}/${w.name}|${ep.port}`;
          if (!this.services.has(key)) this.services.set(key, host);
        }
      }
    }
  }

  /** The one workload running as `spiffe://td/ns/N/sa/S`. */
  workloadOf(id: SpiffeParts | undefined): EndpointWorkload | undefined {
    return id ? (this.byIdentity.get(`${id.namespace}/${id.serviceAccount}`) ?? undefined) : undefined;
  }

  /** The service a local workload serves on `port` (its endpoint port). */
  serviceOf(w: EndpointWorkload | undefined, port: number): string | undefined {
    return w ? this.services.get(`${w.namespace}/${w.name}|${port}`) : undefined;
  }
}

function sameWorkload(a: EndpointWorkload, b: EndpointWorkload): boolean {
  return a.name === b.name && a.namespace === b.namespace;
}

export interface SpiffeParts {
  readonly id: string;
  readonly trustDomain: string;
  readonly namespace: string;
  readonly serviceAccount: string;
}

const SPIFFE = /^spiffe:\/\/([^/]+)\/ns\/([^/]+)\/sa\/([^/]+)$/;

export function parseSpiffe(id: string | undefined): SpiffeParts | undefined {
  const m = id ? SPIFFE.exec(id) : null;
  if (!m?.[1] || !m[2] || !m[3]) return undefined;
  return { id: id as string, trustDomain: m[1], namespace: m[2], serviceAccount: m[3] };
}
