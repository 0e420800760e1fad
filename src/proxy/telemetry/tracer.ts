import type { Resource } from '@opentelemetry/resources';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace';
import type { Logger } from '../../lib/logger.js';
import type { Counter } from '../../lib/metrics-registry.js';
import type { RequestStats } from '../http/types.js';
import type { ProxyConfig, TraceExporterConfig, TracingConfig } from '../proxy-config.js';
import { type SpanLabels, type SpanRecord, spanFromRequest, toReadableSpan } from './span.js';

/** The OTel SDK pieces, loaded on first use: a proxy that never traces never pays their memory. */
export interface Otel {
  readonly resource: (serviceName: string) => Resource;
  readonly makeExporter: (url: string, cfg: TraceExporterConfig) => SpanExporter;
  readonly makeProcessor: (exporter: SpanExporter) => {
    onEnd(span: ReadableSpan): void;
    forceFlush(): Promise<void>;
    shutdown(): Promise<void>;
  };
}

async function loadOtel(): Promise<Otel> {
  const [{ BatchSpanProcessor }, { resourceFromAttributes }, grpc, http] = await Promise.all([
    import('@opentelemetry/sdk-trace'),
    import('@opentelemetry/resources'),
    import('@opentelemetry/exporter-trace-otlp-grpc'),
    import('@opentelemetry/exporter-trace-otlp-proto'),
  ]);
  const resources = new Map<string, Resource>();
  return {
    resource: (name) => {
      let r = resources.get(name);
      if (!r) {
        r = resourceFromAttributes({ 'service.name': name, 'telemetry.sdk.name': 'vmesh' });
        resources.set(name, r);
      }
      return r;
    },
    makeExporter: (url, cfg) =>
      cfg.protocol === 'grpc'
        ? new grpc.OTLPTraceExporter({ url, timeoutMillis: cfg.timeoutMs })
        : new http.OTLPTraceExporter({ url, timeoutMillis: cfg.timeoutMs, headers: { ...cfg.headers } }),
    // Envoy's OpenTelemetry tracer flushes every 5 s or 512 spans; a second keeps traces close to live here.
    makeProcessor: (exporter) =>
      new BatchSpanProcessor({ exporter, scheduledDelayMillis: 1000, maxExportBatchSize: 512, maxQueueSize: 4096 }),
  };
}

type Processor = ReturnType<Otel['makeProcessor']>;

export interface TracerOptions {
  readonly logger: Logger;
  /** Spans handed to an exporter, and spans dropped (by reason). */
  readonly reported: Counter;
  readonly dropped: Counter;
  /** The proxy's environment, for `environment` span tags. */
  readonly environment: Readonly<Record<string, string | undefined>>;
  /** Tests swap the SDK for an in-memory one. */
  readonly load?: () => Promise<Otel>;
}

const MAX_PENDING = 2048;

/**
 * Reports the proxy's sampled spans to the OTLP collectors the HCMs' tracing blocks name. One batch processor per
 * collector address; a collector is the first healthy endpoint of its cluster, so a moved collector is followed.
 */
export class Tracer {
  private byPrefix = new Map<string, TracingConfig>();
  private config: ProxyConfig | undefined;
  private readonly processors = new Map<string, Processor>();
  private otel: Otel | undefined;
  private loading: Promise<void> | undefined;
  private pending: Array<{ span: SpanRecord; exporter: TraceExporterConfig }> = [];
  private readonly warned = new Set<string>();

  constructor(private readonly opts: TracerOptions) {}

  setConfig(config: ProxyConfig): void {
    const byPrefix = new Map<string, TracingConfig>();
    for (const l of config.listeners.values()) {
      for (const c of l.defaultChain ? [...l.filterChains, l.defaultChain] : l.filterChains) {
        if (c.action.kind === 'http' && c.action.tracing) byPrefix.set(c.action.statPrefix, c.action.tracing);
      }
    }
    this.byPrefix = byPrefix;
    this.config = config;
  }

  /** Cheap check on the request path: a sampled span of a chain that reports. */
  wants(s: RequestStats): boolean {
    return s.trace?.sampled === true && this.byPrefix.get(s.statPrefix)?.exporter !== undefined;
  }

  record(s: RequestStats, labels: SpanLabels): void {
    const tracing = this.byPrefix.get(s.statPrefix);
    const exporter = tracing?.exporter;
    if (!tracing || !exporter || !s.trace) return;
    const span = spanFromRequest(s, tracing, exporter, labels, this.opts.environment);
    if (this.otel) {
      this.submit(span, exporter);
      return;
    }
    if (this.pending.length >= MAX_PENDING) {
      this.opts.dropped.get(['queue_full']).value++;
      return;
    }
    this.pending.push({ span, exporter });
    this.loading ??= (this.opts.load ?? loadOtel)().then(
      (otel) => {
        this.otel = otel;
        const queued = this.pending;
        this.pending = [];
        for (const q of queued) this.submit(q.span, q.exporter);
      },
      (e: unknown) => {
        this.opts.logger.error({ err: e }, 'tracing: the OpenTelemetry exporter did not load; spans are dropped');
        this.opts.dropped.get(['exporter_unavailable']).value += this.pending.length;
        this.pending = [];
      },
    );
  }

  /** Sends what is queued; the proxy calls it before it exits. */
  async close(): Promise<void> {
    await this.loading;
    await Promise.allSettled([...this.processors.values()].map((p) => p.shutdown()));
    this.processors.clear();
  }

  private submit(span: SpanRecord, exporter: TraceExporterConfig): void {
    const url = this.collectorUrl(exporter);
    if (!url || !this.otel) {
      this.opts.dropped.get(['no_collector']).value++;
      return;
    }
    let p = this.processors.get(url);
    if (!p) {
      p = this.otel.makeProcessor(this.otel.makeExporter(url, exporter));
      this.processors.set(url, p);
    }
    p.onEnd(toReadableSpan(span, this.otel.resource(span.serviceName)));
    this.opts.reported.get([]).value++;
  }

  private collectorUrl(e: TraceExporterConfig): string | undefined {
    const cluster = this.config?.clusters.get(e.cluster);
    // The OTLP exporters take a URL: a collector on a unix socket cannot be named by one.
    const ep = cluster?.endpoints.filter((x) => !x.pipe).find((x) => x.healthy) ?? cluster?.endpoints.find((x) => !x.pipe);
    if (!ep) {
      if (!this.warned.has(e.cluster)) {
        this.warned.add(e.cluster);
        const why = cluster?.endpoints.length ? 'only unix socket endpoints, which the exporter cannot reach' : 'no endpoint';
        this.opts.logger.warn({ cluster: e.cluster }, `tracing: the collector cluster has ${why}; spans are dropped`);
      }
      return undefined;
    }
    const host = ep.address.includes(':') ? `[${ep.address}]` : ep.address;
    return `http://${host}:${ep.port}${e.protocol === 'http' ? e.path : ''}`;
  }
}
