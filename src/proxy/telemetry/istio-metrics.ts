import type { Counter, CounterSeries, Histogram, HistogramSeries, MetricsRegistry } from '../../lib/metrics-registry.js';
import type { MetricTags } from '../http/stat-tags.js';
import type { RequestStats } from '../http/types.js';
import type { ProxyConfig } from '../proxy-config.js';
import type { TcpConnectionInfo, TcpConnectionStats } from '../tcp/tcp-proxy.js';
import type { SpanLabels } from './span.js';
import { parseSpiffe, type SpiffeParts, WorkloadIndex } from './workload-index.js';

/**
 * Istio's standard metrics (names, labels, default buckets), as its stats filter reports them. Labels that depend on
 * who talks to whom (an "edge": reporter, both workloads, service, security policy) are worked out once per
 * (stat prefix, cluster, local identity, peer identity, upstream host) and cached in nested maps keyed by the strings
 * the request already carries; a request then costs a few map lookups and field increments, no string building.
 * The cache is dropped when the config or the secrets change (labels derive from both).
 */

const UNKNOWN = 'unknown';
/** Positions of the principals in an edge's labels. */
export const SOURCE_PRINCIPAL = 3;
export const DESTINATION_PRINCIPAL = 10;

/** The edge's labels, in this order, then the per-request ones. */
const EDGE_LABELS = [
  'reporter',
  'source_workload',
  'source_workload_namespace',
  'source_principal',
  'source_app',
  'source_version',
  'source_canonical_service',
  'source_canonical_revision',
  'destination_workload',
  'destination_workload_namespace',
  'destination_principal',
  'destination_app',
  'destination_version',
  'destination_canonical_service',
  'destination_canonical_revision',
  'destination_service',
  'destination_service_name',
  'destination_service_namespace',
  'connection_security_policy',
] as const;
const at = (name: (typeof EDGE_LABELS)[number]) => EDGE_LABELS.indexOf(name);
const SPAN_LABEL_AT = {
  reporter: at('reporter'),
  sourceCanonicalService: at('source_canonical_service'),
  sourceNamespace: at('source_workload_namespace'),
  destinationCanonicalService: at('destination_canonical_service'),
  destinationNamespace: at('destination_workload_namespace'),
  destinationService: at('destination_service'),
};

/** The labels a span takes, from a request's edge labels (as `request` returns them). */
export function spanLabelsOf(labels: readonly string[]): SpanLabels {
  const get = (i: number) => labels[i] ?? 'unknown';
  const a = SPAN_LABEL_AT;
  return {
    reporter: get(a.reporter),
    sourceCanonicalService: get(a.sourceCanonicalService),
    sourceNamespace: get(a.sourceNamespace),
    destinationCanonicalService: get(a.destinationCanonicalService),
    destinationNamespace: get(a.destinationNamespace),
    destinationService: get(a.destinationService),
  };
}

export const REQUEST_LABELS: readonly string[] = [
  ...EDGE_LABELS,
  'request_protocol',
  'response_code',
  'grpc_response_status',
  'response_flags',
];
export const TCP_LABELS: readonly string[] = [...EDGE_LABELS, 'request_protocol', 'response_flags'];

/** Istio's default buckets: Envoy's for durations (ms), powers of ten for sizes (bytes). */
export const DURATION_BUCKETS = [
  0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000,
];
export const SIZE_BUCKETS = [1, 10, 100, 1000, 10000, 100000, 1000000, 10000000];

interface RequestSeries {
  readonly requests: CounterSeries;
  readonly duration: HistogramSeries;
  readonly requestBytes: HistogramSeries;
  readonly responseBytes: HistogramSeries;
  /** Set when the flags hold UO: the cluster's circuit breaker overflow counter. */
  readonly overflow: CounterSeries | undefined;
}

interface TcpSeries {
  readonly opened: CounterSeries;
  readonly closed: CounterSeries;
  readonly sent: CounterSeries;
  readonly received: CounterSeries;
  readonly overflow: CounterSeries | undefined;
}

interface Edge {
  readonly labels: readonly string[];
  readonly cluster: string;
  http?: Map<number, Map<string, RequestSeries>>;
  grpc?: Map<number, Map<string, RequestSeries>>;
  tcp?: Map<string, TcpSeries>;
}

type Level<T> = Map<string | null | undefined, T>;
type EdgeCache = Level<Level<Level<Level<Level<Edge>>>>>;

function level<T>(m: Level<T>, k: string | null | undefined, make: () => T): T {
  let v = m.get(k);
  if (v === undefined) {
    v = make();
    m.set(k, v);
  }
  return v;
}
const newLevel = <T>(): Level<T> => new Map();

export interface IstioMetricsOptions {
  readonly registry: MetricsRegistry;
  /** The SPIFFE id of a certificate the proxy holds, by SDS secret name (`uid:1500` -> its workload's id). */
  readonly identityOf: (secretName: string) => string | undefined;
  readonly config: () => ProxyConfig;
}

export class IstioMetrics {
  private readonly requests: Counter;
  private readonly duration: Histogram;
  private readonly requestBytes: Histogram;
  private readonly responseBytes: Histogram;
  private readonly tcpOpened: Counter;
  private readonly tcpClosed: Counter;
  private readonly tcpSent: Counter;
  private readonly tcpReceived: Counter;
  private readonly overflows: Counter;
  private readonly shadowRbac: Counter;
  private cache: EdgeCache = new Map();
  private index: WorkloadIndex | undefined;

  constructor(private readonly opts: IstioMetricsOptions) {
    const r = opts.registry;
    this.requests = r.counter('istio_requests_total', 'Requests, as Istio counts them', REQUEST_LABELS);
    this.duration = r.histogram('istio_request_duration_milliseconds', 'Request duration', REQUEST_LABELS, DURATION_BUCKETS);
    this.requestBytes = r.histogram('istio_request_bytes', 'Request body sizes', REQUEST_LABELS, SIZE_BUCKETS);
    this.responseBytes = r.histogram('istio_response_bytes', 'Response body sizes', REQUEST_LABELS, SIZE_BUCKETS);
    this.tcpSent = r.counter(
      'istio_tcp_sent_bytes_total',
      'Bytes sent to the downstream (response direction) on TCP connections',
      TCP_LABELS,
    );
    this.tcpReceived = r.counter('istio_tcp_received_bytes_total', 'Bytes received from the downstream on TCP connections', TCP_LABELS);
    this.tcpOpened = r.counter('istio_tcp_connections_opened_total', 'TCP connections opened', TCP_LABELS);
    this.tcpClosed = r.counter('istio_tcp_connections_closed_total', 'TCP connections closed', TCP_LABELS);
    this.overflows = r.counter(
      'vmesh_proxy_circuit_breaker_overflows_total',
      'Requests and connections refused by a circuit breaker (UO)',
      ['cluster'],
    );
    // Envoy's http.<stat_prefix>.rbac.<shadow_rules_stat_prefix>shadow_allowed / shadow_denied.
    this.shadowRbac = r.counter(
      'vmesh_proxy_rbac_shadow_total',
      'Requests a dry-run (shadow) AuthorizationPolicy filter would have allowed or denied; never enforced',
      ['stat_prefix', 'shadow_prefix', 'result'],
    );
  }

  /** Labels derive from the config and the secrets: forget what was worked out from the old ones. */
  invalidate(): void {
    this.cache = new Map();
    this.index = undefined;
  }

  /** Counts a finished request; returns its edge labels (EDGE_LABELS order) for the access log. */
  request(s: RequestStats): readonly string[] {
    const e = this.edge(s.statPrefix, s.cluster, s.localIdentity, s.peerIdentity, s.upstreamHost);
    if (s.metricTags) {
      this.requestOverridden(s, e, s.metricTags);
      return e.labels;
    }
    let byCode = s.grpc ? e.grpc : e.http;
    if (!byCode) {
      byCode = new Map();
      if (s.grpc) e.grpc = byCode;
      else e.http = byCode;
    }
    let byFlags = byCode.get(s.status);
    if (!byFlags) {
      byFlags = new Map();
      byCode.set(s.status, byFlags);
    }
    let m = byFlags.get(s.responseFlags);
    if (!m) {
      m = this.requestSeries(e, s.grpc === true, s.status, s.responseFlags);
      byFlags.set(s.responseFlags, m);
    }
    m.requests.value++;
    this.duration.observe(m.duration, s.durationMs);
    this.requestBytes.observe(m.requestBytes, s.bytesIn);
    this.responseBytes.observe(m.responseBytes, s.bytesOut);
    if (m.overflow) m.overflow.value++;
    if (s.rbacShadow) {
      for (const r of s.rbacShadow)
        this.shadowRbac.get([s.statPrefix, r.statPrefix, r.allowed ? 'shadow_allowed' : 'shadow_denied']).value++;
    }
    return e.labels;
  }

  tcpOpen(i: TcpConnectionInfo): void {
    if (i.metricTags) {
      const e = this.edge(i.statPrefix, i.cluster, i.localIdentity, i.peerIdentity, i.upstreamHost);
      this.inc(this.tcpOpened, 'tcp_connections_opened_total', i.metricTags, [...e.labels, 'tcp', '-'], 1);
      return;
    }
    this.tcp(i.statPrefix, i.cluster, i.localIdentity, i.peerIdentity, i.upstreamHost, '-').opened.value++;
  }

  tcpClose(s: TcpConnectionStats): readonly string[] {
    const e = this.edge(s.statPrefix, s.cluster, s.localIdentity, s.peerIdentity, s.upstreamHost);
    if (s.metricTags) {
      const t = s.metricTags;
      const labels = [...e.labels, 'tcp', s.flags];
      this.inc(this.tcpClosed, 'tcp_connections_closed_total', t, labels, 1);
      this.inc(this.tcpSent, 'tcp_sent_bytes_total', t, labels, s.bytesSent);
      this.inc(this.tcpReceived, 'tcp_received_bytes_total', t, labels, s.bytesReceived);
      if (s.flags.includes('UO')) this.overflows.get([e.cluster]).value++;
      return e.labels;
    }
    const t = this.tcpSeries(e, s.flags);
    t.closed.value++;
    t.sent.value += s.bytesSent;
    t.received.value += s.bytesReceived;
    if (t.overflow) t.overflow.value++;
    return e.labels;
  }

  /**
   * A request whose listener filter carries Telemetry overrides: each metric's labels are worked out per request
   * (tag values come from the request), so this path builds a key per metric; the standard path above does not.
   */
  private requestOverridden(s: RequestStats, e: Edge, t: MetricTags): void {
    const labels = [...e.labels, s.grpc ? 'grpc' : 'http', String(s.status), '', s.responseFlags];
    this.inc(this.requests, 'requests_total', t, labels, 1);
    this.observe(this.duration, 'request_duration_milliseconds', t, labels, s.durationMs);
    this.observe(this.requestBytes, 'request_bytes', t, labels, s.bytesIn);
    this.observe(this.responseBytes, 'response_bytes', t, labels, s.bytesOut);
    if (s.responseFlags.includes('UO')) this.overflows.get([e.cluster]).value++;
    if (s.rbacShadow) {
      for (const r of s.rbacShadow)
        this.shadowRbac.get([s.statPrefix, r.statPrefix, r.allowed ? 'shadow_allowed' : 'shadow_denied']).value++;
    }
  }

  private inc(c: Counter, metric: string, t: MetricTags, labels: readonly string[], by: number): void {
    const l = overriddenLabels(t, metric, c.labelNames, labels);
    if (l) c.get(l.values, l.names).value += by;
  }

  private observe(h: Histogram, metric: string, t: MetricTags, labels: readonly string[], v: number): void {
    const l = overriddenLabels(t, metric, h.labelNames, labels);
    if (l) h.observe(h.get(l.values, l.names), v);
  }

  private tcp(
    prefix: string,
    cluster: string | undefined,
    local: string | null | undefined,
    peer: string | undefined,
    upstream: string | undefined,
    flags: string,
  ): TcpSeries {
    return this.tcpSeries(this.edge(prefix, cluster, local, peer, upstream), flags);
  }

  private tcpSeries(e: Edge, flags: string): TcpSeries {
    let byFlags = e.tcp;
    if (!byFlags) {
      byFlags = new Map();
      e.tcp = byFlags;
    }
    let t = byFlags.get(flags);
    if (!t) {
      const labels = [...e.labels, 'tcp', flags];
      t = {
        opened: this.tcpOpened.get(labels),
        closed: this.tcpClosed.get(labels),
        sent: this.tcpSent.get(labels),
        received: this.tcpReceived.get(labels),
        overflow: flags.includes('UO') ? this.overflows.get([e.cluster]) : undefined,
      };
      byFlags.set(flags, t);
    }
    return t;
  }

  private requestSeries(e: Edge, grpc: boolean, status: number, flags: string): RequestSeries {
    const labels = [...e.labels, grpc ? 'grpc' : 'http', String(status), '', flags];
    return {
      requests: this.requests.get(labels),
      duration: this.duration.get(labels),
      requestBytes: this.requestBytes.get(labels),
      responseBytes: this.responseBytes.get(labels),
      overflow: flags.includes('UO') ? this.overflows.get([e.cluster]) : undefined,
    };
  }

  private edge(
    prefix: string,
    cluster: string | undefined,
    local: string | null | undefined,
    peer: string | undefined,
    upstream: string | undefined,
  ): Edge {
    const byCluster = level(this.cache, prefix, newLevel<Level<Level<Level<Edge>>>>);
    const byLocal = level(byCluster, cluster, newLevel<Level<Level<Edge>>>);
    const byPeer = level(byLocal, local, newLevel<Level<Edge>>);
    const byUpstream = level(byPeer, peer, newLevel<Edge>);
    let e = byUpstream.get(upstream);
    if (!e) {
      e = this.makeEdge(prefix, cluster, local, peer, upstream);
      byUpstream.set(upstream, e);
    }
    return e;
  }

  private makeEdge(
    prefix: string,
    cluster: string | undefined,
    local: string | null | undefined,
    peer: string | undefined,
    upstream: string | undefined,
  ): Edge {
    if (!this.index) this.index = new WorkloadIndex(this.opts.config());
    const index = this.index;
    const localId = parseSpiffe(local ? (local.startsWith('spiffe://') ? local : this.opts.identityOf(local)) : undefined);
    const localW = workloadLabels(localId, index);
    const inbound = prefix.startsWith('inbound');
    const c = cluster ?? '';
    if (inbound) {
      const peerId = parseSpiffe(peer);
      const port = Number(c.split('|')[1]);
      const service = index.serviceOf(index.workloadOf(localId), port);
      return {
        cluster: c,
        labels: ['destination', ...workloadLabels(peerId, index), ...localW, ...serviceLabels(service), peer ? 'mutual_tls' : 'none'],
      };
    }
    // Client side (outbound, gateways): the destination is the endpoint that was picked, its identity what mTLS to it verifies.
    const ep = upstream ? index.byHost.get(upstream) : undefined;
    const cfg = cluster ? this.opts.config().clusters.get(cluster) : undefined;
    const mtls = !!cfg && !cfg.tls && !!cfg.meshTls && local !== null && ep?.serviceAccount !== undefined;
    const td = localId?.trustDomain ?? 'cluster.local';
    const destId = mtls && ep ? parseSpiffe(`spiffe://${td}/ns/${ep.namespace}/sa/${ep.serviceAccount}`) : undefined;
    const destW = ep
      ? [ep.name, ep.namespace, destId?.id ?? UNKNOWN, ep.app, ep.version, ep.app, ep.version]
      : workloadLabels(destId, index);
    const parts = c.split('|');
    const service = parts[0] === 'outbound' ? parts[3] : c === '' ? undefined : c;
    // Istio's client side reports `unknown`: it cannot tell the policy the server applied.
    return { cluster: c, labels: ['source', ...localW, ...destW, ...serviceLabels(service), UNKNOWN] };
  }
}

/**
 * A metric's labels after the overrides for it (Istio's stats filter: tags_to_remove, then dimensions replacing a
 * label's value in place or adding one); undefined when the metric is dropped. No override: the standard labels.
 */
function overriddenLabels(
  t: MetricTags,
  metric: string,
  names: readonly string[],
  values: readonly string[],
): { names?: readonly string[]; values: readonly string[] } | undefined {
  const o = t.config.metrics.get(metric);
  if (!o) return { values };
  if (o.drop) return undefined;
  const n = [...names];
  const v = [...values];
  for (const tag of o.remove) {
    const i = n.indexOf(tag);
    if (i >= 0) {
      n.splice(i, 1);
      v.splice(i, 1);
    }
  }
  for (const [tag, at] of o.upsert) {
    const value = t.values[at] ?? UNKNOWN;
    const i = n.indexOf(tag);
    if (i >= 0) v[i] = value;
    else {
      n.push(tag);
      v.push(value);
    }
  }
  // Same label names as the family's: the same series as an unchanged request's, not a second one printed alike.
  const same = n.length === names.length && n.every((x, i) => x === names[i]);
  return same ? { values: v } : { names: n, values: v };
}

/** workload, namespace, principal, app, version, canonical service, canonical revision. */
function workloadLabels(id: SpiffeParts | undefined, index: WorkloadIndex): string[] {
  const w = index.workloadOf(id);
  if (w) return [w.name, w.namespace, id?.id ?? UNKNOWN, w.app, w.version, w.app, w.version];
  return [UNKNOWN, id?.namespace ?? UNKNOWN, id?.id ?? UNKNOWN, UNKNOWN, UNKNOWN, UNKNOWN, UNKNOWN];
}

/** destination_service, its name and namespace (from `<name>.<ns>.mesh` or `.svc.cluster.local`), canonical service and revision are workload's. */
function serviceLabels(host: string | undefined): string[] {
  if (!host) return [UNKNOWN, UNKNOWN, UNKNOWN];
  const m = /^([^.]+)\.([^.]+)\.(mesh|svc\.cluster\.local)$/.exec(host);
  return m?.[1] && m[2] ? [host, m[1], m[2]] : [host, host, UNKNOWN];
}
