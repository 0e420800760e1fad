import type { HrTime, SpanKind } from '@opentelemetry/api';
import type { Resource } from '@opentelemetry/resources';
import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import { formatSocketAddr } from '../../lib/addr.js';
import type { RequestStats } from '../http/types.js';
import type { TraceExporterConfig, TracingConfig } from '../proxy-config.js';

/** What the span takes from the request's Istio labels. */
export interface SpanLabels {
  readonly reporter: string;
  readonly sourceCanonicalService: string;
  readonly sourceNamespace: string;
  readonly destinationCanonicalService: string;
  readonly destinationNamespace: string;
  readonly destinationService: string;
}

/** A finished span as plain data; turned into the SDK's ReadableSpan once the exporter is loaded. */
export interface SpanRecord {
  readonly name: string;
  readonly kind: 'CLIENT' | 'SERVER';
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string | undefined;
  readonly startMs: number;
  readonly durationMs: number;
  readonly error: boolean;
  readonly attributes: Readonly<Record<string, string | number>>;
  /** The OTel resource's service.name: the workload's canonical service and namespace, as Istio names it. */
  readonly serviceName: string;
}

const UNKNOWN = 'unknown';

function serviceNameOf(l: SpanLabels, kind: SpanRecord['kind'], fallback: string): string {
  const [svc, ns] =
    kind === 'CLIENT' ? [l.sourceCanonicalService, l.sourceNamespace] : [l.destinationCanonicalService, l.destinationNamespace];
  return svc && svc !== UNKNOWN ? `${svc}.${ns}` : fallback;
}

/**
 * The span Envoy's sidecar reports for a request, with Istio's tags: its name is the destination service (low
 * cardinality, as Istio's `<host>:<port>/*` decorator), its kind follows the listener's direction.
 */
export function spanFromRequest(
  s: RequestStats,
  tracing: TracingConfig,
  exporter: TraceExporterConfig,
  labels: SpanLabels,
  environment: Readonly<Record<string, string | undefined>>,
): SpanRecord {
  const t = s.trace;
  if (!t) throw new Error('spanFromRequest: the request has no trace context');
  const max = tracing.maxTagLength;
  const cut = (v: string) => (v.length > max ? v.slice(0, max) : v);
  const service = labels.destinationService !== UNKNOWN ? labels.destinationService : s.authority;
  const attributes: Record<string, string | number> = {
    component: 'proxy',
    'http.method': s.method,
    'http.url': cut(`http://${s.authority}${s.path}`),
    'http.protocol': s.protocol,
    'http.status_code': s.status,
    response_flags: s.responseFlags,
    request_size: s.bytesIn,
    response_size: s.bytesOut,
    upstream_cluster: s.cluster ?? '-',
    upstream_address: s.upstreamHost ?? '-',
    'peer.address': formatSocketAddr(s.downstreamRemote),
    'guid:x-request-id': s.requestId ?? '-',
    'istio.canonical_service': tracing.spanKind === 'CLIENT' ? labels.sourceCanonicalService : labels.destinationCanonicalService,
    'istio.namespace': tracing.spanKind === 'CLIENT' ? labels.sourceNamespace : labels.destinationNamespace,
  };
  for (const tag of tracing.tags) {
    if (tag.literal !== undefined) attributes[tag.tag] = cut(tag.literal);
    else if (tag.environment) attributes[tag.tag] = cut(environment[tag.environment.name] ?? tag.environment.defaultValue);
  }
  for (const [k, v] of s.traceTags ?? []) attributes[k] = cut(v);
  return {
    name: `${service}/*`,
    kind: tracing.spanKind,
    traceId: t.traceId,
    spanId: t.spanId,
    parentSpanId: t.parentSpanId,
    startMs: Date.now() - s.durationMs,
    durationMs: s.durationMs,
    error: s.status === 0 || s.status >= 500,
    attributes,
    serviceName: serviceNameOf(labels, tracing.spanKind, exporter.serviceName),
  };
}

function hrTime(ms: number): HrTime {
  const seconds = Math.floor(ms / 1000);
  return [seconds, Math.round((ms - seconds * 1000) * 1e6)];
}

const SCOPE = { name: 'vmesh-proxy', version: '0.1.0' };
// OTel's enum values (SpanKind, SpanStatusCode), so the API package need not be loaded on the request path.
const KIND: Record<SpanRecord['kind'], SpanKind> = { SERVER: 1 as SpanKind, CLIENT: 2 as SpanKind };
const STATUS_ERROR = 2;
const STATUS_UNSET = 0;

/** The SDK's view of a finished span, as its exporters read it. */
export function toReadableSpan(r: SpanRecord, resource: Resource): ReadableSpan {
  const ctx = { traceId: r.traceId, spanId: r.spanId, traceFlags: 1 };
  return {
    name: r.name,
    kind: KIND[r.kind],
    spanContext: () => ctx,
    ...(r.parentSpanId ? { parentSpanContext: { traceId: r.traceId, spanId: r.parentSpanId, traceFlags: 1, isRemote: true } } : {}),
    startTime: hrTime(r.startMs),
    endTime: hrTime(r.startMs + r.durationMs),
    duration: hrTime(r.durationMs),
    status: { code: r.error ? STATUS_ERROR : STATUS_UNSET },
    attributes: r.attributes,
    links: [],
    events: [],
    ended: true,
    resource,
    instrumentationScope: SCOPE,
    droppedAttributesCount: 0,
    droppedEventsCount: 0,
    droppedLinksCount: 0,
  };
}
