import type { OpenTelemetryConfig } from '../../generated/envoy/config/trace/v3/OpenTelemetryConfig.js';
import type { FileAccessLog } from '../../generated/envoy/extensions/access_loggers/file/v3/FileAccessLog.js';
import type { StdoutAccessLog } from '../../generated/envoy/extensions/access_loggers/stream/v3/StdoutAccessLog.js';
import type { Cors } from '../../generated/envoy/extensions/filters/http/cors/v3/Cors.js';
import type { CorsPolicy } from '../../generated/envoy/extensions/filters/http/cors/v3/CorsPolicy.js';
import type { HTTPFault } from '../../generated/envoy/extensions/filters/http/fault/v3/HTTPFault.js';
import type { JwtAuthentication } from '../../generated/envoy/extensions/filters/http/jwt_authn/v3/JwtAuthentication.js';
import type { LocalRateLimit as HttpLocalRateLimit } from '../../generated/envoy/extensions/filters/http/local_ratelimit/v3/LocalRateLimit.js';
import type { RBAC as HttpRbac } from '../../generated/envoy/extensions/filters/http/rbac/v3/RBAC.js';
import type { Router } from '../../generated/envoy/extensions/filters/http/router/v3/Router.js';
import type { HttpInspector } from '../../generated/envoy/extensions/filters/listener/http_inspector/v3/HttpInspector.js';
import type { OriginalDst } from '../../generated/envoy/extensions/filters/listener/original_dst/v3/OriginalDst.js';
import type { TlsInspector } from '../../generated/envoy/extensions/filters/listener/tls_inspector/v3/TlsInspector.js';
import type { HttpConnectionManager } from '../../generated/envoy/extensions/filters/network/http_connection_manager/v3/HttpConnectionManager.js';
import type { LocalRateLimit as NetworkLocalRateLimit } from '../../generated/envoy/extensions/filters/network/local_ratelimit/v3/LocalRateLimit.js';
import type { RBAC as NetworkRbac } from '../../generated/envoy/extensions/filters/network/rbac/v3/RBAC.js';
import type { TcpProxy } from '../../generated/envoy/extensions/filters/network/tcp_proxy/v3/TcpProxy.js';
import type { UuidRequestIdConfig } from '../../generated/envoy/extensions/request_id/uuid/v3/UuidRequestIdConfig.js';
import type { DownstreamTlsContext } from '../../generated/envoy/extensions/transport_sockets/tls/v3/DownstreamTlsContext.js';
import type { UpstreamTlsContext } from '../../generated/envoy/extensions/transport_sockets/tls/v3/UpstreamTlsContext.js';
import type { HttpProtocolOptions } from '../../generated/envoy/extensions/upstreams/http/v3/HttpProtocolOptions.js';
import type { Any } from '../../generated/google/protobuf/Any.js';
import type { TypedStruct } from '../../generated/xds/type/v3/TypedStruct.js';
import { TypedConfigUrl } from '../type-urls.js';

/** The message each typed config URL the translator writes carries (generated input types). */
interface TypedConfigs {
  httpConnectionManager: HttpConnectionManager;
  router: Router;
  httpRbac: HttpRbac;
  networkRbac: NetworkRbac;
  fault: HTTPFault;
  cors: Cors;
  corsPolicy: CorsPolicy;
  httpLocalRateLimit: HttpLocalRateLimit;
  jwtAuthn: JwtAuthentication;
  networkLocalRateLimit: NetworkLocalRateLimit;
  tcpProxy: TcpProxy;
  tlsInspector: TlsInspector;
  httpInspector: HttpInspector;
  originalDst: OriginalDst;
  upstreamTlsContext: UpstreamTlsContext;
  downstreamTlsContext: DownstreamTlsContext;
  httpProtocolOptions: HttpProtocolOptions;
  fileAccessLog: FileAccessLog;
  stdoutAccessLog: StdoutAccessLog;
  openTelemetryTracer: OpenTelemetryConfig;
  uuidRequestId: UuidRequestIdConfig;
  typedStruct: TypedStruct;
}

/**
 * A typed config written inline (`{ '@type': url, ...fields }`, which protobufjs encodes as the Any it names), its
 * fields checked against the message `kind`'s URL names.
 */
export function typedConfig<K extends keyof TypedConfigs>(kind: K, message: TypedConfigs[K]): Any {
  return { '@type': TypedConfigUrl[kind], ...message };
}
