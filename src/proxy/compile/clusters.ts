import type { Cluster__Output } from '../../generated/envoy/config/cluster/v3/Cluster.js';
import type { Http2ProtocolOptions__Output } from '../../generated/envoy/config/core/v3/Http2ProtocolOptions.js';
import type { ClusterLoadAssignment__Output } from '../../generated/envoy/config/endpoint/v3/ClusterLoadAssignment.js';
import type { HttpProtocolOptions__Output } from '../../generated/envoy/extensions/upstreams/http/v3/HttpProtocolOptions.js';
import type { Decoded } from '../../xds/envoy-types.js';
import { TypedConfigUrl } from '../../xds/type-urls.js';
import { isPrime } from '../cluster/lb.js';
import type {
  CircuitBreaker,
  ClusterConfig,
  HealthCheck,
  Http2Keepalive,
  LbPolicy,
  OutlierDetection,
  SlowStart,
  UpstreamEndpoint,
  UpstreamTls,
} from '../proxy-config.js';
import { compileEndpoints } from './endpoints.js';
import { durationMs, fail, list, msg, num, part, refuseSet, str, structString, typedAs, typeUrlOf, wrapped } from './read.js';
import { transportSocket, upstreamTls } from './tls.js';

/** CDS Cluster (+ its EDS ClusterLoadAssignment) -> ClusterConfig, with Envoy's defaults where a field is unset. */

const ENVOY_CONNECT_TIMEOUT_MS = 5000;
const ENVOY_CIRCUIT_BREAKER: CircuitBreaker = { maxConnections: 1024, maxPendingRequests: 1024, maxRequests: 1024, maxRetries: 3 };
const DEFAULT_RING_SIZE = 1024;
const DEFAULT_MAGLEV_SIZE = 65537;
const LB_POLICIES = ['ROUND_ROBIN', 'LEAST_REQUEST', 'RING_HASH', 'RANDOM', 'MAGLEV', 'CLUSTER_PROVIDED', 'LOAD_BALANCING_POLICY_CONFIG'];
const DISCOVERY_TYPES = ['STATIC', 'STRICT_DNS', 'LOGICAL_DNS', 'EDS', 'ORIGINAL_DST'];

type Cluster = Decoded<Cluster__Output>;

function circuitBreaker(c: Cluster): CircuitBreaker {
  const cb = msg(c.circuit_breakers, 'circuit_breakers');
  const t = msg(list(cb?.thresholds, 'circuit_breakers.thresholds')[0], 'circuit_breakers.thresholds[0]');
  if (!t) return ENVOY_CIRCUIT_BREAKER;
  const p = 'circuit_breakers.thresholds[0]';
  if (msg(t.retry_budget, `${p}.retry_budget`)) fail(`${p}.retry_budget`, 'not supported');
  return {
    maxConnections: wrapped(t.max_connections, `${p}.max_connections`) ?? ENVOY_CIRCUIT_BREAKER.maxConnections,
    maxPendingRequests: wrapped(t.max_pending_requests, `${p}.max_pending_requests`) ?? ENVOY_CIRCUIT_BREAKER.maxPendingRequests,
    maxRequests: wrapped(t.max_requests, `${p}.max_requests`) ?? ENVOY_CIRCUIT_BREAKER.maxRequests,
    maxRetries: wrapped(t.max_retries, `${p}.max_retries`) ?? ENVOY_CIRCUIT_BREAKER.maxRetries,
  };
}

/** Envoy's consecutive-error ejection; a detector whose enforcement is 0% is off (0 here). */
function outlier(c: Cluster): OutlierDetection | undefined {
  const p = 'outlier_detection';
  const od = msg(c.outlier_detection, p);
  if (!od) return undefined;
  if (od.split_external_local_origin_errors === true) fail(`${p}.split_external_local_origin_errors`, 'not supported');
  if ((wrapped(od.enforcing_success_rate, `${p}.enforcing_success_rate`) ?? 0) > 0)
    fail(`${p}.enforcing_success_rate`, 'success-rate ejection is not supported');
  if ((wrapped(od.enforcing_failure_percentage, `${p}.enforcing_failure_percentage`) ?? 0) > 0) {
    fail(`${p}.enforcing_failure_percentage`, 'failure-percentage ejection is not supported');
  }
  const enforce5xx = wrapped(od.enforcing_consecutive_5xx, `${p}.enforcing_consecutive_5xx`) ?? 100;
  const enforceGw = wrapped(od.enforcing_consecutive_gateway_failure, `${p}.enforcing_consecutive_gateway_failure`) ?? 0;
  return {
    consecutive5xx: enforce5xx > 0 ? (wrapped(od.consecutive_5xx, `${p}.consecutive_5xx`) ?? 5) : 0,
    consecutiveGatewayErrors: enforceGw > 0 ? (wrapped(od.consecutive_gateway_failure, `${p}.consecutive_gateway_failure`) ?? 5) : 0,
    intervalMs: durationMs(od.interval, `${p}.interval`) ?? 10_000,
    baseEjectionMs: durationMs(od.base_ejection_time, `${p}.base_ejection_time`) ?? 30_000,
    maxEjectionPercent: wrapped(od.max_ejection_percent, `${p}.max_ejection_percent`) ?? 10,
  };
}

function healthCheck(c: Cluster): HealthCheck | undefined {
  const checks = list(c.health_checks, 'health_checks');
  if (checks.length === 0) return undefined;
  if (checks.length > 1) fail('health_checks', 'more than one health check is not supported');
  const p = 'health_checks[0]';
  const hc = part(checks[0], p);
  const intervalMs = durationMs(hc.interval, `${p}.interval`);
  const timeoutMs = durationMs(hc.timeout, `${p}.timeout`);
  if (!intervalMs || !timeoutMs) fail(p, 'interval and timeout are required');
  const base = {
    intervalMs,
    timeoutMs,
    healthyThreshold: wrapped(hc.healthy_threshold, `${p}.healthy_threshold`) ?? 1,
    unhealthyThreshold: wrapped(hc.unhealthy_threshold, `${p}.unhealthy_threshold`) ?? 1,
  };
  const http = msg(hc.http_health_check, `${p}.http_health_check`);
  if (http) {
    const hp = `${p}.http_health_check`;
    refuseSet(http, ['send', 'receive', 'request_headers_to_add', 'request_headers_to_remove', 'service_name_matcher'], hp);
    if (http.codec_client_type === 'HTTP3') fail(`${hp}.codec_client_type`, 'HTTP/3 is not supported');
    const statuses: number[] = [];
    list(http.expected_statuses, `${hp}.expected_statuses`).forEach((r, i) => {
      const range = part(r, `${hp}.expected_statuses[${i}]`);
      const start = num(range.start, `${hp}.expected_statuses[${i}].start`);
      const end = num(range.end, `${hp}.expected_statuses[${i}].end`);
      if (start < 100 || end > 600 || end <= start) fail(`${hp}.expected_statuses[${i}]`, `bad range [${start}, ${end})`);
      for (let s = start; s < end; s++) statuses.push(s);
    });
    const host = typeof http.host === 'string' && http.host !== '' ? { host: http.host } : {};
    return {
      ...base,
      http: { path: str(http.path, `${hp}.path`, '/'), ...host, expectedStatuses: statuses.length > 0 ? statuses : [200] },
    };
  }
  const tcp = msg(hc.tcp_health_check, `${p}.tcp_health_check`);
  if (tcp) {
    refuseSet(tcp, ['send', 'receive'], `${p}.tcp_health_check`);
    return base;
  }
  return fail(p, 'only HTTP and TCP health checks are supported');
}

interface ProtocolOptions {
  http2: boolean;
  http2Keepalive?: Http2Keepalive;
  maxRequestsPerConnection?: number;
  idleTimeoutMs?: number;
}

/** Envoy's connection_keepalive: a zero or unset interval sends no PINGs; the jitter defaults to 15 %. */
function http2Keepalive(h2: Decoded<Http2ProtocolOptions__Output> | undefined, path: string): Http2Keepalive | undefined {
  const p = `${path}.connection_keepalive`;
  const ka = msg(h2?.connection_keepalive, p);
  if (!ka) return undefined;
  if (msg(ka.connection_idle_interval, `${p}.connection_idle_interval`)) fail(`${p}.connection_idle_interval`, 'not supported');
  const intervalMs = durationMs(ka.interval, `${p}.interval`) ?? 0;
  const timeoutMs = durationMs(ka.timeout, `${p}.timeout`) ?? 0;
  if (timeoutMs < 1) fail(`${p}.timeout`, 'must be at least 1ms');
  if (intervalMs === 0) return undefined;
  if (intervalMs < 1) fail(`${p}.interval`, 'must be 0 or at least 1ms');
  const jitter = msg(ka.interval_jitter, `${p}.interval_jitter`);
  const jitterPercent = jitter ? num(jitter.value, `${p}.interval_jitter.value`) : 15;
  if (!(jitterPercent >= 0 && jitterPercent <= 100)) fail(`${p}.interval_jitter`, `${jitterPercent} is not in 0..100`);
  return { intervalMs, timeoutMs, jitterPercent };
}

function protocolOptions(c: Cluster): ProtocolOptions {
  const legacyH2 = msg(c.http2_protocol_options, 'http2_protocol_options');
  const out: ProtocolOptions = { http2: legacyH2 !== undefined };
  const legacyKeepalive = http2Keepalive(legacyH2, 'http2_protocol_options');
  if (legacyKeepalive) out.http2Keepalive = legacyKeepalive;
  const legacyMax = wrapped(c.max_requests_per_connection, 'max_requests_per_connection');
  if (legacyMax !== undefined) out.maxRequestsPerConnection = legacyMax;
  if (c.protocol_selection === 'USE_DOWNSTREAM_PROTOCOL') fail('protocol_selection', 'USE_DOWNSTREAM_PROTOCOL is not supported');
  const all = part(c.typed_extension_protocol_options, 'typed_extension_protocol_options');
  for (const [key, v] of Object.entries(all)) {
    const p = `typed_extension_protocol_options['${key}']`;
    if (typeUrlOf(v) !== TypedConfigUrl.httpProtocolOptions) fail(p, `${typeUrlOf(v) || key} is not supported`);
    const o = typedAs<HttpProtocolOptions__Output>(v, TypedConfigUrl.httpProtocolOptions, p);
    refuseSet(o, ['http_filters', 'header_validation_config', 'use_downstream_protocol_config', 'auto_config'], p);
    const up = msg(o.upstream_http_protocol_options, `${p}.upstream_http_protocol_options`);
    if (up) refuseSet(up, ['auto_sni', 'auto_san_validation', 'override_auto_sni_header'], `${p}.upstream_http_protocol_options`);
    const explicit = msg(o.explicit_http_config, `${p}.explicit_http_config`);
    const h2 = msg(explicit?.http2_protocol_options, `${p}.explicit_http_config.http2_protocol_options`);
    if (h2) {
      out.http2 = true;
      const ka = http2Keepalive(h2, `${p}.explicit_http_config.http2_protocol_options`);
      if (ka) out.http2Keepalive = ka;
    }
    if (explicit && msg(explicit.http3_protocol_options, `${p}.explicit_http_config.http3_protocol_options`)) {
      fail(`${p}.explicit_http_config.http3_protocol_options`, 'HTTP/3 is not supported');
    }
    const common = msg(o.common_http_protocol_options, `${p}.common_http_protocol_options`);
    if (common) {
      const max = wrapped(common.max_requests_per_connection, `${p}.common_http_protocol_options.max_requests_per_connection`);
      if (max !== undefined) out.maxRequestsPerConnection = max;
      const idle = durationMs(common.idle_timeout, `${p}.common_http_protocol_options.idle_timeout`);
      if (idle !== undefined) out.idleTimeoutMs = idle;
    }
  }
  return out;
}

/** transport_socket_matches: the tlsMode=istio match is the mesh mTLS; any other match must be plaintext. */
function meshTls(c: Cluster): UpstreamTls | undefined {
  let found: UpstreamTls | undefined;
  list(c.transport_socket_matches, 'transport_socket_matches').forEach((m, i) => {
    const p = `transport_socket_matches[${i}]`;
    const match = part(m, p);
    const ts = transportSocket(match.transport_socket, `${p}.transport_socket`, 'upstream');
    const istio = structString(match.match, 'tlsMode') === 'istio';
    if (ts === 'raw') return;
    if (!istio || found) fail(`${p}.match`, 'only a tlsMode: istio match may carry TLS');
    found = upstreamTls(ts, `${p}.transport_socket.typed_config`);
  });
  return found;
}

function lbPolicy(c: Cluster, discovery: ClusterConfig['discovery']): { lb: LbPolicy; ringSize?: number } {
  const policy = typeof c.lb_policy === 'number' ? LB_POLICIES[c.lb_policy] : str(c.lb_policy, 'lb_policy', 'ROUND_ROBIN');
  switch (policy) {
    case 'ROUND_ROBIN':
    case 'LEAST_REQUEST':
    case 'RANDOM':
      return { lb: policy };
    case 'RING_HASH': {
      const cfg = msg(c.ring_hash_lb_config, 'ring_hash_lb_config');
      const size = wrapped(cfg?.minimum_ring_size, 'ring_hash_lb_config.minimum_ring_size') ?? DEFAULT_RING_SIZE;
      if (size < 1 || size > 8_388_608) fail('ring_hash_lb_config.minimum_ring_size', `${size} is out of range 1-8388608`);
      return { lb: 'RING_HASH', ringSize: size };
    }
    case 'MAGLEV': {
      const cfg = msg(c.maglev_lb_config, 'maglev_lb_config');
      const size = wrapped(cfg?.table_size, 'maglev_lb_config.table_size') ?? DEFAULT_MAGLEV_SIZE;
      if (!isPrime(size) || size > 5_000_011) fail('maglev_lb_config.table_size', `${size} is not a prime up to 5000011`);
      return { lb: 'MAGLEV', ringSize: size };
    }
    case 'CLUSTER_PROVIDED':
      if (discovery !== 'ORIGINAL_DST') fail('lb_policy', 'CLUSTER_PROVIDED needs an ORIGINAL_DST cluster');
      return { lb: 'ROUND_ROBIN' };
    default:
      return fail('lb_policy', `${String(policy)} is not supported`);
  }
}

/**
 * slow_start_config of a ROUND_ROBIN or LEAST_REQUEST cluster, with Envoy's defaults: aggression 1 (a linear
 * ramp), a minimum of 10 % of the weight. Without a window there is no slow start.
 */
function slowStart(c: Cluster, lb: LbPolicy): SlowStart | undefined {
  const field = lb === 'ROUND_ROBIN' ? 'round_robin_lb_config' : lb === 'LEAST_REQUEST' ? 'least_request_lb_config' : undefined;
  if (field === undefined) return undefined;
  const p = `${field}.slow_start_config`;
  const cfg = msg(msg(c[field], field)?.slow_start_config, p);
  const windowMs = durationMs(cfg?.slow_start_window, `${p}.slow_start_window`) ?? 0;
  if (!cfg || windowMs <= 0) return undefined;
  const aggr = msg(cfg.aggression, `${p}.aggression`);
  const aggression = aggr ? num(aggr.default_value, `${p}.aggression.default_value`) : 1;
  if (!(aggression > 0)) fail(`${p}.aggression`, `${aggression} must be greater than 0`);
  const min = msg(cfg.min_weight_percent, `${p}.min_weight_percent`);
  const minWeightPercent = min ? num(min.value, `${p}.min_weight_percent.value`) : 10;
  if (!(minWeightPercent >= 0 && minWeightPercent <= 100)) fail(`${p}.min_weight_percent`, `${minWeightPercent} is not in 0..100`);
  return { windowMs, aggression, minWeightPercent };
}

function discoveryOf(c: Cluster): { type: string; discovery: ClusterConfig['discovery'] } {
  if (msg(c.cluster_type, 'cluster_type')) fail('cluster_type', 'custom cluster types are not supported');
  const type = typeof c.type === 'number' ? (DISCOVERY_TYPES[c.type] ?? '') : str(c.type, 'type', 'STATIC');
  switch (type) {
    case 'STATIC':
    case 'EDS':
    case 'ORIGINAL_DST':
      return { type, discovery: type };
    case 'STRICT_DNS':
    case 'LOGICAL_DNS':
      return { type, discovery: 'DNS' };
    default:
      return fail('type', `${type} is not supported`);
  }
}

/**
 * One cluster. `assignment` finds a ClusterLoadAssignment by name (EDS). DNS clusters keep every endpoint of
 * their load_assignment (hostnames as addresses) and name the first one in `dnsHost`.
 */
export function compileCluster(
  c: Cluster,
  assignment: (name: string) => Decoded<ClusterLoadAssignment__Output> | undefined,
): ClusterConfig {
  const name = str(c.name, 'name');
  refuseSet(c, ['filters', 'load_balancing_policy', 'upstream_config', 'lb_subset_config'], '');
  const { type, discovery } = discoveryOf(c);
  const lb = lbPolicy(c, discovery);
  const slow = slowStart(c, lb.lb);
  const common = msg(c.common_lb_config, 'common_lb_config');
  const localityWeighted = msg(common?.locality_weighted_lb_config, 'common_lb_config.locality_weighted_lb_config') !== undefined;
  let endpoints: UpstreamEndpoint[] = [];
  if (discovery === 'EDS') {
    const eds = msg(c.eds_cluster_config, 'eds_cluster_config');
    const serviceName = str(eds?.service_name, 'eds_cluster_config.service_name') || name;
    // index.ts has compiled every ClusterLoadAssignment on its own first, so its errors name it, not this cluster.
    endpoints = compileEndpoints(assignment(serviceName), '', { localityWeighted });
  } else if (discovery !== 'ORIGINAL_DST') {
    endpoints = compileEndpoints(msg(c.load_assignment, 'load_assignment'), 'load_assignment', { localityWeighted });
  }
  const first = endpoints[0];
  if (discovery === 'DNS' && !first) fail('load_assignment', `a ${type} cluster needs an endpoint to resolve`);
  if (discovery === 'DNS' && endpoints.some((e) => e.pipe)) fail('load_assignment', `a ${type} cluster resolves names; a pipe has none`);
  const ts = transportSocket(c.transport_socket, 'transport_socket', 'upstream');
  const mesh = meshTls(c);
  if (mesh && ts !== 'raw')
    fail('transport_socket', 'transport_socket together with a TLS transport_socket_matches entry is not supported');
  const proto = protocolOptions(c);
  const od = outlier(c);
  const hc = healthCheck(c);
  const bindConfig = msg(c.upstream_bind_config, 'upstream_bind_config');
  const bind = msg(bindConfig?.source_address, 'upstream_bind_config.source_address');
  const bindAddress = bind ? str(bind.address, 'upstream_bind_config.source_address.address') : '';
  const extraBindAddresses = list(bindConfig?.extra_source_addresses, 'upstream_bind_config.extra_source_addresses').map((x, i) => {
    const p = `upstream_bind_config.extra_source_addresses[${i}].address`;
    return str(msg(msg(x, p)?.address, p)?.address, `${p}.address`);
  });
  return {
    name,
    discovery,
    endpoints,
    ...(discovery === 'DNS' && first ? { dnsHost: { host: first.address, port: first.port } } : {}),
    lb: lb.lb,
    ...(lb.ringSize !== undefined ? { ringSize: lb.ringSize } : {}),
    ...(slow ? { slowStart: slow } : {}),
    connectTimeoutMs: durationMs(c.connect_timeout, 'connect_timeout') ?? ENVOY_CONNECT_TIMEOUT_MS,
    ...(mesh ? { meshTls: mesh } : {}),
    ...(ts !== 'raw' ? { tls: upstreamTls(ts, 'transport_socket.typed_config') } : {}),
    http2: proto.http2,
    ...(proto.http2 && proto.http2Keepalive ? { http2Keepalive: proto.http2Keepalive } : {}),
    ...(proto.maxRequestsPerConnection !== undefined ? { maxRequestsPerConnection: proto.maxRequestsPerConnection } : {}),
    ...(proto.idleTimeoutMs !== undefined ? { idleTimeoutMs: proto.idleTimeoutMs } : {}),
    circuitBreaker: circuitBreaker(c),
    ...(od ? { outlier: od } : {}),
    ...(hc ? { healthCheck: hc } : {}),
    ...(bindAddress ? { bindAddress } : {}),
    ...(extraBindAddresses.length > 0 ? { extraBindAddresses } : {}),
    blackhole: discovery === 'STATIC' && endpoints.length === 0,
  };
}
