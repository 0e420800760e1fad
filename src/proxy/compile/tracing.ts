import type { OpenTelemetryConfig__Output } from '../../generated/envoy/config/trace/v3/OpenTelemetryConfig.js';
import type { HttpConnectionManager__Output } from '../../generated/envoy/extensions/filters/network/http_connection_manager/v3/HttpConnectionManager.js';
import type { UuidRequestIdConfig__Output } from '../../generated/envoy/extensions/request_id/uuid/v3/UuidRequestIdConfig.js';
import type { Decoded } from '../../xds/envoy-types.js';
import { TypedConfigUrl } from '../../xds/type-urls.js';
import type { TraceExporterConfig, TraceTag, TracingConfig } from '../proxy-config.js';
import { bool, durationMs, fail, list, msg, num, part, refuseSet, str, typedAs, typeUrlOf, wrapped, wrappedBool } from './read.js';

type TracingMsg = NonNullable<Decoded<HttpConnectionManager__Output>['tracing']>;
type OtelMsg = Decoded<OpenTelemetryConfig__Output>;
type RequestIdMsg = Decoded<HttpConnectionManager__Output>['request_id_extension'];

/** Envoy's `type.v3.Percent` (0-100) as a fraction; Envoy samples everything when it is unset. */
function percent(v: TracingMsg['random_sampling'] | undefined, path: string, dflt: number): number {
  const p = msg(v, path);
  if (!p) return dflt;
  const value = num(p.value, `${path}.value`);
  if (!(value >= 0 && value <= 100)) fail(`${path}.value`, `${value} is not a percentage`);
  return value / 100;
}

function customTags(v: TracingMsg['custom_tags'] | null | undefined, path: string): TraceTag[] {
  return list(v, path).map((x, i) => {
    const p = `${path}[${i}]`;
    const t = part(x, p);
    refuseSet(t, ['metadata'], p);
    const tag = str(t.tag, `${p}.tag`);
    if (!tag) fail(`${p}.tag`, 'must not be empty');
    const literal = msg(t.literal, `${p}.literal`);
    if (literal) return { tag, literal: str(literal.value, `${p}.literal.value`) };
    const env = msg(t.environment, `${p}.environment`);
    if (env) return { tag, environment: { name: str(env.name, `${p}.environment.name`), defaultValue: str(env.default_value, p) } };
    const header = msg(t.request_header, `${p}.request_header`);
    if (header)
      return {
        tag,
        header: { name: str(header.name, `${p}.request_header.name`).toLowerCase(), defaultValue: str(header.default_value, p) },
      };
    return fail(p, 'one of literal, environment or request_header is required');
  });
}

/** The collector an OpenTelemetryConfig names: a cluster the proxy has, reached over OTLP/gRPC or OTLP/HTTP. */
function exporter(typed: OtelMsg, path: string): TraceExporterConfig | undefined {
  refuseSet(typed, ['resource_detectors', 'sampler'], path);
  const serviceName = str(typed.service_name, `${path}.service_name`) || 'unknown_service:vmesh';
  const grpc = msg(typed.grpc_service, `${path}.grpc_service`);
  const http = msg(typed.http_service, `${path}.http_service`);
  if (grpc) {
    const envoyGrpc = msg(grpc.envoy_grpc, `${path}.grpc_service.envoy_grpc`);
    if (!envoyGrpc) fail(`${path}.grpc_service`, 'only envoy_grpc (a cluster) is supported');
    const cluster = str(envoyGrpc.cluster_name, `${path}.grpc_service.envoy_grpc.cluster_name`);
    const timeoutMs = durationMs(grpc.timeout, `${path}.grpc_service.timeout`) ?? 5000;
    return {
      protocol: 'grpc',
      cluster,
      path: '',
      authority: str(envoyGrpc.authority, path) || cluster,
      timeoutMs,
      headers: {},
      serviceName,
    };
  }
  if (http) {
    const uri = part(http.http_uri, `${path}.http_service.http_uri`);
    const cluster = str(uri.cluster, `${path}.http_service.http_uri.cluster`);
    let url: URL;
    try {
      url = new URL(str(uri.uri, `${path}.http_service.http_uri.uri`));
    } catch {
      return fail(`${path}.http_service.http_uri.uri`, `${JSON.stringify(uri.uri)} is not a URL`);
    }
    const headers: Record<string, string> = {};
    list(http.request_headers_to_add, `${path}.http_service.request_headers_to_add`).forEach((h, i) => {
      const header = part(msg(h, `${path}.http_service.request_headers_to_add[${i}]`)?.header, 'header');
      headers[str(header.key, 'key').toLowerCase()] = str(header.value, 'value');
    });
    const timeoutMs = durationMs(uri.timeout, `${path}.http_service.http_uri.timeout`) ?? 5000;
    return { protocol: 'http', cluster, path: url.pathname, authority: url.host, timeoutMs, headers, serviceName };
  }
  // Envoy: with neither exporter the tracer samples and propagates but reports nothing.
  return undefined;
}

/** The HCM's request_id_extension: Envoy's UUID one (also its default when unset), sampling by the id unless told not to. */
function useRequestIdForSampling(v: RequestIdMsg | undefined, path: string): boolean {
  const ext = msg(v, path);
  if (!ext) return true;
  const url = typeUrlOf(ext.typed_config);
  if (url !== TypedConfigUrl.uuidRequestId) fail(`${path}.typed_config`, `request id extension ${url} is not supported (UUID only)`);
  const typed = typedAs<UuidRequestIdConfig__Output>(ext.typed_config, url, `${path}.typed_config`);
  return wrappedBool(typed.use_request_id_for_trace_sampling, `${path}.typed_config.use_request_id_for_trace_sampling`) ?? true;
}

/** An HCM's `tracing` block; undefined when absent (the proxy then leaves trace headers as they came). */
export function compileTracing(
  v: TracingMsg | null | undefined,
  path: string,
  spanKind: TracingConfig['spanKind'],
  requestIdExtension?: { readonly value: RequestIdMsg | undefined; readonly path: string },
): TracingConfig | undefined {
  const t = msg(v, path);
  if (!t) return undefined;
  refuseSet(t, ['overall_sampling', 'client_sampling'], path);
  if (bool(t.spawn_upstream_span, `${path}.spawn_upstream_span`)) fail(`${path}.spawn_upstream_span`, 'not supported');
  const provider = msg(t.provider, `${path}.provider`);
  let exp: TraceExporterConfig | undefined;
  if (provider) {
    const typed = msg(provider.typed_config, `${path}.provider.typed_config`);
    const url = typeUrlOf(typed);
    if (url !== TypedConfigUrl.openTelemetryTracer) {
      fail(`${path}.provider`, `tracer ${str(provider.name, 'name') || url} is not supported (envoy.tracers.opentelemetry only)`);
    }
    exp = exporter(typedAs<OpenTelemetryConfig__Output>(typed, url, `${path}.provider.typed_config`), `${path}.provider.typed_config`);
  }
  return {
    sampling: percent(t.random_sampling, `${path}.random_sampling`, 1),
    useRequestId: requestIdExtension ? useRequestIdForSampling(requestIdExtension.value, requestIdExtension.path) : true,
    spanKind,
    maxTagLength: wrapped(t.max_path_tag_length, `${path}.max_path_tag_length`) ?? 256,
    tags: customTags(t.custom_tags, `${path}.custom_tags`),
    ...(exp ? { exporter: exp } : {}),
  };
}
