import type { Endpoint, Protocol } from '../../api/model.js';
import { isUnixAddress } from '../../api/unix-address.js';
import type { Filter } from '../../generated/envoy/config/listener/v3/Filter.js';
import type { FilterChain } from '../../generated/envoy/config/listener/v3/FilterChain.js';
import type { Listener } from '../../generated/envoy/config/listener/v3/Listener.js';
import { type AccessLogScope, accessLogsFor } from './access-log.js';
import { inboundPorts } from './clusters.js';
import { spiffeIdOf } from './destination-rule.js';
import { endpointPort } from './endpoints.js';
import { httpFiltersFor } from './http-filters.js';
import type { EnvoyResource, TranslateInput } from './input.js';
import { hcmFilter, isHttpFamily, listenerFilter, socketAddress, tcpProxyFilters } from './listener-parts.js';
import { statsConfigFor } from './metrics.js';
import {
  INBOUND_PASSTHROUGH_CLUSTER,
  inboundClusterName,
  inboundRouteName,
  SDS_DEFAULT_CERT,
  VIRTUAL_INBOUND_LISTENER,
  workloadSecretName,
} from './names.js';
import { effectiveMtlsMode, type MtlsMode, namespaceMtlsMode } from './peer-authentication.js';
import { rbacFor } from './rbac.js';
import { jwtFilterFor } from './request-authn.js';
import { downstreamMtls } from './tls.js';
import { tracingFor } from './tracing.js';
import { wasmNetworkFilters } from './wasm-plugin.js';

export const VIRTUAL_INBOUND_PORT = 15006;
/** ALPN the mesh's client side offers (tls.ts upstreamMtls): how mTLS from a peer proxy is told apart from app TLS. */
export const MESH_MTLS_ALPN: readonly string[] = ['istio-peer-exchange', 'istio'];

interface InboundPort {
  readonly port: number;
  readonly protocol: Protocol;
  /** The local workload whose identity, policies and mTLS mode the port serves (the first, when several share it). */
  readonly workload: Endpoint;
  readonly workloads: readonly Endpoint[];
}

/** The ports of the node's workloads (the same list the inbound clusters are built from), each with its workloads. */
export function inboundWorkloadPorts(input: TranslateInput): InboundPort[] {
  const key = (w: Endpoint) => `${w.namespace}/${w.workload}`;
  const local = new Map(input.node.workloads.map((w) => [key(w), w]));
  const byPort = new Map<number, Endpoint[]>();
  for (const service of [...input.model.services.values()].sort((a, b) => (a.hostname < b.hostname ? -1 : 1))) {
    for (const ep of service.endpoints) {
      const w = local.get(key(ep));
      if (!w || isUnixAddress(ep.address)) continue;
      for (const sp of service.ports) {
        const list = byPort.get(endpointPort(ep, sp)) ?? [];
        if (!list.includes(w)) list.push(w);
        byPort.set(endpointPort(ep, sp), list);
      }
    }
  }
  return inboundPorts(input).flatMap(({ port, protocol }) => {
    const workloads = byPort.get(port) ?? [];
    return workloads[0] ? [{ port, protocol, workload: workloads[0], workloads }] : [];
  });
}

function inboundFilters(input: TranslateInput, p: InboundPort): Filter[] {
  const scope: AccessLogScope = { mode: 'SERVER', namespace: p.workload.namespace, labels: p.workload.labels };
  const accessLog = accessLogsFor(input, scope);
  if (!isHttpFamily(p.protocol)) {
    const subjects = p.workloads.map((w) => ({ namespace: w.namespace, labels: w.labels, workload: w.workload }));
    return [
      ...wasmNetworkFilters(input, { mode: 'SERVER', port: p.port, subjects }),
      ...rbacFor(input, p.workload, 'network'),
      ...tcpProxyFilters(inboundClusterName(p.port), { cluster: inboundClusterName(p.port) }, accessLog, statsConfigFor(input, scope)),
    ];
  }
  const httpFilters = [
    ...jwtFilterFor(input, p.workload),
    ...rbacFor(input, p.workload, 'http'),
    ...httpFiltersFor(input, { direction: 'inbound', port: p.port, workloads: p.workloads }),
  ];
  return [
    hcmFilter({
      statPrefix: `inbound_${p.port}`,
      routeName: inboundRouteName(p.port),
      httpFilters,
      accessLog,
      tracing: tracingFor(input, scope),
      // The workload learns its caller's SPIFFE id from x-forwarded-client-cert; whatever the caller sent is replaced.
      extra: { forward_client_cert_details: 'SANITIZE_SET', set_current_client_cert_details: { uri: true } },
    }),
  ];
}

/**
 * The chains of one port (or of the catch-all when `port` is undefined) for its mTLS mode: STRICT accepts only
 * mesh mTLS; PERMISSIVE also plaintext, and (for non-HTTP ports) the app's own TLS passed through untouched;
 * DISABLE takes whatever arrives without terminating TLS.
 */
function modeChains(
  name: string,
  port: number | undefined,
  mode: MtlsMode,
  certSecret: string,
  filters: Filter[],
  http: boolean,
): FilterChain[] {
  const dst = port === undefined ? {} : { destination_port: { value: port } };
  if (mode === 'DISABLE') return [{ name, ...(port === undefined ? {} : { filter_chain_match: dst }), filters }];
  const chains: FilterChain[] = [
    {
      name: `${name}|mtls`,
      filter_chain_match: { ...dst, transport_protocol: 'tls', application_protocols: [...MESH_MTLS_ALPN] },
      transport_socket: downstreamMtls({ certSecret, requireClientCert: true }),
      filters,
    },
  ];
  if (mode === 'PERMISSIVE') {
    chains.push({ name: `${name}|plaintext`, filter_chain_match: { ...dst, transport_protocol: 'raw_buffer' }, filters });
    if (!http) chains.push({ name: `${name}|tls-passthrough`, filter_chain_match: { ...dst, transport_protocol: 'tls' }, filters });
  }
  return chains;
}

/**
 * `virtualInbound` on 0.0.0.0:15006: one set of chains per local workload port (matched on the original
 * destination port), mTLS terminated with the workload's identity; ports no workload declares go to
 * InboundPassthroughCluster under the namespace's (or mesh's) mTLS mode.
 */
export function buildVirtualInbound(input: TranslateInput): EnvoyResource<Listener> {
  const chains: FilterChain[] = [];
  for (const p of inboundWorkloadPorts(input)) {
    const mode = effectiveMtlsMode(input, p.workload, p.port);
    const secret = workloadSecretName(spiffeIdOf(input.mesh, p.workload.namespace, p.workload.serviceAccount));
    chains.push(...modeChains(`inbound|${p.port}`, p.port, mode, secret, inboundFilters(input, p), isHttpFamily(p.protocol)));
  }
  const scope: AccessLogScope = { mode: 'SERVER', namespace: input.node.namespace, labels: {} };
  const passthrough = tcpProxyFilters(
    INBOUND_PASSTHROUGH_CLUSTER,
    { cluster: INBOUND_PASSTHROUGH_CLUSTER },
    accessLogsFor(input, scope),
    statsConfigFor(input, scope),
  );
  const catchAllMode = namespaceMtlsMode(input, input.node.namespace);
  chains.push(...modeChains('virtualInbound-catchall', undefined, catchAllMode, SDS_DEFAULT_CERT, passthrough, false));
  return {
    name: VIRTUAL_INBOUND_LISTENER,
    message: {
      name: VIRTUAL_INBOUND_LISTENER,
      address: socketAddress('0.0.0.0', VIRTUAL_INBOUND_PORT),
      traffic_direction: 'INBOUND',
      // The port's protocol is known from the registry, so only TLS needs detecting, not HTTP.
      listener_filters: [listenerFilter('original_dst'), listenerFilter('tls_inspector')],
      // Server-first protocols send nothing for tls_inspector to read; after its timeout they continue as plaintext.
      continue_on_listener_filters_timeout: true,
      filter_chains: chains,
    },
  };
}
