import { isIP } from 'node:net';
import { z } from 'zod';
import type { WorkloadView } from '../api/http/workloads.js';
import type { Resource } from '../api/resource.js';
import { normalizeIp } from '../lib/addr.js';
import { ErrorCode, vmeshError } from '../lib/errors.js';
import type { ConfigStore, ResourceRef } from '../store/config-store.js';
import type { HealthTracker } from './health.js';

/** Annotations vmesh keeps on registered WorkloadEntries. */
export const ANNOTATIONS = Object.freeze({
  host: 'vmesh.io/host',
  uid: 'vmesh.io/uid',
  managedBy: 'vmesh.io/managed-by',
});
const MANAGED = 'vmesh-registry';

const dns1123 = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

const registrationSchema = z.strictObject({
  name: z.string().regex(dns1123, 'must be a DNS-1123 label'),
  /** Required with ports; a workload without ports is a pure client and belongs to no service. */
  service: z.string().regex(dns1123, 'must be a DNS-1123 label').optional(),
  namespace: z.string().regex(dns1123, 'must be a DNS-1123 label').default('default'),
  serviceAccount: z.string().regex(dns1123, 'must be a DNS-1123 label').optional(),
  /** Required with ports; a pure client defaults to its host's address. */
  // `[fdce:77::3]` as URLs write it is accepted too; the WorkloadEntry keeps one canonical spelling.
  address: z
    .string()
    .transform((a) => a.trim().replace(/^\[(.*)\]$/, '$1'))
    .refine((a) => isIP(a) !== 0, { error: (iss) => `"${String(iss.input)}" is not an IPv4 or IPv6 address` })
    .transform(normalizeIp)
    .optional(),
  ports: z.array(z.string()).default([]),
  labels: z.record(z.string(), z.string()).default({}),
  host: z.string().regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'must be a host name'),
  uid: z.number().int().min(0).max(4294967294).optional(),
  locality: z.string().optional(),
  weight: z.number().int().min(1).optional(),
});

export type WorkloadRegistration = z.output<typeof registrationSchema>;

export interface RegisteredPort {
  readonly name: string;
  readonly number: number;
  readonly protocol: string;
}

/** Istio's port-name convention: `http`, `http-web`, `grpc-api`... give the protocol; anything else is TCP. */
export function protocolFromPortName(name: string): string {
  const prefix = name.split('-')[0]?.toLowerCase() ?? '';
  const known: Record<string, string> = {
    http: 'HTTP',
    http2: 'HTTP2',
    grpc: 'GRPC',
    https: 'HTTPS',
    tls: 'TLS',
    tcp: 'TCP',
    mongo: 'MONGO',
    redis: 'REDIS',
    mysql: 'MYSQL',
  };
  return known[prefix] ?? 'TCP';
}

/** `http:9080`, `grpc-api:9090`, or a bare `9080` (named `tcp-9080`). */
export function parsePortSpec(spec: string): RegisteredPort {
  const m = /^(?:([a-z0-9]([-a-z0-9]*[a-z0-9])?):)?(\d{1,5})$/.exec(spec.trim());
  const number = Number(m?.[3]);
  if (!m || number < 1 || number > 65535) {
    throw vmeshError(ErrorCode.InvalidPort, `port "${spec}": want name:port such as http:9080, port 1-65535`);
  }
  const name = m[1] ?? `tcp-${number}`;
  return { name, number, protocol: protocolFromPortName(name) };
}

export function parseRegistration(input: unknown): WorkloadRegistration {
  const r = registrationSchema.safeParse(input);
  if (!r.success) {
    const i = r.error.issues[0];
    const path = i?.path.join('.') ?? '';
    throw vmeshError(ErrorCode.InvalidResource, `workload registration: ${path}: ${i?.message ?? 'invalid'}`);
  }
  const reg = r.data;
  if (reg.ports.length > 0) {
    if (reg.service === undefined) throw registrationError('service', 'is required for a workload with ports (it serves that service)');
    if (reg.address === undefined) throw registrationError('address', 'is required for a workload with ports (where it listens)');
  } else {
    if (reg.service !== undefined) {
      throw registrationError('service', `a workload without ports is a pure client and serves no service; drop it or give ports`);
    }
    if (reg.uid === undefined) throw registrationError('uid', 'is required for a pure client (no ports): its identity goes to that uid');
  }
  return reg;
}

function registrationError(field: string, why: string) {
  return vmeshError(ErrorCode.InvalidResource, `workload registration: ${field}: ${why}`);
}

export type { WorkloadView };

/**
 * VM registrations as Istio resources: a WorkloadEntry per workload (host and run-as uid as annotations)
 * and, when missing, a ServiceEntry selecting it by `app=<service>`, as istioctl's VM onboarding does.
 */
export class VmRegistry {
  constructor(
    private readonly config: ConfigStore,
    private readonly health?: HealthTracker,
    /** A joined host's address: where a pure client registered without one runs. */
    private readonly hostAddress?: (host: string) => string | undefined,
  ) {}

  async register(input: unknown): Promise<{ workload: WorkloadView; serviceEntryCreated: boolean }> {
    const reg = parseRegistration(input);
    const ports = reg.ports.map(parsePortSpec);
    // A pure client has no app label: no ServiceEntry the registry makes selects it.
    const labels = reg.service !== undefined ? { ...reg.labels, app: reg.service } : { ...reg.labels };
    const annotations: Record<string, string> = { [ANNOTATIONS.host]: reg.host, [ANNOTATIONS.managedBy]: MANAGED };
    if (reg.uid !== undefined) annotations[ANNOTATIONS.uid] = String(reg.uid);
    const address = reg.address ?? this.hostAddress?.(reg.host);
    if (address === undefined) {
      throw registrationError('address', `host "${reg.host}" has not joined, so its address is unknown: give --address`);
    }
    // Istio's WorkloadEntry for a VM that only calls out: its address, no ports.
    const workloadEntry = {
      apiVersion: 'networking.istio.io/v1',
      kind: 'WorkloadEntry',
      metadata: { name: reg.name, namespace: reg.namespace, labels, annotations },
      spec: {
        address,
        ...(ports.length > 0 ? { ports: Object.fromEntries(ports.map((p) => [p.name, p.number])) } : {}),
        labels,
        serviceAccount: reg.serviceAccount ?? reg.service ?? reg.name,
        ...(reg.locality !== undefined ? { locality: reg.locality } : {}),
        ...(reg.weight !== undefined ? { weight: reg.weight } : {}),
      },
    };
    const weDoc = { label: `registration of ${reg.namespace}/${reg.name}`, value: workloadEntry };
    const service = reg.service;
    const seDoc = service !== undefined && {
      label: `service entry for ${reg.namespace}/${service}`,
      value: {
        apiVersion: 'networking.istio.io/v1',
        kind: 'ServiceEntry',
        metadata: { name: service, namespace: reg.namespace, annotations: { [ANNOTATIONS.managedBy]: MANAGED } },
        spec: {
          hosts: [`${service}.${reg.namespace}.mesh`],
          location: 'MESH_INTERNAL',
          resolution: 'STATIC',
          ports: ports.map((p) => ({ number: p.number, name: p.name, protocol: p.protocol })),
          workloadSelector: { labels: { app: reg.service } },
        },
      },
    };
    // Decided in the write's own transaction: two first registrations of a service make one ServiceEntry, and
    // a deregistration removing it sees a workload registered at the same moment.
    let created = false;
    await this.config.update((view) => {
      created = !!seDoc && !view.get('ServiceEntry', reg.namespace, seDoc.value.metadata.name);
      return { apply: created && seDoc ? [weDoc, seDoc] : [weDoc] };
    });
    const we = this.config.get('WorkloadEntry', reg.namespace, reg.name);
    if (!we) throw vmeshError(ErrorCode.Internal, 'registered workload entry vanished');
    return { workload: this.view(we as Resource<'WorkloadEntry'>), serviceEntryCreated: created };
  }

  /** Removes the WorkloadEntry, and the ServiceEntry the registry made once nothing else uses it. */
  async deregister(namespace: string, name: string): Promise<{ serviceEntryRemoved: boolean }> {
    let removeSe = false;
    await this.config.update((view) => {
      const we = view.get('WorkloadEntry', namespace, name);
      if (!we) throw vmeshError(ErrorCode.NotFound, `WorkloadEntry ${namespace}/${name} not found`);
      const service = we.metadata.labels.app;
      const items: ResourceRef[] = [{ kind: 'WorkloadEntry', namespace, name }];
      const se = service ? view.get('ServiceEntry', namespace, service) : undefined;
      const others = view.list('WorkloadEntry', namespace).filter((w) => w.metadata.name !== name && w.metadata.labels.app === service);
      removeSe = !!se && se.metadata.annotations[ANNOTATIONS.managedBy] === MANAGED && others.length === 0;
      if (removeSe && service) items.push({ kind: 'ServiceEntry', namespace, name: service });
      return { delete: items };
    });
    return { serviceEntryRemoved: removeSe };
  }

  /** Workloads registered on one host: the identities its agent may get certificates for. */
  onHost(host: string): WorkloadView[] {
    return this.list().filter((w) => w.host === host);
  }

  get(namespace: string, name: string): WorkloadView | undefined {
    const we = this.config.get('WorkloadEntry', namespace, name);
    return we ? this.view(we as Resource<'WorkloadEntry'>) : undefined;
  }

  list(namespace?: string): WorkloadView[] {
    return this.config
      .list('WorkloadEntry', namespace)
      .map((w) => this.view(w as Resource<'WorkloadEntry'>))
      .sort((a, b) => `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`));
  }

  private view(we: Resource<'WorkloadEntry'>): WorkloadView {
    const uid = we.metadata.annotations[ANNOTATIONS.uid];
    const host = we.metadata.annotations[ANNOTATIONS.host];
    const healthy = this.health?.workloadHealthy(we.metadata.namespace, we.metadata.name);
    const labels = { ...(we.spec.labels ?? {}), ...we.metadata.labels };
    const ports = { ...(we.spec.ports ?? {}) };
    const serviceAccount = we.spec.serviceAccount ?? 'default';
    const client = Object.keys(ports).length === 0;
    const state = client ? 'client' : healthy === undefined ? 'unknown' : healthy ? 'healthy' : 'unhealthy';
    const uidNumber = uid !== undefined ? Number(uid) : undefined;
    const served =
      host !== undefined && this.health
        ? this.health.serves(host, {
            namespace: we.metadata.namespace,
            serviceAccount,
            ...(uidNumber !== undefined ? { uid: uidNumber } : {}),
          })
        : undefined;
    return {
      name: we.metadata.name,
      namespace: we.metadata.namespace,
      service: labels.app ?? '',
      serviceAccount,
      address: we.spec.address ?? '',
      ports,
      labels,
      ...(host !== undefined ? { host } : {}),
      ...(uidNumber !== undefined ? { uid: uidNumber } : {}),
      ...(healthy !== undefined && !client ? { healthy } : {}),
      state,
      ...(served !== undefined ? { identityServed: served } : {}),
    };
  }
}
