import type { Resource, VirtualServiceSpec } from '../../api/resource.js';
import { MESH_GATEWAY } from '../../api/resources/networking-virtual-service-check.js';
import { canonicalHost, hostMatches } from '../../api/service-hosts.js';
import type { AccessLog } from '../../generated/envoy/config/accesslog/v3/AccessLog.js';
import type { Address } from '../../generated/envoy/config/core/v3/Address.js';
import type { Filter } from '../../generated/envoy/config/listener/v3/Filter.js';
import type { FilterChain } from '../../generated/envoy/config/listener/v3/FilterChain.js';
import type { ListenerFilter } from '../../generated/envoy/config/listener/v3/ListenerFilter.js';
import type { HttpConnectionManager } from '../../generated/envoy/extensions/filters/network/http_connection_manager/v3/HttpConnectionManager.js';
import type { HttpFilter } from '../../generated/envoy/extensions/filters/network/http_connection_manager/v3/HttpFilter.js';
import type { TcpProxy } from '../../generated/envoy/extensions/filters/network/tcp_proxy/v3/TcpProxy.js';
import type { Any } from '../../generated/google/protobuf/Any.js';
import { parseCidr } from '../../lib/addr.js';
import type { TranslateInput } from './input.js';
import { STATS_FILTER } from './metrics.js';
import { resolveDestination } from './route-action.js';
import { resolveGatewayName } from './route-match.js';
import type { HcmTracingParts } from './tracing.js';
import { typedConfig } from './typed-config.js';

/**
 * Pieces every listener builder shares (inbound, outbound, gateway): filter builders, and L4 routing from
 * VirtualService `tcp`/`tls` routes (weighted tcp_proxy targets, SNI-matched chains).
 */

type ClusterWeight = NonNullable<NonNullable<TcpProxy['weighted_clusters']>['clusters']>[number];
type VirtualService = Resource<'VirtualService'>;
type TcpRoute = NonNullable<VirtualServiceSpec['tcp']>[number];
type TlsRoute = NonNullable<VirtualServiceSpec['tls']>[number];
type L4Match = NonNullable<TcpRoute['match']>[number] | TlsRoute['match'][number];

// ---- filter builders ----

export { isHttpFamily } from '../../api/model.js';

export function socketAddress(address: string, port: number): Address {
  return { socket_address: { address, port_value: port } };
}

export function listenerFilter(kind: 'original_dst' | 'tls_inspector'): ListenerFilter {
  return {
    name: `envoy.filters.listener.${kind}`,
    typed_config: kind === 'original_dst' ? typedConfig('originalDst', {}) : typedConfig('tlsInspector', {}),
  };
}

/** Where a tcp_proxy sends a connection: one cluster, or several by weight. */
export type TcpTarget = { readonly cluster: string } | { readonly weighted_clusters: { readonly clusters: ClusterWeight[] } };

/** A tcp_proxy, behind Istio's stats filter when Telemetry overrides metrics for its side (`stats`, metrics.ts). */
export function tcpProxyFilters(statPrefix: string, target: TcpTarget, accessLog: readonly AccessLog[], stats: Any | undefined): Filter[] {
  const tcp: Filter = {
    name: 'envoy.filters.network.tcp_proxy',
    typed_config: typedConfig('tcpProxy', {
      stat_prefix: statPrefix,
      ...target,
      ...(accessLog.length ? { access_log: [...accessLog] } : {}),
    }),
  };
  return stats ? [{ name: STATS_FILTER, typed_config: stats }, tcp] : [tcp];
}

/** An HttpConnectionManager whose routes come over ADS (RDS), so route changes never drain listeners. */
export function hcmFilter(opts: {
  statPrefix: string;
  routeName: string;
  httpFilters: readonly HttpFilter[];
  accessLog: readonly AccessLog[];
  /** The HCM's `tracing` block and request id extension (tracing.ts); none: the proxy leaves trace headers alone. */
  tracing?: HcmTracingParts | undefined;
  extra?: HttpConnectionManager;
}): Filter {
  return {
    name: 'envoy.filters.network.http_connection_manager',
    typed_config: typedConfig('httpConnectionManager', {
      stat_prefix: opts.statPrefix,
      codec_type: 'AUTO',
      rds: { config_source: { ads: {}, resource_api_version: 'V3' }, route_config_name: opts.routeName },
      http_filters: [...opts.httpFilters],
      ...(opts.accessLog.length ? { access_log: [...opts.accessLog] } : {}),
      ...(opts.tracing ?? {}),
      ...opts.extra,
    }),
  };
}

// ---- L4 routing from VirtualServices ----

/** Who the L4 routes are for: a sidecar's outbound listener for a service VIP:port, or a gateway server's port. */
export type L4Binding =
  | { readonly kind: 'mesh'; readonly port: number; readonly vip: string }
  | { readonly kind: 'gateway'; readonly port: number; readonly gateway: Resource<'Gateway'> };

function inSubnet(ip: string, cidr: string): boolean {
  const c = parseCidr(cidr, 'destinationSubnets');
  const toBits = (a: string) => a.split('.').reduce((acc, octet) => acc * 256n + BigInt(Number(octet)), 0n);
  if (c.family !== 'IPv4' || !/^\d+\.\d+\.\d+\.\d+$/.test(ip)) return false;
  const shift = BigInt(32 - c.prefix);
  return toBits(ip) >> shift === toBits(c.address) >> shift;
}

function bindingRef(b: L4Binding): string {
  return b.kind === 'mesh' ? MESH_GATEWAY : `${b.gateway.metadata.namespace}/${b.gateway.metadata.name}`;
}

/** Whether a tcp/tls match block applies here, as Istio drops blocks whose port, gateways or source exclude the proxy. */
function l4MatchApplies(input: TranslateInput, vs: VirtualService, m: L4Match, b: L4Binding): boolean {
  if (m.port !== undefined && m.port !== b.port) return false;
  if (m.gateways?.length && !m.gateways.some((g) => resolveGatewayName(g, vs.metadata.namespace) === bindingRef(b))) return false;
  if (m.sourceNamespace !== undefined && m.sourceNamespace !== input.node.namespace) return false;
  const wanted = Object.entries(m.sourceLabels ?? {});
  const labelSets = b.kind === 'mesh' ? input.node.workloads.map((w) => w.labels) : [input.node.labels];
  if (wanted.length > 0 && !labelSets.some((l) => wanted.every(([k, v]) => l[k] === v))) return false;
  const subnets = m.destinationSubnets ?? [];
  return b.kind !== 'mesh' || subnets.length === 0 || subnets.some((s) => inSubnet(b.vip, s));
}

/** VirtualServices for a sidecar's service (exported to the node's namespace, bound to `mesh`), by namespace/name. */
export function meshVirtualServices(input: TranslateInput, hostnames: readonly string[]): VirtualService[] {
  const key = (v: VirtualService) => `${v.metadata.namespace}/${v.metadata.name}`;
  const ns = input.node.namespace;
  return input.config.virtualServices
    .filter((vs) => {
      const e = vs.spec.exportTo;
      return !e?.length || e.some((x) => x === '*' || x === ns || (x === '.' && vs.metadata.namespace === ns));
    })
    .filter((vs) => (vs.spec.gateways?.length ? vs.spec.gateways : [MESH_GATEWAY]).includes(MESH_GATEWAY))
    .filter((vs) =>
      vs.spec.hosts.some((h) => hostnames.some((name) => hostMatches(canonicalHost(h, vs.metadata.namespace, input.mesh), name))),
    )
    .sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}

/** A route's destinations as a tcp_proxy target; zero weights drop out (Envoy wants ≥ 1), a single one needs none. */
export function l4Target(input: TranslateInput, vs: VirtualService, route: TcpRoute['route'], port: number): TcpTarget {
  const resolved = route.map((r) => ({
    name: resolveDestination(r.destination, { input, port }, vs.metadata.namespace).cluster,
    weight: r.weight ?? (route.length === 1 ? 100 : 0),
  }));
  const weighted = resolved.filter((r) => r.weight > 0);
  const only = weighted.length === 1 ? weighted[0] : resolved.length === 1 ? resolved[0] : undefined;
  if (only) return { cluster: only.name };
  return { weighted_clusters: { clusters: weighted.length ? weighted : resolved.map((r) => ({ ...r, weight: 1 })) } };
}

/** Istio's stat prefix for a tcp_proxy: the cluster's name, or the listener's when traffic is split. */
export function statPrefixOf(target: TcpTarget, fallback: string): string {
  return 'cluster' in target ? target.cluster : fallback;
}

/** The first tcp route whose match blocks (if any) apply: Istio takes routes in order, first match wins. */
export function tcpRouteFor(input: TranslateInput, vss: readonly VirtualService[], b: L4Binding): TcpTarget | undefined {
  for (const vs of vss) {
    for (const r of vs.spec.tcp ?? []) {
      if (!r.match?.length || r.match.some((m) => l4MatchApplies(input, vs, m, b))) return l4Target(input, vs, r.route, b.port);
    }
  }
  return undefined;
}

/**
 * One filter chain per applicable tls route match, on its SNI names (`allow` narrows them, e.g. to a gateway
 * server's hosts). An SNI name already claimed by an earlier route stays with it: Envoy refuses two chains with
 * the same match, and Istio's first route wins.
 */
export function tlsRouteChains(
  input: TranslateInput,
  vss: readonly VirtualService[],
  b: L4Binding,
  accessLog: readonly AccessLog[],
  stats: Any | undefined,
  allow: (vsNamespace: string, sni: string) => boolean = () => true,
): FilterChain[] {
  const used = new Set<string>();
  const chains: FilterChain[] = [];
  for (const vs of vss) {
    (vs.spec.tls ?? []).forEach((r, i) => {
      r.match.forEach((m, j) => {
        if (!l4MatchApplies(input, vs, m, b)) return;
        const names = [...new Set(m.sniHosts.map((h) => h.toLowerCase()))].filter((h) => !used.has(h) && allow(vs.metadata.namespace, h));
        if (names.length === 0) return;
        for (const n of names) used.add(n);
        const target = l4Target(input, vs, r.route, b.port);
        chains.push({
          name: `${vs.metadata.namespace}/${vs.metadata.name}.tls[${i}].match[${j}]`,
          filter_chain_match: { server_names: names.sort(), transport_protocol: 'tls' },
          filters: tcpProxyFilters(statPrefixOf(target, `tls_${b.port}`), target, accessLog, stats),
        });
      });
    });
  }
  return chains;
}
