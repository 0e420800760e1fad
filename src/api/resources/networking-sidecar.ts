import { z } from 'zod';
import type { Checker } from './checker.js';
import { hostProblem, isDns1123Label, quote } from './names.js';
import { checkProtocol, protocolName } from './networking-service-entry.js';
import { type DeepReadonly, enumOf, int, labelsSelector, notImplemented, str, strings } from './schema-helpers.js';

const sidecarPort = z.strictObject({ number: int, protocol: protocolName.optional(), name: str.optional(), targetPort: notImplemented() });

/**
 * vmesh captures with its own nftables/iptables REDIRECT rules for the whole host: that is IPTABLES, Istio's
 * default (DEFAULT means it). NONE (no capture for one listener) is not implemented.
 */
const captureMode = enumOf(['DEFAULT', 'IPTABLES', 'NONE'], ['NONE'], 'capture is configured per host, see `vmesh capture`');

export const sidecarSpec = z.strictObject({
  workloadSelector: labelsSelector.optional(),
  ingress: z
    .array(
      z.strictObject({
        port: sidecarPort,
        bind: notImplemented(),
        captureMode: captureMode.optional(),
        defaultEndpoint: str.optional(),
        tls: notImplemented('inbound traffic is secured with mesh mTLS; see PeerAuthentication'),
        connectionPool: notImplemented(),
      }),
    )
    .optional(),
  egress: z
    .array(
      z.strictObject({
        port: sidecarPort.optional(),
        bind: notImplemented(),
        captureMode: captureMode.optional(),
        hosts: strings,
      }),
    )
    .optional(),
  outboundTrafficPolicy: z
    .strictObject({ mode: z.enum(['REGISTRY_ONLY', 'ALLOW_ANY']).default('REGISTRY_ONLY'), egressProxy: notImplemented() })
    .optional(),
  inboundConnectionPool: notImplemented(),
});

export type SidecarSpec = DeepReadonly<z.output<typeof sidecarSpec>>;

/** `<namespace>/<host>` where namespace is `*`, `.`, `~` or a name and host is `*`, a wildcard or an FQDN. */
function checkEgressHost(path: string, h: string, c: Checker): void {
  const slash = h.indexOf('/');
  if (slash < 0) {
    c.report(path, `${quote(h)} must be <namespace>/<host>, e.g. "./*" or "vmesh-system/*"`);
    return;
  }
  const ns = h.slice(0, slash);
  const name = h.slice(slash + 1);
  if (ns !== '*' && ns !== '.' && ns !== '~' && !isDns1123Label(ns))
    c.report(path, `${quote(ns)} in ${quote(h)} is not "*", ".", "~" or a namespace`);
  else c.check(path, hostProblem(name, { wildcard: true }));
}

export function checkSidecar(spec: SidecarSpec, c: Checker): void {
  c.labels('spec.workloadSelector.labels', spec.workloadSelector?.labels);
  if (spec.workloadSelector && Object.keys(spec.workloadSelector.labels ?? {}).length === 0)
    c.warn('spec.workloadSelector', 'workload selector specified without labels: the Sidecar applies to all workloads in the namespace');
  if (!spec.ingress?.length && !spec.egress?.length && !spec.outboundTrafficPolicy) {
    c.report('spec', 'a Sidecar must set ingress, egress or outboundTrafficPolicy');
  }
  const inPorts = new Set<number>();
  spec.ingress?.forEach((l, i) => {
    const p = `spec.ingress[${i}]`;
    c.port(`${p}.port.number`, l.port.number);
    checkProtocol(`${p}.port.protocol`, l.port.protocol, c);
    if (inPorts.has(l.port.number)) c.report(`${p}.port.number`, `port ${l.port.number} has two ingress listeners`);
    inPorts.add(l.port.number);
    const ep = l.defaultEndpoint;
    if (ep !== undefined) {
      const m = /^(127\.0\.0\.1|0\.0\.0\.0|\[::1\]|\[::\])?:(\d+)$/.exec(ep);
      if (ep.startsWith('unix://')) c.unsupported(`${p}.defaultEndpoint`, 'unix domain socket endpoints are not implemented by vmesh');
      else if (!m) c.report(`${p}.defaultEndpoint`, `${quote(ep)} is not 127.0.0.1:<port>, 0.0.0.0:<port> or :<port>`);
      else c.port(`${p}.defaultEndpoint`, Number(m[2]));
    }
  });
  const outPorts = new Set<number>();
  const egress = spec.egress ?? [];
  egress.forEach((l, i) => {
    const p = `spec.egress[${i}]`;
    if (l.port === undefined) {
      if (i !== egress.length - 1) c.report(p, 'the egress listener without a port (the catch-all) must be the last one');
    } else {
      c.port(`${p}.port.number`, l.port.number);
      checkProtocol(`${p}.port.protocol`, l.port.protocol, c);
      if (outPorts.has(l.port.number)) c.report(`${p}.port.number`, `port ${l.port.number} has two egress listeners`);
      outPorts.add(l.port.number);
    }
    if (l.hosts.length === 0) c.report(`${p}.hosts`, 'at least one host is required');
    const seen = new Set<string>();
    l.hosts.forEach((h, j) => {
      checkEgressHost(`${p}.hosts[${j}]`, h, c);
      if (seen.has(h)) c.warn(`${p}.hosts[${j}]`, `duplicated egress host ${quote(h)}`);
      seen.add(h);
    });
    if (l.hosts.includes('*/*') && l.hosts.length > 1) c.warn(`${p}.hosts`, '"*/*" selects all hosts; the others add nothing');
  });
}
