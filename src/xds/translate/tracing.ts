import type { TracingProvider } from '../../api/mesh-config.js';
import type { TelemetrySpec } from '../../api/resources/telemetry.js';
import { canonicalHost } from '../../api/service-hosts.js';
import type { HttpConnectionManager } from '../../generated/envoy/extensions/filters/network/http_connection_manager/v3/HttpConnectionManager.js';

import type { CustomTag as EnvoyCustomTag } from '../../generated/envoy/type/tracing/v3/CustomTag.js';
import { ErrorCode, vmeshError } from '../../lib/errors.js';
import type { TranslateInput } from './input.js';
import { outboundClusterName } from './names.js';
import { protoDuration } from './route-action.js';
import { type TelemetryScope, telemetryChain, telemetryLabel } from './telemetry-scope.js';
import { typedConfig } from './typed-config.js';

type HcmTracing = NonNullable<HttpConnectionManager['tracing']>;
/** The HttpConnectionManager fields tracing sets. */
export type HcmTracingParts = Pick<HttpConnectionManager, 'tracing' | 'request_id_extension'>;
type TracingProviderConfig = NonNullable<HcmTracing['provider']>;
type CustomTag = NonNullable<NonNullable<TelemetrySpec['tracing']>[number]['customTags']>[string];

/** What Telemetry's tracing entries and the mesh defaults add up to for one scope. */
interface TracingState {
  providers: string[];
  where: string;
  sampling: number | undefined;
  reportSpans: boolean;
  /** Istio's default: true, so every proxy on a request's path makes the same sampling decision. */
  useRequestId: boolean;
  readonly tags: Map<string, CustomTag>;
}

/**
 * Istio's layering of `tracing`: root namespace, then namespace, then a workload-selecting resource; within
 * each, entries for this mode in order. A field an entry sets replaces the one below it; custom tags merge by name.
 */
function tracingState(input: TranslateInput, scope: TelemetryScope): TracingState {
  const s: TracingState = {
    providers: [...input.mesh.defaultTracingProviders],
    where: 'mesh config defaultProviders.tracing',
    sampling: undefined,
    reportSpans: true,
    useRequestId: true,
    tags: new Map(),
  };
  for (const t of telemetryChain(input, scope, 'tracing')) {
    t.spec.tracing?.forEach((entry, i) => {
      const mode = entry.match?.mode ?? 'CLIENT_AND_SERVER';
      if (mode !== 'CLIENT_AND_SERVER' && mode !== scope.mode) return;
      if (entry.providers) {
        s.providers = entry.providers.map((p) => p.name);
        s.where = `${telemetryLabel(t)}: spec.tracing[${i}].providers`;
      }
      if (entry.randomSamplingPercentage !== undefined) s.sampling = entry.randomSamplingPercentage;
      if (entry.disableSpanReporting !== undefined) s.reportSpans = !entry.disableSpanReporting;
      if (entry.useRequestIdForTraceSampling !== undefined) s.useRequestId = entry.useRequestIdForTraceSampling;
      for (const [name, tag] of Object.entries(entry.customTags ?? {})) s.tags.set(name, tag);
    });
  }
  return s;
}

function customTag(name: string, t: CustomTag): EnvoyCustomTag {
  if (t.literal) return { tag: name, literal: { value: t.literal.value } };
  if (t.environment) return { tag: name, environment: { name: t.environment.name, default_value: t.environment.defaultValue ?? '' } };
  const h = t.header as { name: string; defaultValue?: string };
  return { tag: name, request_header: { name: h.name, default_value: h.defaultValue ?? '' } };
}

/** Envoy's OpenTelemetry tracer pointed at the provider's collector through the collector service's cluster. */
function otelProvider(input: TranslateInput, p: TracingProvider, serviceName: string): TracingProviderConfig {
  const slash = p.service.indexOf('/');
  const host = canonicalHost(slash >= 0 ? p.service.slice(slash + 1) : p.service, input.mesh.rootNamespace, input.mesh);
  const cluster = outboundClusterName(p.port, '', host);
  const exporter = p.http
    ? {
        http_service: {
          http_uri: { uri: `http://${host}:${p.port}${p.http.path}`, cluster, timeout: protoDuration(p.http.timeoutMs) },
          request_headers_to_add: Object.entries(p.http.headers).map(([key, value]) => ({ header: { key, value } })),
        },
      }
    : { grpc_service: { envoy_grpc: { cluster_name: cluster, authority: host } } };
  return {
    name: 'envoy.tracers.opentelemetry',
    typed_config: typedConfig('openTelemetryTracer', { service_name: serviceName, ...exporter }),
  };
}

/**
 * The HttpConnectionManager fields for tracing a filter serving `scope`: its `tracing` block and, as Istio builds
 * it, the UUID request id extension saying whether new traces are sampled by the x-request-id (the same decision
 * on every proxy of the path) or at random. Undefined when no provider applies (then the proxy leaves trace
 * headers alone). With span reporting disabled the block has no provider: the proxy still samples and propagates
 * W3C and B3 context, as Istio's disableSpanReporting promises.
 */
export function tracingFor(input: TranslateInput, scope: TelemetryScope): HcmTracingParts | undefined {
  if (!input.mesh.enableTracing) return undefined;
  const s = tracingState(input, scope);
  if (s.providers.length === 0) return undefined;
  if (s.providers.length > 1) {
    throw vmeshError(ErrorCode.UnsupportedField, `${s.where}: ${s.providers.length} tracing providers; vmesh reports to one at a time`);
  }
  const name = s.providers[0] as string;
  const provider = input.mesh.extensionProviders.find((p) => p.name === name);
  // As Istio: a provider the mesh config lacks (validation warned of it) means no spans reported, not a failed push.
  if (!provider) return undefined;
  // Istio names a proxy's spans after its workload's canonical service; the proxy refines it per request.
  const serviceName = `${scope.labels.app ?? scope.labels['service.istio.io/canonical-name'] ?? 'vmesh-proxy'}.${scope.namespace}`;
  const tags = [...s.tags.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([n, t]) => customTag(n, t));
  return {
    tracing: {
      random_sampling: { value: s.sampling ?? input.mesh.defaultTracingSampling },
      max_path_tag_length: { value: provider.maxTagLength },
      ...(tags.length ? { custom_tags: tags } : {}),
      ...(s.reportSpans ? { provider: otelProvider(input, provider, serviceName) } : {}),
    },
    request_id_extension: {
      typed_config: typedConfig('uuidRequestId', { use_request_id_for_trace_sampling: { value: s.useRequestId } }),
    },
  };
}
