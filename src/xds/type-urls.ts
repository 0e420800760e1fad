import { typeNameOf } from '../lib/proto-registry.js';

export { typeNameOf };

/** Type URLs of the resources carried on the ADS stream and of the typed configs inside them. */
export const TYPE_URL_PREFIX = 'type.googleapis.com/';

export const LISTENER_TYPE_URL = `${TYPE_URL_PREFIX}envoy.config.listener.v3.Listener`;
export const ROUTE_TYPE_URL = `${TYPE_URL_PREFIX}envoy.config.route.v3.RouteConfiguration`;
export const CLUSTER_TYPE_URL = `${TYPE_URL_PREFIX}envoy.config.cluster.v3.Cluster`;
export const ENDPOINT_TYPE_URL = `${TYPE_URL_PREFIX}envoy.config.endpoint.v3.ClusterLoadAssignment`;
export const SECRET_TYPE_URL = `${TYPE_URL_PREFIX}envoy.extensions.transport_sockets.tls.v3.Secret`;
/** vmesh's DNS name table (Istio's NDS equivalent); message defined in src/xds/proto/vmesh/v1/name_table.proto. */
export const NAME_TABLE_TYPE_URL = `${TYPE_URL_PREFIX}vmesh.v1.NameTable`;
/** vmesh's per-host workload registry (uid -> identity); message in src/xds/proto/vmesh/v1/host_workloads.proto. */
export const HOST_WORKLOADS_TYPE_URL = `${TYPE_URL_PREFIX}vmesh.v1.HostWorkloads`;

/** Short names, as operators and logs say them. */
export const LDS = LISTENER_TYPE_URL;
export const RDS = ROUTE_TYPE_URL;
export const CDS = CLUSTER_TYPE_URL;
export const EDS = ENDPOINT_TYPE_URL;
export const SDS = SECRET_TYPE_URL;
export const NDS = NAME_TABLE_TYPE_URL;
export const WDS = HOST_WORKLOADS_TYPE_URL;

/** The wrapper that names a resource; used in delta responses and, in SotW, for types without a name field. */
export const RESOURCE_WRAPPER_TYPE_URL = `${TYPE_URL_PREFIX}envoy.service.discovery.v3.Resource`;

/** Typed configs referenced from inside listeners, routes and clusters. */
export const TypedConfigUrl = {
  httpConnectionManager: `${TYPE_URL_PREFIX}envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager`,
  router: `${TYPE_URL_PREFIX}envoy.extensions.filters.http.router.v3.Router`,
  httpRbac: `${TYPE_URL_PREFIX}envoy.extensions.filters.http.rbac.v3.RBAC`,
  networkRbac: `${TYPE_URL_PREFIX}envoy.extensions.filters.network.rbac.v3.RBAC`,
  fault: `${TYPE_URL_PREFIX}envoy.extensions.filters.http.fault.v3.HTTPFault`,
  cors: `${TYPE_URL_PREFIX}envoy.extensions.filters.http.cors.v3.Cors`,
  corsPolicy: `${TYPE_URL_PREFIX}envoy.extensions.filters.http.cors.v3.CorsPolicy`,
  httpLocalRateLimit: `${TYPE_URL_PREFIX}envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit`,
  jwtAuthn: `${TYPE_URL_PREFIX}envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication`,
  networkLocalRateLimit: `${TYPE_URL_PREFIX}envoy.extensions.filters.network.local_ratelimit.v3.LocalRateLimit`,
  tcpProxy: `${TYPE_URL_PREFIX}envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy`,
  tlsInspector: `${TYPE_URL_PREFIX}envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector`,
  httpInspector: `${TYPE_URL_PREFIX}envoy.extensions.filters.listener.http_inspector.v3.HttpInspector`,
  originalDst: `${TYPE_URL_PREFIX}envoy.extensions.filters.listener.original_dst.v3.OriginalDst`,
  upstreamTlsContext: `${TYPE_URL_PREFIX}envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext`,
  downstreamTlsContext: `${TYPE_URL_PREFIX}envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext`,
  httpProtocolOptions: `${TYPE_URL_PREFIX}envoy.extensions.upstreams.http.v3.HttpProtocolOptions`,
  fileAccessLog: `${TYPE_URL_PREFIX}envoy.extensions.access_loggers.file.v3.FileAccessLog`,
  stdoutAccessLog: `${TYPE_URL_PREFIX}envoy.extensions.access_loggers.stream.v3.StdoutAccessLog`,
  openTelemetryTracer: `${TYPE_URL_PREFIX}envoy.config.trace.v3.OpenTelemetryConfig`,
  uuidRequestId: `${TYPE_URL_PREFIX}envoy.extensions.request_id.uuid.v3.UuidRequestIdConfig`,
  /** A config whose proto Envoy's API set lacks (Istio's stats.PluginConfig), as a JSON struct naming its type. */
  typedStruct: `${TYPE_URL_PREFIX}xds.type.v3.TypedStruct`,
} as const;

/**
 * Order of a push (xds_protocol "eventual consistency considerations"): clusters before their endpoints,
 * both before the listeners that use them, listeners before their routes. Other types follow, sorted.
 */
const PUSH_ORDER: readonly string[] = [CDS, EDS, LDS, RDS];

export function pushOrder(typeUrls: Iterable<string>): string[] {
  const rank = (t: string) => {
    const i = PUSH_ORDER.indexOf(t);
    return i < 0 ? PUSH_ORDER.length : i;
  };
  return [...new Set(typeUrls)].sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0));
}

/**
 * Types whose SotW responses always carry the complete set, so a resource missing from a response is removed.
 * The protocol defines this for LDS and CDS; vmesh defines it for its own name table and workload registry too.
 */
export const FULL_STATE_TYPES: ReadonlySet<string> = new Set([LDS, CDS, NDS, WDS]);

/** The field of each message that holds its resource name. Types not listed travel wrapped in a Resource in SotW. */
export const NAME_FIELD: Readonly<Record<string, string>> = {
  [LDS]: 'name',
  [RDS]: 'name',
  [CDS]: 'name',
  [EDS]: 'cluster_name',
  [SDS]: 'name',
};

/** A short label for logs: `CDS`, `EDS`, ... or the message name. */
export function typeLabel(typeUrl: string): string {
  const short: Record<string, string> = {
    [LDS]: 'LDS',
    [RDS]: 'RDS',
    [CDS]: 'CDS',
    [EDS]: 'EDS',
    [SDS]: 'SDS',
    [NDS]: 'NDS',
    [WDS]: 'WDS',
  };
  return short[typeUrl] ?? typeNameOf(typeUrl);
}
