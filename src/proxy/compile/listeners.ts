import type { Filter__Output } from '../../generated/envoy/config/listener/v3/Filter.js';
import type { FilterChain__Output } from '../../generated/envoy/config/listener/v3/FilterChain.js';
import type { FilterChainMatch__Output } from '../../generated/envoy/config/listener/v3/FilterChainMatch.js';
import type { Listener__Output } from '../../generated/envoy/config/listener/v3/Listener.js';
import type { HttpConnectionManager__Output } from '../../generated/envoy/extensions/filters/network/http_connection_manager/v3/HttpConnectionManager.js';
import type { RBAC__Output as NetworkRbac__Output } from '../../generated/envoy/extensions/filters/network/rbac/v3/RBAC.js';
import type { TcpProxy__Output } from '../../generated/envoy/extensions/filters/network/tcp_proxy/v3/TcpProxy.js';
import type { TypedStruct__Output } from '../../generated/xds/type/v3/TypedStruct.js';
import { formatCidr } from '../../lib/addr.js';
import type { Decoded } from '../../xds/envoy-types.js';
import { TypedConfigUrl } from '../../xds/type-urls.js';
import { cidrFromRange } from '../match/cidr.js';
import type { FilterChain, FilterChainMatch, ListenerConfig, NetworkAction, RbacConfig, RouteTable, StatsConfig } from '../proxy-config.js';
import { compileAccessLogs } from './access-log.js';
import { compileHcm } from './http-filters.js';
import { compileRbacRules } from './rbac.js';
import { durationMs, fail, list, msg, num, part, refuseSet, str, typedAs, typeUrlOf, wrapped, wrappedBool } from './read.js';
import { compileStats } from './stats.js';
import { downstreamTls, transportSocket } from './tls.js';

/** LDS Listener -> ListenerConfig: address, listener filters, filter chains with their TLS and network action. */

/** Envoy's tcp_proxy idle timeout when none is given; 0 (as given) disables it. */
const ENVOY_TCP_IDLE_TIMEOUT_MS = 3_600_000;
const KNOWN_LISTENER_FILTERS = new Set<string>([TypedConfigUrl.originalDst, TypedConfigUrl.tlsInspector, TypedConfigUrl.httpInspector]);

function chainMatch(v: Decoded<FilterChainMatch__Output> | null | undefined, path: string): FilterChainMatch {
  const m = part(v, path);
  refuseSet(m, ['source_prefix_ranges', 'direct_source_prefix_ranges', 'source_ports', 'address_suffix', 'suffix_len'], path);
  const sourceType = m.source_type ?? 'ANY';
  // Sparse JSON may carry the enum as its number.
  if (sourceType !== 'ANY' && (sourceType as unknown) !== 0) fail(`${path}.source_type`, `${String(sourceType)} is not supported`);
  const tp = str(m.transport_protocol, `${path}.transport_protocol`);
  if (tp !== '' && tp !== 'tls' && tp !== 'raw_buffer') fail(`${path}.transport_protocol`, `"${tp}" is not supported`);
  const port = wrapped(m.destination_port, `${path}.destination_port`);
  return {
    ...(port !== undefined ? { destinationPort: port } : {}),
    serverNames: list(m.server_names, `${path}.server_names`).map((s, i) => str(s, `${path}.server_names[${i}]`).toLowerCase()),
    ...(tp ? { transportProtocol: tp } : {}),
    applicationProtocols: list(m.application_protocols, `${path}.application_protocols`).map((s, i) =>
      str(s, `${path}.application_protocols[${i}]`),
    ),
    prefixRanges: list(m.prefix_ranges, `${path}.prefix_ranges`).map((r, i) => {
      const c = cidrFromRange(part(r, `${path}.prefix_ranges[${i}]`));
      if (!c) fail(`${path}.prefix_ranges[${i}]`, `invalid CIDR range ${JSON.stringify(r)}`);
      return c;
    }),
  };
}

function tcpProxy(cfg: Decoded<TcpProxy__Output>, path: string, rbac: RbacConfig[], stats: StatsConfig | undefined): NetworkAction {
  refuseSet(cfg, ['tunneling_config', 'on_demand', 'hash_policy', 'metadata_match'], path);
  let clusters: Array<{ name: string; weight: number }>;
  const weighted = msg(cfg.weighted_clusters, `${path}.weighted_clusters`);
  if (weighted) {
    clusters = list(weighted.clusters, `${path}.weighted_clusters.clusters`).map((x, i) => {
      const p = `${path}.weighted_clusters.clusters[${i}]`;
      const c = part(x, p);
      refuseSet(c, ['metadata_match'], p);
      return { name: str(c.name, `${p}.name`), weight: num(c.weight, `${p}.weight`) };
    });
    if (clusters.reduce((a, c) => a + c.weight, 0) <= 0) fail(`${path}.weighted_clusters`, 'no cluster with a positive weight');
  } else {
    const name = str(cfg.cluster, `${path}.cluster`);
    if (!name) fail(path, 'cluster or weighted_clusters is required');
    clusters = [{ name, weight: 1 }];
  }
  const idle = durationMs(cfg.idle_timeout, `${path}.idle_timeout`) ?? ENVOY_TCP_IDLE_TIMEOUT_MS;
  const accessLog = compileAccessLogs(cfg.access_log, `${path}.access_log`);
  return {
    kind: 'tcp',
    ...(accessLog.length ? { accessLog } : {}),
    clusters,
    rbac,
    statPrefix: str(cfg.stat_prefix, `${path}.stat_prefix`),
    ...(idle > 0 ? { idleTimeoutMs: idle } : {}),
    ...(stats ? { stats } : {}),
  };
}

/**
 * A chain's network filters: network RBAC filters, then exactly one terminal filter (tcp_proxy, or an HCM with no
 * RBAC in front of it: the proxy evaluates network RBAC for TCP only).
 */
function networkAction(
  v: readonly Decoded<Filter__Output>[] | null | undefined,
  path: string,
  inlineName: string,
  addRoute: (t: RouteTable) => void,
  inbound: boolean,
): NetworkAction {
  const filters = list(v, path);
  if (filters.length === 0) fail(path, 'no network filters');
  const rbac: RbacConfig[] = [];
  let stats: StatsConfig | undefined;
  let action: NetworkAction | undefined;
  filters.forEach((f, i) => {
    const p = `${path}[${i}]`;
    const filter = part(f, p);
    const typed = msg(filter.typed_config, `${p}.typed_config`);
    const url = typeUrlOf(typed);
    const tp = `${p}.typed_config`;
    if (action) fail(p, `${str(filter.name, 'name') || url}: filters after a terminal filter never run`);
    if (url === TypedConfigUrl.networkRbac) {
      const cfg = typedAs<NetworkRbac__Output>(typed, url, tp);
      refuseSet(cfg, ['shadow_rules', 'shadow_matcher', 'shadow_rules_stat_prefix'], tp);
      if (cfg.enforcement_type === 'CONTINUOUS') fail(`${tp}.enforcement_type`, 'CONTINUOUS is not supported');
      const r = compileRbacRules(cfg, tp);
      if (r) rbac.push(r);
    } else if (url === TypedConfigUrl.typedStruct) {
      // Istio's stats filter (metric overrides) in front of tcp_proxy.
      if (stats) fail(p, 'a second istio.stats filter is not supported');
      stats = compileStats(typedAs<TypedStruct__Output>(typed, url, tp), tp);
    } else if (url === TypedConfigUrl.tcpProxy) {
      action = tcpProxy(typedAs<TcpProxy__Output>(typed, url, tp), tp, rbac, stats);
    } else if (url === TypedConfigUrl.httpConnectionManager) {
      if (stats) fail(p, 'a network istio.stats filter in front of an HTTP connection manager is not supported (put it in http_filters)');
      if (rbac.length > 0) fail(p, 'network RBAC in front of an HTTP connection manager is not supported');
      const hcm = compileHcm(typedAs<HttpConnectionManager__Output>(typed, url, tp), tp, inlineName, inbound);
      if (hcm.inline) addRoute(hcm.inline);
      action = hcm.action;
    } else fail(p, `network filter ${str(filter.name, 'name') || url} (${url || 'no type'}) is not supported`);
  });
  if (!action) return fail(path, 'the last filter must be tcp_proxy or http_connection_manager');
  return action;
}

function compileChain(
  v: Decoded<FilterChain__Output> | null | undefined,
  path: string,
  listener: string,
  fallbackName: string,
  addRoute: (t: RouteTable) => void,
  inbound: boolean,
): FilterChain {
  const c = part(v, path);
  refuseSet(c, ['on_demand_configuration'], path);
  const name = str(c.name, `${path}.name`) || fallbackName;
  const ts = transportSocket(c.transport_socket, `${path}.transport_socket`, 'downstream');
  return {
    name,
    match: chainMatch(c.filter_chain_match, `${path}.filter_chain_match`),
    ...(ts !== 'raw' ? { tls: downstreamTls(ts, `${path}.transport_socket.typed_config`) } : {}),
    action: networkAction(c.filters, `${path}.filters`, `inline:${listener}:${name}`, addRoute, inbound),
  };
}

function matchKey(m: FilterChainMatch): string {
  return JSON.stringify([
    m.destinationPort,
    m.serverNames,
    m.transportProtocol,
    m.applicationProtocols,
    m.prefixRanges.map((c) => formatCidr(c)),
  ]);
}

/**
 * One listener; undefined for an api_listener (a gRPC client's, not a socket the proxy serves). Inline route
 * configurations are handed to `addRoute` under `inline:<listener>:<chain>`.
 */
export function compileListener(l: Decoded<Listener__Output>, addRoute: (t: RouteTable) => void): ListenerConfig | undefined {
  if (msg(l.api_listener, 'api_listener')) return undefined;
  const name = str(l.name, 'name');
  refuseSet(l, ['filter_chain_matcher', 'additional_addresses', 'internal_listener', 'udp_listener_config'], '');
  const sa = msg(msg(l.address, 'address')?.socket_address, 'address.socket_address');
  if (!sa) fail('address', 'only socket addresses are supported');
  const address = str(sa.address, 'address.socket_address.address');
  const port = num(sa.port_value, 'address.socket_address.port_value');
  if (sa.protocol === 'UDP') fail('address.socket_address.protocol', 'UDP is not supported');
  // Envoy's traffic direction decides the span kind its tracers report: server spans inbound, client spans otherwise.
  const inbound = l.traffic_direction === 'INBOUND';
  let inspectTls = false;
  list(l.listener_filters, 'listener_filters').forEach((f, i) => {
    const p = `listener_filters[${i}]`;
    const filter = part(f, p);
    const url = typeUrlOf(msg(filter.typed_config, `${p}.typed_config`));
    if (!KNOWN_LISTENER_FILTERS.has(url)) fail(p, `listener filter ${str(filter.name, 'name') || url} is not supported`);
    if (msg(filter.filter_disabled, `${p}.filter_disabled`)) fail(`${p}.filter_disabled`, 'not supported');
    if (url === TypedConfigUrl.tlsInspector) inspectTls = true;
  });
  const seen = new Map<string, string>();
  const filterChains = list(l.filter_chains, 'filter_chains').map((c, i) => {
    const chain = compileChain(c, `filter_chains[${i}]`, name, String(i), addRoute, inbound);
    const key = matchKey(chain.match);
    const other = seen.get(key);
    if (other !== undefined) fail(`filter_chains[${i}].filter_chain_match`, `same match as filter chain "${other}"`);
    seen.set(key, chain.name);
    return chain;
  });
  const dflt = msg(l.default_filter_chain, 'default_filter_chain');
  const defaultChain = dflt ? compileChain(dflt, 'default_filter_chain', name, 'default', addRoute, inbound) : undefined;
  if (filterChains.length === 0 && !defaultChain) fail('filter_chains', 'a listener needs a filter chain or a default_filter_chain');
  return {
    name,
    address,
    port,
    bindToPort: wrappedBool(l.bind_to_port, 'bind_to_port') ?? true,
    useOriginalDst: wrappedBool(l.use_original_dst, 'use_original_dst') ?? false,
    inspectTls,
    filterChains,
    ...(defaultChain ? { defaultChain } : {}),
  };
}
