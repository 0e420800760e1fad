import type { MeshService, ServicePort } from '../../api/model.js';
import type { AccessLog } from '../../generated/envoy/config/accesslog/v3/AccessLog.js';
import type { FilterChain } from '../../generated/envoy/config/listener/v3/FilterChain.js';
import type { Listener } from '../../generated/envoy/config/listener/v3/Listener.js';
import { type AccessLogScope, accessLogsFor } from './access-log.js';
import { httpFiltersFor } from './http-filters.js';
import type { EnvoyResource, TranslateInput } from './input.js';
import {
  hcmFilter,
  isHttpFamily,
  type L4Binding,
  listenerFilter,
  meshVirtualServices,
  socketAddress,
  statPrefixOf,
  type TcpTarget,
  tcpProxyFilters,
  tcpRouteFor,
  tlsRouteChains,
} from './listener-parts.js';
import { buildGatewayListeners } from './listeners-gateway.js';
import { buildVirtualInbound } from './listeners-inbound.js';
import { statsConfigFor } from './metrics.js';
import { BLACKHOLE_CLUSTER, outboundClusterName, outboundRouteName, PASSTHROUGH_CLUSTER, VIRTUAL_OUTBOUND_LISTENER } from './names.js';
import { type OutboundBinding, outboundBindings } from './outbound-bindings.js';
import { buildProxylessListeners } from './proxyless.js';
import { outboundTrafficMode } from './scope.js';
import { tracingFor } from './tracing.js';

export const VIRTUAL_OUTBOUND_PORT = 15001;

function clientScope(input: TranslateInput): AccessLogScope {
  return { mode: 'CLIENT', namespace: input.node.namespace, labels: input.node.labels };
}

/** Non-HTTP ports: SNI chains from tls routes (TLS/HTTPS ports), then one chain for the rest (tcp route or the service). */
function l4Chains(
  input: TranslateInput,
  service: MeshService,
  port: ServicePort,
  accessLog: AccessLog[],
): { chains: FilterChain[]; sni: boolean } {
  const stats = statsConfigFor(input, clientScope(input));
  const binding: L4Binding = { kind: 'mesh', port: port.number, vip: service.vip };
  const vss = meshVirtualServices(input, [service.hostname]);
  const tlsish = port.protocol === 'TLS' || port.protocol === 'HTTPS';
  const sniChains = tlsish ? tlsRouteChains(input, vss, binding, accessLog, stats) : [];
  const target: TcpTarget = tcpRouteFor(input, vss, binding) ?? { cluster: outboundClusterName(port.number, '', service.hostname) };
  const fallback = {
    name: 'tcp',
    filters: tcpProxyFilters(statPrefixOf(target, `outbound_${service.vip}_${port.number}`), target, accessLog, stats),
  };
  return { chains: [...sniChains, fallback], sni: sniChains.length > 0 };
}

/**
 * One listener per service VIP:port, not bound to a socket: connections arrive through 15001 by their original
 * destination (Istio's virtual listeners). HTTP-family ports route by RDS on the owner's route config.
 */
function outboundListener(input: TranslateInput, binding: OutboundBinding): EnvoyResource<Listener> {
  const { listener: name, address, port, owner: service } = binding;
  const accessLog = accessLogsFor(input, clientScope(input));
  let chains: FilterChain[];
  let sni = false;
  if (isHttpFamily(port.protocol)) {
    const route = outboundRouteName(service.hostname, port.number);
    const hcm = hcmFilter({
      statPrefix: `outbound_${service.vip}_${port.number}`,
      routeName: route,
      httpFilters: httpFiltersFor(input, { direction: 'outbound', port: port.number, route }),
      accessLog,
      tracing: tracingFor(input, clientScope(input)),
    });
    chains = [{ name: 'http', filters: [hcm] }];
  } else {
    ({ chains, sni } = l4Chains(input, service, port, accessLog));
  }
  return {
    name,
    message: {
      name,
      address: socketAddress(address, port.number),
      bind_to_port: { value: false },
      traffic_direction: 'OUTBOUND',
      ...(sni ? { listener_filters: [listenerFilter('tls_inspector')] } : {}),
      filter_chains: chains,
    },
  };
}

/** `virtualOutbound` on 0.0.0.0:15001: hands captured connections to the VIP:port listeners; the rest by policy. */
function virtualOutbound(input: TranslateInput): EnvoyResource<Listener> {
  const cluster = outboundTrafficMode(input) === 'REGISTRY_ONLY' ? BLACKHOLE_CLUSTER : PASSTHROUGH_CLUSTER;
  return {
    name: VIRTUAL_OUTBOUND_LISTENER,
    message: {
      name: VIRTUAL_OUTBOUND_LISTENER,
      address: socketAddress('0.0.0.0', VIRTUAL_OUTBOUND_PORT),
      use_original_dst: { value: true },
      traffic_direction: 'OUTBOUND',
      listener_filters: [listenerFilter('original_dst')],
      default_filter_chain: {
        name: cluster,
        filters: tcpProxyFilters(cluster, { cluster }, accessLogsFor(input, clientScope(input)), statsConfigFor(input, clientScope(input))),
      },
    },
  };
}

/** A listener per VIP (and the ServiceEntry's own IPv6 addresses, which the DNS proxy answers for AAAA) and port. */
function sidecarListeners(input: TranslateInput): EnvoyResource<Listener>[] {
  const outbound = outboundBindings(input).map((b) => outboundListener(input, b));
  return [...outbound, virtualOutbound(input), buildVirtualInbound(input)];
}

/**
 * The node's listeners (LDS), sorted by name. Sidecars: per-service outbound listeners, 15001 and 15006;
 * gateways: the Gateway servers' ports; proxyless gRPC clients: ApiListeners per service port.
 */
export function buildListeners(input: TranslateInput): EnvoyResource<Listener>[] {
  const listeners =
    input.node.mode === 'gateway'
      ? buildGatewayListeners(input)
      : input.node.mode === 'proxyless'
        ? buildProxylessListeners(input)
        : sidecarListeners(input);
  return [...listeners].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
