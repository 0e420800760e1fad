import { z } from 'zod';
import { ErrorCode, vmeshError } from '../lib/errors.js';

/** One service instance as Consul reports it, with its health folded into one flag. */
export interface ConsulInstance {
  readonly service: string;
  readonly id: string;
  readonly node: string;
  /** Service.Address, else the node's address (Consul's own rule for an empty service address). */
  readonly address: string;
  readonly port: number;
  readonly tags: readonly string[];
  readonly meta: Readonly<Record<string, string>>;
  /** Every check (node and service) is `passing`: the same test as Consul's `?passing` filter, so `warning` is unhealthy. */
  readonly healthy: boolean;
}

export interface ConsulSnapshot {
  /** Service name -> all its instances, healthy or not; names and instances sorted, services without instances left out. */
  readonly services: ReadonlyMap<string, readonly ConsulInstance[]>;
  /** The highest X-Consul-Index the snapshot was built from; informational, it goes backwards after a Consul restore. */
  readonly index: number;
}

// Consul serialises nil Go slices and maps as null, so every collection may be null.
const entrySchema = z.object({
  Node: z.object({ Node: z.string().min(1), Address: z.string() }),
  Service: z.object({
    ID: z.string().min(1),
    Service: z.string().min(1),
    Address: z.string().nullish(),
    Port: z.number().int().min(0).max(65535),
    Tags: z.array(z.string()).nullish(),
    Meta: z.record(z.string(), z.string()).nullish(),
  }),
  Checks: z.array(z.object({ Status: z.string() })).nullish(),
});

const catalogSchema = z.record(z.string(), z.array(z.string()).nullable());

export function compareInstances(a: ConsulInstance, b: ConsulInstance): number {
  if (a.id !== b.id) return a.id < b.id ? -1 : 1;
  if (a.node !== b.node) return a.node < b.node ? -1 : 1;
  return 0;
}

/**
 * Turns a `/v1/health/service/:name` body into instances. A malformed body is an error (the loop retries);
 * a malformed entry is skipped and reported, so one bad registration cannot hide the rest of the service.
 */
export function parseHealthEntries(service: string, body: unknown): { instances: ConsulInstance[]; skipped: string[] } {
  if (!Array.isArray(body)) {
    throw vmeshError(ErrorCode.ConsulUnavailable, `consul: /v1/health/service/${service} answered ${typeof body}, want a JSON array`);
  }
  const instances: ConsulInstance[] = [];
  const skipped: string[] = [];
  body.forEach((raw, i) => {
    const r = entrySchema.safeParse(raw);
    if (!r.success) {
      const issue = r.error.issues[0];
      skipped.push(`entry ${i}: ${issue ? `${issue.path.join('.')}: ${issue.message}` : 'invalid'}`);
      return;
    }
    const { Node, Service, Checks } = r.data;
    if (Service.Service !== service) {
      skipped.push(`entry ${i}: Service.Service is ${JSON.stringify(Service.Service)}, want ${JSON.stringify(service)}`);
      return;
    }
    const address = Service.Address || Node.Address;
    if (address === '') {
      skipped.push(`entry ${i} (${Service.ID} on ${Node.Node}): neither Service.Address nor Node.Address is set`);
      return;
    }
    instances.push(
      Object.freeze({
        service,
        id: Service.ID,
        node: Node.Node,
        address,
        port: Service.Port,
        tags: Object.freeze([...(Service.Tags ?? [])]),
        meta: Object.freeze({ ...(Service.Meta ?? {}) }),
        healthy: (Checks ?? []).every((c) => c.Status === 'passing'),
      }),
    );
  });
  instances.sort(compareInstances);
  return { instances, skipped };
}

/** Service names from a `/v1/catalog/services` body, sorted. */
export function parseCatalogServices(body: unknown): string[] {
  const r = catalogSchema.safeParse(body);
  if (!r.success)
    throw vmeshError(ErrorCode.ConsulUnavailable, 'consul: /v1/catalog/services answered something other than a name -> tags map');
  return Object.keys(r.data).sort();
}

/**
 * Labels for selectors (DestinationRule subsets, WorkloadGroup-style matching): `key=value` tags, then
 * Service.Meta (meta wins on conflicts, being the structured field). A tag such as `v2` or `v1.3` names the
 * version when nothing else does: `version` from meta or a `version=` tag takes precedence.
 */
export function consulLabels(inst: ConsulInstance): Record<string, string> {
  const labels: Record<string, string> = {};
  let versionTag: string | undefined;
  for (const tag of inst.tags) {
    const eq = tag.indexOf('=');
    if (eq > 0) labels[tag.slice(0, eq)] = tag.slice(eq + 1);
    else if (versionTag === undefined && /^v\d/.test(tag)) versionTag = tag;
  }
  Object.assign(labels, inst.meta);
  if (versionTag !== undefined && labels.version === undefined) labels.version = versionTag;
  return labels;
}

/** The service account an instance runs as (its SPIFFE identity's `sa`): explicit meta, else the service name. Empty values count as unset. */
export function consulServiceAccount(inst: ConsulInstance): string {
  return inst.meta['vmesh-service-account'] || inst.meta['service-account'] || inst.service;
}
