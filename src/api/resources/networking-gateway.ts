import { z } from 'zod';
import type { Checker } from './checker.js';
import { hostProblem, ipProblem, isDns1123Label, isHttpProtocol, isPartialWildcardHost, isTlsProtocol, quote } from './names.js';
import { checkProtocol, protocolName } from './networking-service-entry.js';
import { bool, type DeepReadonly, int, notImplemented, str, stringMap, strings } from './schema-helpers.js';

const serverTls = z.strictObject({
  httpsRedirect: bool.optional(),
  mode: z.enum(['PASSTHROUGH', 'SIMPLE', 'MUTUAL', 'AUTO_PASSTHROUGH', 'ISTIO_MUTUAL', 'OPTIONAL_MUTUAL']).optional(),
  serverCertificate: str.optional(),
  privateKey: str.optional(),
  caCertificates: str.optional(),
  caCrl: notImplemented(),
  credentialName: str.optional(),
  credentialNames: notImplemented('use credentialName'),
  tlsCertificates: notImplemented('use serverCertificate and privateKey'),
  subjectAltNames: strings.optional(),
  verifyCertificateSpki: strings.optional(),
  verifyCertificateHash: strings.optional(),
  minProtocolVersion: z.enum(['TLS_AUTO', 'TLSV1_0', 'TLSV1_1', 'TLSV1_2', 'TLSV1_3']).optional(),
  maxProtocolVersion: z.enum(['TLS_AUTO', 'TLSV1_0', 'TLSV1_1', 'TLSV1_2', 'TLSV1_3']).optional(),
  cipherSuites: strings.optional(),
});

const server = z.strictObject({
  port: z.strictObject({
    number: int,
    protocol: protocolName,
    name: str,
    targetPort: notImplemented('targetPort has no effect on gateways'),
  }),
  bind: str.optional(),
  hosts: strings,
  tls: serverTls.optional(),
  name: str.optional(),
  defaultEndpoint: notImplemented(),
});

export const gatewaySpec = z.strictObject({
  selector: stringMap.optional(),
  servers: z.array(server),
});

export type GatewaySpec = DeepReadonly<z.output<typeof gatewaySpec>>;
type ServerTls = DeepReadonly<z.output<typeof serverTls>>;

/**
 * A gateway server host: `[<namespace>/]<dns name>` where the namespace is `*`, `.` or a name (it limits which
 * namespaces' VirtualServices may bind), and the name is `*`, a wildcard or an FQDN (IPs allowed, short names not).
 */
export function checkGatewayHost(path: string, h: string, c: Checker): void {
  const slash = h.indexOf('/');
  const ns = slash >= 0 ? h.slice(0, slash) : undefined;
  const name = slash >= 0 ? h.slice(slash + 1) : h;
  if (ns !== undefined && ns !== '*' && ns !== '.' && !isDns1123Label(ns))
    c.report(path, `${quote(ns)} in ${quote(h)} is not "*", "." or a namespace`);
  else if (name !== '*' && isPartialWildcardHost(name)) {
    // A server's hosts are its TLS server_names too, and Envoy matches SNI by whole labels only.
    const dot = name.indexOf('.');
    const instead = dot < 0 ? 'a whole first label, as in "*.example.com"' : `"*.${name.slice(dot + 1)}"`;
    c.unsupported(
      path,
      `partial wildcard host ${quote(name)} is not implemented by vmesh for gateway servers (Envoy matches SNI by whole labels); use ${instead}`,
    );
  } else c.check(path, hostProblem(name, { wildcard: true, ip: true }));
}

function checkServerTls(path: string, protocol: string, tls: ServerTls | undefined, c: Checker): void {
  if (tls === undefined) {
    if (isTlsProtocol(protocol)) c.report(path, `a server with protocol ${protocol} needs tls settings`);
    return;
  }
  const mode = tls.mode ?? 'PASSTHROUGH';
  const files = tls.serverCertificate !== undefined || tls.privateKey !== undefined || tls.caCertificates !== undefined;
  if (!isTlsProtocol(protocol)) {
    // A plain HTTP server may only carry httpsRedirect.
    if (!isHttpProtocol(protocol) || files || tls.credentialName !== undefined || tls.mode !== undefined) {
      c.report(
        path,
        `a server with protocol ${protocol} cannot have TLS settings${isHttpProtocol(protocol) ? ' other than httpsRedirect' : ''}`,
      );
    }
    return;
  }
  // Istio's warnings: accepted, with settings that have no effect.
  if (tls.httpsRedirect === true && !isHttpProtocol(protocol))
    c.warn(`${path}.httpsRedirect`, 'httpsRedirect should only be used with HTTP servers');
  if ((mode === 'PASSTHROUGH' || mode === 'AUTO_PASSTHROUGH') && (files || tls.credentialName !== undefined))
    c.warn(path, `${mode} mode does not use certificates, they will be ignored`);
  if (tls.minProtocolVersion === 'TLSV1_0' || tls.minProtocolVersion === 'TLSV1_1')
    c.warn(
      `${path}.minProtocolVersion`,
      'TLS versions below TLSV1_2 need compatible cipherSuites set: the defaults no longer include them',
    );
  if (mode === 'ISTIO_MUTUAL' && (files || tls.credentialName !== undefined)) {
    c.report(path, 'ISTIO_MUTUAL uses the mesh certificates; it takes no certificate files or credentialName');
  }
  if (mode === 'SIMPLE' || mode === 'MUTUAL' || mode === 'OPTIONAL_MUTUAL') {
    if (tls.credentialName === undefined) {
      if (tls.serverCertificate === undefined)
        c.report(`${path}.serverCertificate`, `TLS mode ${mode} needs serverCertificate (or credentialName)`);
      if (tls.privateKey === undefined) c.report(`${path}.privateKey`, `TLS mode ${mode} needs privateKey (or credentialName)`);
      if (mode !== 'SIMPLE' && tls.caCertificates === undefined)
        c.report(`${path}.caCertificates`, `TLS mode ${mode} needs caCertificates (or credentialName)`);
    } else if (files) {
      c.report(path, 'set certificate files or credentialName, not both');
    }
  }
  if (mode === 'AUTO_PASSTHROUGH' && protocol !== 'TLS') c.report(`${path}.mode`, 'AUTO_PASSTHROUGH needs port protocol TLS');
  const order = ['TLS_AUTO', 'TLSV1_0', 'TLSV1_1', 'TLSV1_2', 'TLSV1_3'];
  if (tls.minProtocolVersion && tls.maxProtocolVersion && tls.maxProtocolVersion !== 'TLS_AUTO') {
    if (order.indexOf(tls.minProtocolVersion) > order.indexOf(tls.maxProtocolVersion))
      c.report(path, 'minProtocolVersion is above maxProtocolVersion');
  }
}

export function checkGateway(spec: GatewaySpec, c: Checker): void {
  c.labels('spec.selector', spec.selector);
  if (spec.servers.length === 0) c.report('spec.servers', 'at least one server is required');
  const portNames = new Map<string, number>();
  const serverNames = new Set<string>();
  spec.servers.forEach((s, i) => {
    const p = `spec.servers[${i}]`;
    c.port(`${p}.port.number`, s.port.number);
    checkProtocol(`${p}.port.protocol`, s.port.protocol, c);
    if (!isDns1123Label(s.port.name)) c.report(`${p}.port.name`, `port name ${quote(s.port.name)} is not a DNS-1123 label`);
    const other = portNames.get(s.port.name);
    if (other !== undefined) c.report(`${p}.port.name`, `port name ${quote(s.port.name)} is already used by servers[${other}]`);
    portNames.set(s.port.name, i);
    if (s.name !== undefined) {
      if (serverNames.has(s.name)) c.report(`${p}.name`, `server name ${quote(s.name)} is used twice`);
      serverNames.add(s.name);
    }
    if (s.bind !== undefined) {
      if (s.bind.startsWith('unix://')) c.unsupported(`${p}.bind`, 'unix domain socket binds are not implemented by vmesh');
      else c.check(`${p}.bind`, ipProblem(s.bind));
    }
    if (s.hosts.length === 0) c.report(`${p}.hosts`, 'at least one host is required');
    s.hosts.forEach((h, j) => {
      checkGatewayHost(`${p}.hosts[${j}]`, h, c);
    });
    checkServerTls(`${p}.tls`, s.port.protocol, s.tls, c);
  });
}
