import { z } from 'zod';
import type { Checker } from './checker.js';
import { isDns1123Label, isHttpProtocol, isTlsProtocol, quote, SERVICE_PROTOCOLS, UNIMPLEMENTED_PROTOCOLS } from './names.js';
import { checkWorkload, workloadEntrySpec } from './networking-workload.js';
import { type DeepReadonly, int, labelsSelector, str, strings } from './schema-helpers.js';

/** Port protocols are case-insensitive in Istio; vmesh hands them on uppercase. */
export const protocolName = z.string().transform((p) => p.toUpperCase());
/** A service port's protocol: empty is unset, as in Istio (where it means protocol sniffing). */
const portProtocol = z.string().transform((p) => (p === '' ? undefined : p.toUpperCase()));

export const servicePort = z.strictObject({
  number: int,
  protocol: portProtocol.optional(),
  name: str,
  targetPort: int.optional(),
});

export const serviceEntrySpec = z.strictObject({
  hosts: strings,
  addresses: strings.optional(),
  ports: z.array(servicePort).optional(),
  location: z.enum(['MESH_EXTERNAL', 'MESH_INTERNAL']).default('MESH_EXTERNAL'),
  resolution: z.enum(['NONE', 'STATIC', 'DNS', 'DNS_ROUND_ROBIN']).default('NONE'),
  endpoints: z.array(workloadEntrySpec).optional(),
  workloadSelector: labelsSelector.optional(),
  exportTo: strings.optional(),
  subjectAltNames: strings.optional(),
});

export type ServiceEntrySpec = DeepReadonly<z.output<typeof serviceEntrySpec>>;
export type ServicePort = DeepReadonly<z.output<typeof servicePort>>;

/** A port's protocol: known to Istio and vmesh, known to Istio only (unsupported), or unknown. */
export function checkProtocol(path: string, protocol: string | undefined, c: Checker): void {
  if (protocol === undefined) return;
  if ((UNIMPLEMENTED_PROTOCOLS as readonly string[]).includes(protocol)) {
    c.unsupported(path, `protocol ${protocol} is not implemented by vmesh`);
  } else if (!(SERVICE_PROTOCOLS as readonly string[]).includes(protocol)) {
    c.report(path, `unknown protocol ${quote(protocol)}; want one of ${SERVICE_PROTOCOLS.join(', ')}`);
  }
}

export function checkServicePorts(path: string, ports: readonly ServicePort[] | undefined, c: Checker): void {
  const names = new Set<string>();
  const numbers = new Set<number>();
  ports?.forEach((port, i) => {
    const p = `${path}[${i}]`;
    c.port(`${p}.number`, port.number);
    c.port(`${p}.targetPort`, port.targetPort);
    if (!isDns1123Label(port.name)) c.report(`${p}.name`, `port name ${quote(port.name)} is not a DNS-1123 label`);
    if (names.has(port.name)) c.report(`${p}.name`, `port name ${quote(port.name)} is used twice`);
    if (numbers.has(port.number)) c.report(`${p}.number`, `port ${port.number} is defined twice`);
    names.add(port.name);
    numbers.add(port.number);
    checkProtocol(`${p}.protocol`, port.protocol, c);
  });
}

/** Istio's ServiceEntry rules, including how resolution constrains endpoints and hosts. */
export function checkServiceEntry(spec: ServiceEntrySpec, c: Checker): void {
  if (spec.hosts.length === 0) c.report('spec.hosts', 'at least one host is required');
  spec.hosts.forEach((h, i) => {
    c.host(`spec.hosts[${i}]`, h, { wildcard: true, bareWildcard: false, short: true });
  });
  let cidr = false;
  spec.addresses?.forEach((a, i) => {
    cidr ||= a.includes('/');
    c.cidr(`spec.addresses[${i}]`, a);
  });
  if (cidr && spec.resolution !== 'NONE' && spec.resolution !== 'STATIC') {
    c.report('spec.addresses', `CIDR addresses are allowed only with resolution NONE or STATIC, not ${spec.resolution}`);
  }
  checkServicePorts('spec.ports', spec.ports, c);
  if (spec.workloadSelector && spec.endpoints) c.report('spec.workloadSelector', 'set only one of workloadSelector and endpoints');
  c.labels('spec.workloadSelector.labels', spec.workloadSelector?.labels);

  const endpoints = spec.endpoints ?? [];
  const portNames = new Set((spec.ports ?? []).map((p) => p.name));
  switch (spec.resolution) {
    case 'NONE':
      if (endpoints.length > 0)
        c.report('spec.endpoints', 'resolution NONE forwards to the address the client asked for; it takes no endpoints');
      if (spec.workloadSelector) c.warn('spec.workloadSelector', 'workloadSelector should not be set when resolution is NONE');
      break;
    case 'STATIC':
      if (endpoints.length === 0 && !spec.workloadSelector) {
        c.report('spec.endpoints', 'resolution STATIC needs endpoints (IP addresses) or a workloadSelector');
      }
      break;
    case 'DNS':
    case 'DNS_ROUND_ROBIN':
      if (endpoints.length === 0) {
        spec.hosts.forEach((h, i) => {
          if (h.includes('*') || !h.includes('.')) {
            c.report(
              `spec.hosts[${i}]`,
              `host ${quote(h)} must be a fully qualified name to resolve with ${spec.resolution} and no endpoints`,
            );
          }
        });
      }
      if (spec.resolution === 'DNS_ROUND_ROBIN' && endpoints.length > 1) {
        c.report('spec.endpoints', 'resolution DNS_ROUND_ROBIN takes at most one endpoint');
      }
      break;
  }
  endpoints.forEach((ep, i) => {
    checkWorkload(ep, `spec.endpoints[${i}]`, c, { kind: 'endpoint', resolution: spec.resolution, portNames });
  });
  // Plain TCP has no Host header or SNI to tell several hosts apart once resolved to one address.
  if (spec.resolution !== 'NONE' && spec.hosts.length > 1) {
    const opaque = spec.ports?.find((p) => p.protocol === undefined || !(isHttpProtocol(p.protocol) || isTlsProtocol(p.protocol)));
    if (opaque) c.report('spec.hosts', `several hosts with the non-HTTP, non-TLS port ${opaque.number} need resolution NONE`);
  }
  c.exportTo('spec.exportTo', spec.exportTo, true);
  c.nonEmptyStrings('spec.subjectAltNames', spec.subjectAltNames);
}
