import { z } from 'zod';
import { unixPathProblem, unixSocketPath } from '../unix-address.js';
import type { Checker } from './checker.js';
import { hostProblem, ipProblem, isDns1123Label, quote } from './names.js';
import { type DeepReadonly, int, notImplemented, oneOf, str, stringMap, uint } from './schema-helpers.js';

/** WorkloadEntry's spec; also the shape of ServiceEntry endpoints and WorkloadGroup templates. */
export const workloadEntrySpec = z.strictObject({
  /**
   * An IP, a DNS name (DNS resolution), a unix domain socket (`unix:///path` or `unix://@abstract`, resolution
   * STATIC), or empty when `network` says the workload is reached through a gateway.
   */
  address: str.optional(),
  /** Port name (of the service) -> the port the workload listens on. */
  ports: z.record(z.string(), int).optional(),
  labels: stringMap.optional(),
  network: str.optional(),
  /** `region/zone/subzone`. */
  locality: str.optional(),
  weight: uint.optional(),
  serviceAccount: str.optional(),
});

export type WorkloadEntrySpec = DeepReadonly<z.output<typeof workloadEntrySpec>>;

/**
 * Checks one workload's fields. `where`: a standalone WorkloadEntry, an endpoint of a ServiceEntry
 * (whose resolution decides whether DNS names are allowed), or a WorkloadGroup template (no address).
 */
export function checkWorkload(
  spec: WorkloadEntrySpec,
  path: string,
  c: Checker,
  where: { kind: 'entry' } | { kind: 'endpoint'; resolution: string; portNames: ReadonlySet<string> } | { kind: 'template' },
): void {
  const addr = spec.address ?? '';
  if (where.kind === 'template') {
    // Istio ignores it too: every workload registered from the group brings its own address.
    if (addr !== '') c.warn(`${path}.address`, 'is ignored in a WorkloadGroup template: each registered workload has its own address');
  } else if (addr === '') {
    if (spec.network === undefined) c.report(`${path}.address`, 'is required (unless network names a remote network)');
    else c.warn(`${path}.address`, `address is unset with network ${quote(spec.network)}`);
  } else if (unixSocketPath(addr) !== undefined) {
    checkUnixEndpoint(spec, addr, path, c, where);
  } else {
    const dnsAllowed = where.kind === 'entry' || where.resolution === 'DNS' || where.resolution === 'DNS_ROUND_ROBIN';
    const problem = dnsAllowed ? hostProblem(addr, { ip: true }) : ipProblem(addr);
    if (problem) {
      const why = dnsAllowed
        ? 'is not an IP address or a fully qualified DNS name'
        : `is not an IP address (resolution ${where.kind === 'endpoint' ? where.resolution : ''} takes IP endpoints; DNS names need resolution DNS)`;
      c.report(`${path}.address`, `${quote(addr)} ${why}`);
    }
  }
  for (const [name, port] of Object.entries(spec.ports ?? {})) {
    const p = `${path}.ports[${JSON.stringify(name)}]`;
    if (!isDns1123Label(name)) c.report(p, `port name ${quote(name)} is not a DNS-1123 label`);
    c.port(p, port);
    if (where.kind === 'endpoint' && !where.portNames.has(name)) {
      c.report(p, `port name ${quote(name)} is not one of the ServiceEntry's ports (${[...where.portNames].join(', ') || 'none'})`);
    }
  }
  c.labels(`${path}.labels`, spec.labels);
  if (spec.locality !== undefined && !/^[^/]+(\/[^/]+){0,2}$/.test(spec.locality)) {
    c.report(`${path}.locality`, `${quote(spec.locality)} is not region[/zone[/subzone]]`);
  }
  if (spec.serviceAccount !== undefined && !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(spec.serviceAccount)) {
    c.report(`${path}.serviceAccount`, `${quote(spec.serviceAccount)} is not a service account name (DNS-1123)`);
  }
}

/**
 * Istio's rules for a unix domain socket endpoint: a valid socket path, no ports (the socket is the port), and,
 * in a ServiceEntry, resolution STATIC and exactly one service port for the socket to serve.
 */
function checkUnixEndpoint(
  spec: WorkloadEntrySpec,
  addr: string,
  path: string,
  c: Checker,
  where: { kind: 'entry' } | { kind: 'endpoint'; resolution: string; portNames: ReadonlySet<string> },
): void {
  const problem = unixPathProblem(unixSocketPath(addr) ?? '');
  if (problem) c.report(`${path}.address`, problem);
  if (Object.keys(spec.ports ?? {}).length > 0) c.report(`${path}.ports`, `unix endpoint ${quote(addr)} must not include ports`);
  if (where.kind !== 'endpoint') return;
  if (where.resolution !== 'STATIC') {
    c.report(`${path}.address`, `${quote(addr)}: unix domain socket endpoints need resolution STATIC, not ${where.resolution}`);
  } else if (where.portNames.size !== 1) {
    c.report(`${path}.address`, `unix endpoint ${quote(addr)} needs exactly 1 service port, not ${where.portNames.size}`);
  }
}

export function checkWorkloadEntry(spec: WorkloadEntrySpec, c: Checker): void {
  checkWorkload(spec, 'spec', c, { kind: 'entry' });
}

const httpGet = z.strictObject({
  path: str.optional(),
  port: int,
  host: str.optional(),
  scheme: str.optional(),
  httpHeaders: z.array(z.strictObject({ name: str, value: str.optional() })).optional(),
});

const probe = z
  .strictObject({
    initialDelaySeconds: uint.optional(),
    timeoutSeconds: uint.optional(),
    periodSeconds: uint.optional(),
    successThreshold: uint.optional(),
    failureThreshold: uint.optional(),
    httpGet: httpGet.optional(),
    tcpSocket: z.strictObject({ host: str.optional(), port: int }).optional(),
    exec: notImplemented('the agent does not run commands for readiness; use httpGet or tcpSocket'),
    grpc: notImplemented('use httpGet or tcpSocket'),
  })
  .superRefine(oneOf(['httpGet', 'tcpSocket'], { required: true }));

export const workloadGroupSpec = z.strictObject({
  metadata: z.strictObject({ labels: stringMap.optional(), annotations: stringMap.optional() }).optional(),
  template: workloadEntrySpec,
  probe: probe.optional(),
});

export type WorkloadGroupSpec = DeepReadonly<z.output<typeof workloadGroupSpec>>;

export function checkWorkloadGroup(spec: WorkloadGroupSpec, c: Checker): void {
  c.labels('spec.metadata.labels', spec.metadata?.labels);
  checkWorkload(spec.template, 'spec.template', c, { kind: 'template' });
  const p = spec.probe;
  if (!p) return;
  if (p.httpGet) {
    c.port('spec.probe.httpGet.port', p.httpGet.port);
    const scheme = p.httpGet.scheme;
    if (scheme !== undefined && !['HTTP', 'HTTPS'].includes(scheme.toUpperCase()))
      c.report('spec.probe.httpGet.scheme', 'must be HTTP or HTTPS');
    if (p.httpGet.path !== undefined && !p.httpGet.path.startsWith('/')) c.report('spec.probe.httpGet.path', 'must start with "/"');
    // Istio's CRD: probe header names are letters, digits, "-" and "_".
    p.httpGet.httpHeaders?.forEach((h, i) => {
      if (!/^[-_A-Za-z0-9]+$/.test(h.name))
        c.report(`spec.probe.httpGet.httpHeaders[${i}].name`, `${quote(h.name)} is not a probe header name (letters, digits, "-" and "_")`);
    });
  }
  if (p.tcpSocket) c.port('spec.probe.tcpSocket.port', p.tcpSocket.port);
  for (const k of ['successThreshold', 'failureThreshold', 'periodSeconds', 'timeoutSeconds'] as const) {
    if (p[k] === 0) c.report(`spec.probe.${k}`, 'must be at least 1 when set');
  }
}
