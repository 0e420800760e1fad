import { X509Certificate } from 'node:crypto';
import type { Logger } from '../../lib/logger.js';
import { MetricsRegistry, type MetricsSnapshot } from '../../lib/metrics-registry.js';
import type { RequestStats } from '../http/types.js';
import type { ProxyConfig, SecretStore } from '../proxy-config.js';
import type { TcpConnectionInfo, TcpConnectionStats } from '../tcp/tcp-proxy.js';
import { AccessLog } from './access-log.js';
import { DESTINATION_PRINCIPAL, IstioMetrics, SOURCE_PRINCIPAL, spanLabelsOf } from './istio-metrics.js';
import { Tracer, type TracerOptions } from './tracer.js';

/** What the proxy's internals expose to the gauges, read when a snapshot is taken. */
export interface ProxyInternals {
  activeConnections(): number;
  clusters(): Iterable<string>;
  /** Active upstream connections and requests of a cluster (its circuit breaker counters). */
  inUse(cluster: string, budget: 'connection' | 'request'): number;
  /** Hosts ejected now, and ejections so far of the cluster's current hosts. */
  ejections(cluster: string): { readonly ejected: number; readonly total: number };
}

export interface ProxyTelemetryOptions {
  readonly secrets: SecretStore;
  readonly internals: ProxyInternals;
  /** Where access log lines go (a logger from createAccessLogger); none: access logs are off. */
  readonly accessLog?: Logger;
  readonly logger: Logger;
  /** The proxy's environment, for Telemetry's `environment` span tags. */
  readonly environment?: Readonly<Record<string, string | undefined>>;
  /** Tests replace the OpenTelemetry exporter. */
  readonly loadOtel?: TracerOptions['load'];
}

/**
 * The proxy's telemetry: Istio's metrics and Envoy-style access logs from the MeshProxy hooks, plus gauges of the
 * proxy's internals, all in one registry a worker snapshots for the agent.
 */
export class ProxyTelemetry {
  readonly registry = new MetricsRegistry();
  private readonly istio: IstioMetrics;
  private readonly accessLog: AccessLog | undefined;
  private readonly tracer: Tracer;
  private config: ProxyConfig | undefined;
  private readonly identities = new Map<string, string | undefined>();

  constructor(private readonly opts: ProxyTelemetryOptions) {
    this.istio = new IstioMetrics({
      registry: this.registry,
      identityOf: (name) => this.identityOf(name),
      config: () => this.config ?? EMPTY,
    });
    this.accessLog = opts.accessLog ? new AccessLog(opts.accessLog) : undefined;
    this.tracer = new Tracer({
      logger: opts.logger,
      reported: this.registry.counter('vmesh_proxy_spans_reported_total', 'Sampled spans handed to an OTLP exporter', []),
      dropped: this.registry.counter('vmesh_proxy_spans_dropped_total', 'Sampled spans not reported, by reason', ['reason']),
      environment: opts.environment ?? {},
      ...(opts.loadOtel ? { load: opts.loadOtel } : {}),
    });
    opts.secrets.onChange(() => {
      this.identities.clear();
      this.istio.invalidate();
    });
    this.gauges(opts.internals);
  }

  setConfig(config: ProxyConfig): void {
    this.config = config;
    this.istio.invalidate();
    this.accessLog?.setConfig(config);
    this.tracer.setConfig(config);
  }

  /** Reports the spans still queued. */
  close(): Promise<void> {
    return this.tracer.close();
  }

  readonly onRequestDone = (s: RequestStats): void => {
    const labels = this.istio.request(s);
    if (this.tracer.wants(s)) this.tracer.record(s, spanLabelsOf(labels));
    if (this.accessLog?.wantsRequest(s)) {
      this.accessLog.request(s, labels[SOURCE_PRINCIPAL] as string, labels[DESTINATION_PRINCIPAL] as string);
    }
  };

  readonly onConnectionOpened = (i: TcpConnectionInfo): void => {
    this.istio.tcpOpen(i);
  };

  readonly onConnectionClosed = (s: TcpConnectionStats): void => {
    const labels = this.istio.tcpClose(s);
    if (this.accessLog?.wantsConnection(s)) {
      this.accessLog.connection(s, labels[SOURCE_PRINCIPAL] as string, labels[DESTINATION_PRINCIPAL] as string);
    }
  };

  snapshot(): MetricsSnapshot {
    return this.registry.snapshot();
  }

  /** The SPIFFE id (URI SAN) of a certificate the proxy holds, by secret name; parsed once per secret generation. */
  private identityOf(name: string): string | undefined {
    if (this.identities.has(name)) return this.identities.get(name);
    let id: string | undefined;
    const pem = this.opts.secrets.tlsCertificate(name)?.certPem;
    if (pem) {
      try {
        id = /URI:(spiffe:\/\/[^,\s]+)/.exec(new X509Certificate(pem).subjectAltName ?? '')?.[1];
      } catch (e) {
        this.opts.logger.debug({ secret: name, err: (e as Error).message }, 'telemetry: certificate not readable');
      }
    }
    this.identities.set(name, id);
    return id;
  }

  private gauges(p: ProxyInternals): void {
    const r = this.registry;
    r.gauge('vmesh_proxy_active_connections', 'Downstream connections open now', [], () => [[[], p.activeConnections()]]);
    const perCluster = (read: (c: string) => number) =>
      function* (): Iterable<readonly [readonly string[], number]> {
        for (const c of p.clusters()) {
          const v = read(c);
          if (v > 0) yield [[c], v];
        }
      };
    r.gauge(
      'vmesh_proxy_upstream_connections_active',
      'Upstream connections in use, by cluster',
      ['cluster'],
      perCluster((c) => p.inUse(c, 'connection')),
    );
    r.gauge(
      'vmesh_proxy_upstream_requests_active',
      'Upstream requests in flight, by cluster',
      ['cluster'],
      perCluster((c) => p.inUse(c, 'request')),
    );
    r.gauge(
      'vmesh_proxy_outlier_ejected_hosts',
      'Hosts ejected by outlier detection now, by cluster',
      ['cluster'],
      perCluster((c) => p.ejections(c).ejected),
    );
    r.gauge(
      'vmesh_proxy_outlier_ejections',
      'Ejections so far of the current hosts, by cluster',
      ['cluster'],
      perCluster((c) => p.ejections(c).total),
    );
  }
}

const EMPTY: ProxyConfig = { version: 'empty', listeners: new Map(), virtualByAddress: new Map(), clusters: new Map(), routes: new Map() };
