import { type Endpoint, isHttpFamily, type Protocol } from '../../api/model.js';
import { canonicalHost } from '../../api/service-hosts.js';
import { isUnixAddress } from '../../api/unix-address.js';
import type {
  Cluster,
  _envoy_config_cluster_v3_Cluster_SlowStartConfig as SlowStartConfig,
} from '../../generated/envoy/config/cluster/v3/Cluster.js';
import type { OutlierDetection } from '../../generated/envoy/config/cluster/v3/OutlierDetection.js';
import type { HealthCheck } from '../../generated/envoy/config/core/v3/HealthCheck.js';
import type { TransportSocket } from '../../generated/envoy/config/core/v3/TransportSocket.js';
import type { HttpProtocolOptions } from '../../generated/envoy/extensions/upstreams/http/v3/HttpProtocolOptions.js';
import type { Int64Range } from '../../generated/envoy/type/v3/Int64Range.js';
import { toStruct } from '../struct.js';
import { TypedConfigUrl, typeNameOf } from '../type-urls.js';
import type { ConnectionPoolSettings, OutlierDetectionSettings, TrafficPolicy } from './destination-rule.js';
import { spiffeIdOf, tlsOriginationSocket } from './destination-rule.js';
import { clusterEndpoints, endpointPort, loadAssignment, type OutboundCluster, outboundClusters } from './endpoints.js';
import type { EnvoyResource, TranslateInput } from './input.js';
import {
  BLACKHOLE_CLUSTER,
  INBOUND_PASSTHROUGH_CLUSTER,
  inboundClusterName,
  PASSTHROUGH_CLUSTER,
  SDS_DEFAULT_CERT,
  TLS_MODE_METADATA,
} from './names.js';
import { upstreamMtls } from './tls.js';
import { typedConfig } from './typed-config.js';

export { hashPolicyFor } from './destination-rule.js';

/** Some of a Cluster's fields, spread into it by outboundCluster and friends. */
type ClusterFields = Cluster;
type Thresholds = NonNullable<NonNullable<Cluster['circuit_breakers']>['thresholds']>[number];
type CommonLbConfig = NonNullable<Cluster['common_lb_config']>;

/** Istio's defaults: a 10s connect timeout and circuit breakers wide open (Envoy's own defaults are too tight). */
const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
const MAX_UINT32 = 4_294_967_295;
const DEFAULT_RING_SIZE = 1024;
/** The capture exclusion: traffic the proxy sends from this address is never redirected back to it. */
const INBOUND_SOURCE_ADDRESS = '127.0.0.6';
/** Istio's IPv6 twin of 127.0.0.6; the agent assigns it to lo when it captures IPv6. */
const INBOUND_SOURCE_ADDRESS_V6 = '::6';
const RAW_BUFFER_URL = 'type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer';

function duration(ms: number): { seconds: number; nanos: number } {
  return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1_000_000 };
}

function isHttp2(protocol: Protocol): boolean {
  return protocol === 'HTTP2' || protocol === 'GRPC';
}

/**
 * Plain TCP for endpoints without an agent. RawBuffer has no fields, so its Any is written with an empty value:
 * the inline `@type` form needs raw_buffer.proto in the loaded protos, which the encoder does not load.
 */
function rawBuffer(): TransportSocket {
  return { name: 'envoy.transport_sockets.raw_buffer', typed_config: { type_url: RAW_BUFFER_URL, value: '' } };
}

function lbFields(policy: TrafficPolicy | undefined, proxyless: boolean): ClusterFields {
  const lb = policy?.loadBalancer;
  const ch = lb?.consistentHash;
  if (ch) {
    // gRPC's xDS client implements RING_HASH only; a Maglev table becomes a ring of the same size.
    if (ch.maglev && !proxyless) return { lb_policy: 'MAGLEV', maglev_lb_config: { table_size: { value: ch.maglev.tableSize ?? 65537 } } };
    const size = ch.ringHash?.minimumRingSize ?? ch.minimumRingSize ?? ch.maglev?.tableSize ?? DEFAULT_RING_SIZE;
    return { lb_policy: 'RING_HASH', ring_hash_lb_config: { minimum_ring_size: { value: size } } };
  }
  // gRPC's xDS client refuses every lb_policy but ROUND_ROBIN and RING_HASH, and has no slow start.
  if (proxyless) return {};
  const slow = slowStartConfig(lb);
  switch (lb?.simple) {
    case 'LEAST_REQUEST':
    case 'LEAST_CONN':
      return { lb_policy: 'LEAST_REQUEST', ...(slow ? { least_request_lb_config: { slow_start_config: slow } } : {}) };
    case 'RANDOM':
      return { lb_policy: 'RANDOM' };
    case 'PASSTHROUGH':
      return {};
    default:
      return slow ? { round_robin_lb_config: { slow_start_config: slow } } : {};
  }
}

/**
 * Istio's warmup (or the older warmupDurationSecs) -> Envoy's slow start, as Istio builds it: warmup wins, its
 * aggression defaults to 1 (a linear ramp) and its minimum to 10 % (Envoy's default); warmupDurationSecs sets
 * only the window. Istio applies it to ROUND_ROBIN and LEAST_REQUEST clusters and ignores it for the others.
 */
function slowStartConfig(lb: TrafficPolicy['loadBalancer']): SlowStartConfig | undefined {
  const w = lb?.warmup;
  if (w?.duration !== undefined) {
    return {
      slow_start_window: duration(w.duration),
      aggression: { default_value: w.aggression ?? 1, runtime_key: 'upstream.slow_start.aggression' },
      min_weight_percent: { value: w.minimumPercent ?? 10 },
    };
  }
  if (lb?.warmupDurationSecs !== undefined) return { slow_start_window: duration(lb.warmupDurationSecs) };
  return undefined;
}

function thresholds(cp: ConnectionPoolSettings | undefined): Thresholds {
  const http = cp?.http;
  const positive = (v: number | undefined) => (v !== undefined && v > 0 ? v : MAX_UINT32);
  return {
    max_connections: { value: positive(cp?.tcp?.maxConnections) },
    max_pending_requests: { value: positive(http?.http1MaxPendingRequests) },
    max_requests: { value: positive(http?.http2MaxRequests) },
    max_retries: { value: positive(http?.maxRetries) },
    track_remaining: true,
  };
}

/** Upstream HTTP options (Istio's applyConnectionPool + protocol selection); undefined when nothing differs from HTTP/1.1 defaults. */
function httpProtocolOptions(cp: ConnectionPoolSettings | undefined, protocol: Protocol): Cluster['typed_extension_protocol_options'] {
  if (!isHttpFamily(protocol)) return undefined;
  const http = cp?.http;
  const idle = cp?.tcp?.idleTimeout ?? http?.idleTimeout;
  const common: NonNullable<HttpProtocolOptions['common_http_protocol_options']> = {
    ...(idle !== undefined ? { idle_timeout: duration(idle) } : {}),
    ...(http?.maxRequestsPerConnection ? { max_requests_per_connection: { value: http.maxRequestsPerConnection } } : {}),
    ...(cp?.tcp?.maxConnectionDuration !== undefined ? { max_connection_duration: duration(cp.tcp.maxConnectionDuration) } : {}),
  };
  const h2 = isHttp2(protocol) || http?.h2UpgradePolicy === 'UPGRADE';
  const ka = http?.http2KeepAlive;
  const h2Options = {
    ...(http?.maxConcurrentStreams ? { max_concurrent_streams: { value: http.maxConcurrentStreams } } : {}),
    // Validation requires both durations; Envoy's default 15 % interval jitter applies, as under Istio.
    ...(ka?.interval !== undefined && ka.timeout !== undefined
      ? { connection_keepalive: { interval: duration(ka.interval), timeout: duration(ka.timeout) } }
      : {}),
  };
  let upstream: HttpProtocolOptions;
  if (http?.useClientProtocol)
    upstream = { use_downstream_protocol_config: { http_protocol_options: {}, http2_protocol_options: h2Options } };
  else if (h2) upstream = { explicit_http_config: { http2_protocol_options: h2Options } };
  else if (Object.keys(common).length > 0) upstream = { explicit_http_config: { http_protocol_options: {} } };
  else return undefined;
  return {
    [typeNameOf(TypedConfigUrl.httpProtocolOptions)]: typedConfig('httpProtocolOptions', {
      ...(Object.keys(common).length > 0 ? { common_http_protocol_options: common } : {}),
      ...upstream,
    }),
  };
}

function connectionPoolFields(cp: ConnectionPoolSettings | undefined, protocol: Protocol): ClusterFields {
  const ka = cp?.tcp?.tcpKeepalive;
  const options = httpProtocolOptions(cp, protocol);
  return {
    connect_timeout: duration(cp?.tcp?.connectTimeout ?? DEFAULT_CONNECT_TIMEOUT_MS),
    circuit_breakers: { thresholds: [thresholds(cp)] },
    ...(options ? { typed_extension_protocol_options: options } : {}),
    ...(ka
      ? {
          upstream_connection_options: {
            tcp_keepalive: {
              ...(ka.probes !== undefined ? { keepalive_probes: { value: ka.probes } } : {}),
              ...(ka.time !== undefined ? { keepalive_time: { value: Math.ceil(ka.time / 1000) } } : {}),
              ...(ka.interval !== undefined ? { keepalive_interval: { value: Math.ceil(ka.interval / 1000) } } : {}),
            },
          },
        }
      : {}),
  };
}

/** Istio's applyOutlierDetection: success-rate ejection off, consecutive errors enforced at 100%. */
function outlierDetection(od: OutlierDetectionSettings): OutlierDetection {
  const enforce = (n: number) => ({ value: n > 0 ? 100 : 0 });
  return {
    enforcing_success_rate: { value: 0 },
    ...(od.consecutive5xxErrors !== undefined
      ? { consecutive_5xx: { value: od.consecutive5xxErrors }, enforcing_consecutive_5xx: enforce(od.consecutive5xxErrors) }
      : {}),
    ...(od.consecutiveGatewayErrors !== undefined
      ? {
          consecutive_gateway_failure: { value: od.consecutiveGatewayErrors },
          enforcing_consecutive_gateway_failure: enforce(od.consecutiveGatewayErrors),
        }
      : {}),
    ...(od.interval !== undefined ? { interval: duration(od.interval) } : {}),
    ...(od.baseEjectionTime !== undefined ? { base_ejection_time: duration(od.baseEjectionTime) } : {}),
    ...(od.maxEjectionPercent !== undefined && od.maxEjectionPercent > 0 ? { max_ejection_percent: { value: od.maxEjectionPercent } } : {}),
    ...(od.splitExternalLocalOriginErrors
      ? {
          split_external_local_origin_errors: true,
          enforcing_local_origin_success_rate: { value: 0 },
          ...(od.consecutiveLocalOriginFailures
            ? {
                consecutive_local_origin_failure: { value: od.consecutiveLocalOriginFailures },
                enforcing_consecutive_local_origin_failure: { value: 100 },
              }
            : {}),
        }
      : {}),
  };
}

function resilienceFields(c: OutboundCluster): ClusterFields {
  const od = c.policy?.outlierDetection;
  const lls = c.policy?.loadBalancer?.localityLbSetting;
  const localities = lls !== undefined && lls.enabled !== false && clusterEndpoints(c).some((ep) => ep.locality);
  // Istio turns the panic threshold off with outlier detection (few endpoints per service): minHealthPercent, default 0.
  const common: CommonLbConfig = {
    ...(od ? { healthy_panic_threshold: { value: od.minHealthPercent ?? 0 } } : {}),
    ...(localities ? { locality_weighted_lb_config: {} } : {}),
  };
  return {
    ...(od ? { outlier_detection: outlierDetection(od) } : {}),
    ...(Object.keys(common).length > 0 ? { common_lb_config: common } : {}),
  };
}

function transportFields(input: TranslateInput, c: OutboundCluster): ClusterFields {
  if (input.node.mode === 'proxyless') return {};
  const { service } = c;
  const tls = c.policy?.tls;
  const meshed = service.endpoints.filter((ep) => ep.meshed);
  const ids = (eps: readonly Endpoint[]) => [...new Set(eps.map((ep) => spiffeIdOf(input.mesh, ep.namespace, ep.serviceAccount)))].sort();
  const mtls = () =>
    upstreamMtls({
      certSecret: SDS_DEFAULT_CERT,
      sni: tls?.sni ?? `outbound_.${c.port.number}_.${c.subset}_.${service.hostname}`,
      peerSpiffeIds: tls?.subjectAltNames ?? ids(meshed.length > 0 ? meshed : service.endpoints),
    });
  if (tls?.mode === 'ISTIO_MUTUAL') return { transport_socket: mtls() };
  if (tls?.mode === 'SIMPLE' || tls?.mode === 'MUTUAL') return { transport_socket: tlsOriginationSocket(tls, service.hostname) };
  if (tls?.mode === 'DISABLE') return {};
  if (!input.mesh.enableAutoMtls || service.location !== 'MESH_INTERNAL' || meshed.length === 0) return {};
  return {
    transport_socket_matches: [
      { name: 'tlsMode-istio', match: toStruct({ [TLS_MODE_METADATA.key]: TLS_MODE_METADATA.istio }), transport_socket: mtls() },
      // An empty match takes every other endpoint (Envoy tries matches in order).
      { name: 'tlsMode-disabled', match: toStruct({}), transport_socket: rawBuffer() },
    ],
  };
}

/** Contiguous statuses as Envoy's half-open ranges: [200, 204] -> [{200, 205}]; default 200..399 as vmesh documents. */
function statusRanges(statuses: readonly number[] | undefined): Int64Range[] {
  if (!statuses?.length) return [{ start: 200, end: 400 }];
  const out: Array<{ start: number; end: number }> = [];
  for (const s of [...new Set(statuses)].sort((a, b) => a - b)) {
    const last = out[out.length - 1];
    if (last && last.end === s) last.end = s + 1;
    else out.push({ start: s, end: s + 1 });
  }
  return out;
}

/** vmesh HealthCheck resources naming this host and port, as Envoy active health checks. */
function healthChecks(input: TranslateInput, c: OutboundCluster): ClusterFields {
  const checks = input.config.healthChecks
    .filter((hc) => hc.spec.port === c.port.number && canonicalHost(hc.spec.host, hc.metadata.namespace, input.mesh) === c.service.hostname)
    .sort((a, b) => (a.metadata.namespace + a.metadata.name < b.metadata.namespace + b.metadata.name ? -1 : 1));
  if (checks.length === 0 || input.node.mode === 'proxyless') return {};
  return {
    health_checks: checks.map(
      ({ spec }): HealthCheck => ({
        timeout: duration(spec.timeout),
        interval: duration(spec.interval),
        unhealthy_threshold: { value: spec.unhealthyThreshold },
        healthy_threshold: { value: spec.healthyThreshold },
        ...(spec.http
          ? {
              http_health_check: {
                host: c.service.hostname,
                path: spec.http.path,
                expected_statuses: statusRanges(spec.http.expectedStatuses),
                ...(isHttp2(c.port.protocol) ? { codec_client_type: 'HTTP2' } : {}),
              },
            }
          : { tcp_health_check: {} }),
      }),
    ),
  };
}

function discoveryFields(input: TranslateInput, c: OutboundCluster): ClusterFields {
  if (c.discovery === 'ORIGINAL_DST') return { type: 'ORIGINAL_DST', lb_policy: 'CLUSTER_PROVIDED' };
  if (c.discovery === 'EDS')
    return { type: 'EDS', eds_cluster_config: { service_name: c.name, eds_config: { ads: {}, resource_api_version: 'V3' } } };
  const proxyless = input.node.mode === 'proxyless';
  let assignment = loadAssignment(c, input.node);
  if ((assignment.endpoints ?? []).length === 0) {
    const address = { socket_address: { address: c.service.hostname, port_value: c.port.targetPort ?? c.port.number } };
    assignment = { cluster_name: c.name, endpoints: [{ lb_endpoints: [{ endpoint: { address } }], load_balancing_weight: { value: 1 } }] };
  }
  if (proxyless) {
    // gRPC resolves one name per LOGICAL_DNS cluster.
    const first = assignment.endpoints?.[0]?.lb_endpoints?.[0];
    assignment = { cluster_name: c.name, endpoints: [{ lb_endpoints: first ? [first] : [], load_balancing_weight: { value: 1 } }] };
    return { type: 'LOGICAL_DNS', load_assignment: assignment };
  }
  return { type: 'STRICT_DNS', dns_lookup_family: 'V4_PREFERRED', respect_dns_ttl: true, load_assignment: assignment };
}

function outboundCluster(input: TranslateInput, c: OutboundCluster): Cluster {
  const proxyless = input.node.mode === 'proxyless';
  const discovery = discoveryFields(input, c);
  return {
    name: c.name,
    ...discovery,
    ...(discovery.type === 'ORIGINAL_DST' ? {} : lbFields(c.policy, proxyless)),
    ...connectionPoolFields(c.policy?.connectionPool, c.port.protocol),
    ...resilienceFields(c),
    ...transportFields(input, c),
    ...healthChecks(input, c),
  };
}

/** The local workload ports a sidecar serves (each once, the first workload's protocol), sorted. */
export function inboundPorts(input: TranslateInput): Array<{ port: number; protocol: Protocol }> {
  const key = (ns: string, name: string) => `${ns}/${name}`;
  const local = new Set(input.node.workloads.map((w) => key(w.namespace, w.workload)));
  const ports = new Map<number, Protocol>();
  for (const service of [...input.model.services.values()].sort((a, b) => (a.hostname < b.hostname ? -1 : 1))) {
    for (const ep of service.endpoints) {
      // A workload on a unix socket has no port for inbound capture to deliver to.
      if (!local.has(key(ep.namespace, ep.workload)) || isUnixAddress(ep.address)) continue;
      for (const sp of service.ports) {
        const port = endpointPort(ep, sp);
        if (!ports.has(port)) ports.set(port, sp.protocol);
      }
    }
  }
  return [...ports.entries()].sort(([a], [b]) => a - b).map(([port, protocol]) => ({ port, protocol }));
}

const bindInbound = {
  upstream_bind_config: {
    source_address: { address: INBOUND_SOURCE_ADDRESS, port_value: 0 },
    extra_source_addresses: [{ address: { address: INBOUND_SOURCE_ADDRESS_V6, port_value: 0 } }],
  },
};

function inboundCluster(port: number, protocol: Protocol): Cluster {
  const name = inboundClusterName(port);
  const address = { socket_address: { address: '127.0.0.1', port_value: port } };
  return {
    name,
    type: 'STATIC',
    ...connectionPoolFields(undefined, protocol),
    ...bindInbound,
    load_assignment: { cluster_name: name, endpoints: [{ lb_endpoints: [{ endpoint: { address } }] }] },
  };
}

function fixedClusters(input: TranslateInput): Cluster[] {
  const timeout = { connect_timeout: duration(DEFAULT_CONNECT_TIMEOUT_MS) };
  const out: Cluster[] = [
    { name: PASSTHROUGH_CLUSTER, type: 'ORIGINAL_DST', lb_policy: 'CLUSTER_PROVIDED', ...connectionPoolFields(undefined, 'TCP') },
    { name: BLACKHOLE_CLUSTER, type: 'STATIC', ...timeout },
  ];
  if (input.node.mode === 'sidecar') {
    out.push({
      name: INBOUND_PASSTHROUGH_CLUSTER,
      type: 'ORIGINAL_DST',
      lb_policy: 'CLUSTER_PROVIDED',
      ...connectionPoolFields(undefined, 'TCP'),
      ...bindInbound,
    });
  }
  return out;
}

/**
 * The node's clusters (CDS), sorted by name: outbound clusters per visible service port and DestinationRule
 * subset; for sidecars, an inbound cluster per local workload port; Passthrough/BlackHole(/InboundPassthrough).
 * Proxyless gRPC clients get only the outbound clusters their xDS client understands (EDS and LOGICAL_DNS).
 */
export function buildClusters(input: TranslateInput): EnvoyResource<Cluster>[] {
  const proxyless = input.node.mode === 'proxyless';
  const messages = outboundClusters(input)
    .filter((c) => !proxyless || c.discovery !== 'ORIGINAL_DST')
    .map((c) => outboundCluster(input, c));
  if (input.node.mode === 'sidecar') messages.push(...inboundPorts(input).map(({ port, protocol }) => inboundCluster(port, protocol)));
  if (!proxyless) messages.push(...fixedClusters(input));
  return messages
    .map((message) => ({ name: String(message.name), message }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
