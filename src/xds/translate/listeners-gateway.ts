import type { GatewaySpec, Resource } from '../../api/resource.js';
import { canonicalHost, hostMatches } from '../../api/service-hosts.js';
import type { AccessLog } from '../../generated/envoy/config/accesslog/v3/AccessLog.js';
import type { TransportSocket } from '../../generated/envoy/config/core/v3/TransportSocket.js';
import type { Filter } from '../../generated/envoy/config/listener/v3/Filter.js';
import type { FilterChain } from '../../generated/envoy/config/listener/v3/FilterChain.js';
import type { Listener } from '../../generated/envoy/config/listener/v3/Listener.js';
import type { CommonTlsContext } from '../../generated/envoy/extensions/transport_sockets/tls/v3/CommonTlsContext.js';
import type { TlsParameters } from '../../generated/envoy/extensions/transport_sockets/tls/v3/TlsParameters.js';
import type { Any } from '../../generated/google/protobuf/Any.js';
import { type AccessLogScope, accessLogsFor } from './access-log.js';
import { outboundClusters } from './endpoints.js';
import { httpFiltersFor } from './http-filters.js';
import type { EnvoyResource, TranslateInput } from './input.js';
import { hcmFilter, isHttpFamily, listenerFilter, socketAddress, tcpProxyFilters, tcpRouteFor, tlsRouteChains } from './listener-parts.js';
import { statsConfigFor } from './metrics.js';
import { gatewayListenerName, SDS_DEFAULT_CERT } from './names.js';
import { jwtFilterFor } from './request-authn.js';
import { gatewayServerRouteName } from './routes.js';
import { downstreamMtls, sdsSecretConfig } from './tls.js';
import { tracingFor } from './tracing.js';
import { typedConfig } from './typed-config.js';

/**
 * Gateway mode: one listener per port of the Gateway servers that select this node, binding the port for real.
 * HTTP servers share one HCM (routes `http.<port>`); TLS-terminating servers get an SNI-matched chain each;
 * PASSTHROUGH servers route by SNI from VirtualService tls routes without terminating.
 */

type TlsProtocol = NonNullable<TlsParameters['tls_minimum_protocol_version']>;
type ValidationContext = NonNullable<CommonTlsContext['validation_context']>;
type Gateway = Resource<'Gateway'>;
type Server = GatewaySpec['servers'][number];
type ServerTls = NonNullable<Server['tls']>;

interface BoundServer {
  readonly gateway: Gateway;
  readonly server: Server;
}

/** Names a server's filter chain: Istio's `<port name>.<gateway>.<namespace>`. */
function serverKey(gateway: Gateway, server: Server): string {
  return `${server.port.name}.${gateway.metadata.name}.${gateway.metadata.namespace}`;
}

/** Gateways whose selector matches the node's labels (an empty selector selects every gateway node). */
export function gatewaysFor(input: TranslateInput): Gateway[] {
  const key = (g: Gateway) => `${g.metadata.namespace}/${g.metadata.name}`;
  return input.config.gateways
    .filter((g) => Object.entries(g.spec.selector ?? {}).every(([k, v]) => input.node.labels[k] === v))
    .sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}

/** A server host without its `<namespace>/` part, canonical. */
function hostOf(gateway: Gateway, h: string, input: TranslateInput): string {
  const name = h.includes('/') ? h.slice(h.indexOf('/') + 1) : h;
  return canonicalHost(name, gateway.metadata.namespace, input.mesh);
}

/** Whether a server host admits `host` from a VirtualService in `vsNamespace` (`ns/`: `*` any, `.` the gateway's own). */
function serverAdmits(b: BoundServer, input: TranslateInput, vsNamespace: string, host: string): boolean {
  return b.server.hosts.some((h) => {
    const ns = h.includes('/') ? h.slice(0, h.indexOf('/')) : '*';
    if (ns !== '*' && (ns === '.' ? b.gateway.metadata.namespace : ns) !== vsNamespace) return false;
    const pattern = hostOf(b.gateway, h, input);
    return hostMatches(pattern, host) || hostMatches(host, pattern);
  });
}

/** Envoy server_names for a server: none (any SNI) when one of its hosts is `*`. */
function serverNames(b: BoundServer, input: TranslateInput): string[] {
  const hosts = b.server.hosts.map((h) => hostOf(b.gateway, h, input));
  return hosts.includes('*') ? [] : [...new Set(hosts)].sort();
}

const TLS_VERSION: Record<string, TlsProtocol> = {
  TLS_AUTO: 'TLS_AUTO',
  TLSV1_0: 'TLSv1_0',
  TLSV1_1: 'TLSv1_1',
  TLSV1_2: 'TLSv1_2',
  TLSV1_3: 'TLSv1_3',
};

function tlsParams(tls: ServerTls): CommonTlsContext {
  const p: TlsParameters = {
    ...(tls.minProtocolVersion ? { tls_minimum_protocol_version: TLS_VERSION[tls.minProtocolVersion] } : {}),
    ...(tls.maxProtocolVersion ? { tls_maximum_protocol_version: TLS_VERSION[tls.maxProtocolVersion] } : {}),
    ...(tls.cipherSuites?.length ? { cipher_suites: [...tls.cipherSuites] } : {}),
  };
  return Object.keys(p).length ? { tls_params: p } : {};
}

/** Client certificate checks of MUTUAL/OPTIONAL_MUTUAL: the CA from the credential (SDS) or a file, plus SAN/SPKI/hash pins. */
function clientValidation(tls: ServerTls): CommonTlsContext {
  const pins: ValidationContext = {
    ...(tls.subjectAltNames?.length
      ? { match_typed_subject_alt_names: tls.subjectAltNames.map((s) => ({ san_type: 'URI' as const, matcher: { exact: s } })) }
      : {}),
    ...(tls.verifyCertificateSpki?.length ? { verify_certificate_spki: [...tls.verifyCertificateSpki] } : {}),
    ...(tls.verifyCertificateHash?.length ? { verify_certificate_hash: [...tls.verifyCertificateHash] } : {}),
  };
  if (tls.credentialName === undefined) return { validation_context: { trusted_ca: { filename: tls.caCertificates }, ...pins } };
  const sds = sdsSecretConfig(`file-cert:${tls.credentialName}-cacert`);
  return Object.keys(pins).length
    ? { combined_validation_context: { default_validation_context: pins, validation_context_sds_secret_config: sds } }
    : { validation_context_sds_secret_config: sds };
}

/**
 * The DownstreamTlsContext of a terminating server. Credentials are files on the gateway host, served by its
 * agent's SDS as `file-cert:<credentialName>` (and `-cacert` for the client CA); ISTIO_MUTUAL uses the mesh identity.
 */
function serverTransportSocket(tls: ServerTls, http: boolean): TransportSocket {
  const mode = tls.mode ?? 'PASSTHROUGH';
  if (mode === 'ISTIO_MUTUAL') return downstreamMtls({ certSecret: SDS_DEFAULT_CERT, requireClientCert: true });
  const mutual = mode === 'MUTUAL' || mode === 'OPTIONAL_MUTUAL';
  const certs =
    tls.credentialName !== undefined
      ? { tls_certificate_sds_secret_configs: [sdsSecretConfig(`file-cert:${tls.credentialName}`)] }
      : { tls_certificates: [{ certificate_chain: { filename: tls.serverCertificate }, private_key: { filename: tls.privateKey } }] };
  return {
    name: 'envoy.transport_sockets.tls',
    typed_config: typedConfig('downstreamTlsContext', {
      ...(mode === 'MUTUAL' ? { require_client_certificate: { value: true } } : {}),
      common_tls_context: {
        ...certs,
        ...(mutual ? clientValidation(tls) : {}),
        ...tlsParams(tls),
        ...(http ? { alpn_protocols: ['h2', 'http/1.1'] } : {}),
      },
    }),
  };
}

function gatewayVirtualServices(input: TranslateInput, b: BoundServer): Resource<'VirtualService'>[] {
  const ref = `${b.gateway.metadata.namespace}/${b.gateway.metadata.name}`;
  const key = (v: Resource<'VirtualService'>) => `${v.metadata.namespace}/${v.metadata.name}`;
  return input.config.virtualServices
    .filter((vs) => (vs.spec.gateways ?? []).some((g) => (g.includes('/') ? g : `${vs.metadata.namespace}/${g}`) === ref))
    .filter((vs) =>
      vs.spec.hosts.some((h) => serverAdmits(b, input, vs.metadata.namespace, canonicalHost(h, vs.metadata.namespace, input.mesh))),
    )
    .sort((a, b2) => (key(a) < key(b2) ? -1 : key(a) > key(b2) ? 1 : 0));
}

interface PortChains {
  chains: FilterChain[];
  tlsInspector: boolean;
}

function addServerChains(
  input: TranslateInput,
  port: number,
  b: BoundServer,
  out: PortChains,
  accessLog: AccessLog[],
  stats: Any | undefined,
): void {
  const { server } = b;
  const tls = server.tls;
  const mode = tls?.mode;
  const binding = { kind: 'gateway' as const, port, gateway: b.gateway };
  const names = serverNames(b, input);
  const sni = names.length ? { server_names: names } : {};
  const vss = () => gatewayVirtualServices(input, b);
  const httpFilters = () => [
    ...jwtFilterFor(input, { namespace: input.node.namespace, labels: input.node.labels }),
    ...httpFiltersFor(input, { direction: 'gateway', port }),
  ];
  const tracing = tracingFor(input, { mode: 'CLIENT', namespace: input.node.namespace, labels: input.node.labels });
  const extra = { use_remote_address: { value: true }, ...(tracing ?? {}) };
  const statPrefix = `gateway_${port}`;
  // The route config names come from routes.ts, which builds them: the two sides cannot drift apart.
  const routeName = gatewayServerRouteName(b.gateway, server);
  if (isHttpFamily(server.port.protocol)) {
    // All plain HTTP servers of a port share one chain and one route config (`tls` can only be httpsRedirect here).
    if (routeName === undefined || out.chains.some((c) => c.name === routeName)) return;
    out.chains.push({ name: routeName, filters: [hcmFilter({ statPrefix, routeName, httpFilters: httpFilters(), accessLog, extra })] });
    return;
  }
  if (tls === undefined) {
    const route = tcpRouteFor(input, vss(), binding);
    if (route)
      out.chains.push({ name: `tcp.${serverKey(b.gateway, server)}`, filters: tcpProxyFilters(statPrefix, route, accessLog, stats) });
    return;
  }
  out.tlsInspector = true;
  if (mode === undefined || mode === 'PASSTHROUGH') {
    const allow = (vsNs: string, host: string) => serverAdmits(b, input, vsNs, canonicalHost(host, vsNs, input.mesh));
    out.chains.push(...tlsRouteChains(input, vss(), binding, accessLog, stats, allow));
    return;
  }
  if (mode === 'AUTO_PASSTHROUGH') {
    // Istio's SNI convention: the client names the cluster it wants, `outbound_.<port>_.<subset>_.<host>`.
    for (const c of outboundClusters(input)) {
      if (c.service.location !== 'MESH_INTERNAL' || c.discovery === 'ORIGINAL_DST') continue;
      if (!serverAdmits(b, input, c.service.namespace, c.service.hostname)) continue;
      const name = `outbound_.${c.port.number}_.${c.subset}_.${c.service.hostname}`;
      out.chains.push({
        name,
        filter_chain_match: { server_names: [name] },
        filters: tcpProxyFilters(c.name, { cluster: c.name }, accessLog, stats),
      });
    }
    return;
  }
  const http = routeName !== undefined;
  const name = routeName ?? `tls.${serverKey(b.gateway, server)}`;
  let filters: Filter[];
  if (http) {
    filters = [hcmFilter({ statPrefix, routeName, httpFilters: httpFilters(), accessLog, extra })];
  } else {
    const route = tcpRouteFor(input, vss(), binding);
    if (!route) return;
    filters = tcpProxyFilters(statPrefix, route, accessLog, stats);
  }
  out.chains.push({
    name,
    filter_chain_match: { ...sni, transport_protocol: 'tls' },
    transport_socket: serverTransportSocket(tls, http),
    filters,
  });
}

/** Envoy refuses two chains with the same match: the first server (by gateway, then order) keeps it. */
function uniqueChains(chains: readonly FilterChain[]): FilterChain[] {
  const seen = new Set<string>();
  return chains.filter((c) => {
    const key = JSON.stringify(c.filter_chain_match ?? {});
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** The gateway node's listeners, sorted by name; a port whose servers produce no chain gets no listener. */
export function buildGatewayListeners(input: TranslateInput): EnvoyResource<Listener>[] {
  const byPort = new Map<number, BoundServer[]>();
  for (const gateway of gatewaysFor(input)) {
    for (const server of gateway.spec.servers)
      byPort.set(server.port.number, [...(byPort.get(server.port.number) ?? []), { gateway, server }]);
  }
  const scope: AccessLogScope = { mode: 'CLIENT', namespace: input.node.namespace, labels: input.node.labels };
  const accessLog = accessLogsFor(input, scope);
  const stats = statsConfigFor(input, scope);
  const out: EnvoyResource<Listener>[] = [];
  for (const [port, servers] of [...byPort.entries()].sort(([a], [b]) => a - b)) {
    const pc: PortChains = { chains: [], tlsInspector: false };
    for (const b of servers) addServerChains(input, port, b, pc, accessLog, stats);
    const chains = uniqueChains(pc.chains);
    if (chains.length === 0) continue;
    const name = gatewayListenerName(port);
    out.push({
      name,
      message: {
        name,
        address: socketAddress(servers[0]?.server.bind ?? '0.0.0.0', port),
        traffic_direction: 'OUTBOUND',
        ...(pc.tlsInspector ? { listener_filters: [listenerFilter('tls_inspector')] } : {}),
        filter_chains: chains,
      },
    });
  }
  return out;
}
