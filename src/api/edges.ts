import type { FamilySnapshot, MetricsSnapshot } from '../lib/metrics-registry.js';
import type { GraphEdge, GraphNode, MeshGraph } from './http/graph.js';

/**
 * Edge telemetry: what one agent's proxies counted for one (caller, service, callee) edge, cumulative since the
 * agent started (counters, as Prometheus has them), and the mesh graph the controller makes from such samples.
 */

export type EdgeSecurity = 'mutual_tls' | 'none' | 'unknown';
export type EdgeProtocol = 'http' | 'grpc' | 'tcp';

export interface EdgeSample {
  reporter: 'source' | 'destination';
  sourceWorkload: string;
  sourceNamespace: string;
  sourcePrincipal: string;
  destinationService: string;
  destinationWorkload: string;
  destinationNamespace: string;
  security: EdgeSecurity;
  protocol: EdgeProtocol;
  requests: number;
  /** Requests answered with response_code >= 500, or 0 (the proxy failed locally: no answer at all). */
  errors: number;
  /** Non-cumulative counts per bucket of the request-duration histogram, last = +Inf. */
  durationCounts: number[];
  /** Upper bounds (ms) of the finite buckets: one fewer than durationCounts. */
  durationBounds: number[];
  tcpSentBytes: number;
  tcpReceivedBytes: number;
  tcpConnectionsOpened: number;
}

export type { GraphEdge, GraphNode, MeshGraph };

/** A report carries the busiest edges only: the controller's memory and the message size stay bounded. */
export const MAX_EDGES = 500;

const REQUESTS = 'istio_requests_total';
const DURATION = 'istio_request_duration_milliseconds';
const TCP_SENT = 'istio_tcp_sent_bytes_total';
const TCP_RECEIVED = 'istio_tcp_received_bytes_total';
const TCP_OPENED = 'istio_tcp_connections_opened_total';

/** The labels that name an edge; the rest (response code, flags...) are summed over. */
const KEY_LABELS = [
  'reporter',
  'source_workload',
  'source_workload_namespace',
  'source_principal',
  'destination_service',
  'destination_workload',
  'destination_workload_namespace',
  'connection_security_policy',
  'request_protocol',
] as const;

type Reader = (labels: readonly string[], name: string) => string;

/** Looks labels up by name, so a family that orders (or lacks) them differently is still read right. */
function readerOf(f: FamilySnapshot): Reader {
  const at = new Map(f.labelNames.map((n, i) => [n, i]));
  return (labels, name) => {
    const i = at.get(name);
    return i === undefined ? 'unknown' : (labels[i] ?? 'unknown');
  };
}

function security(v: string): EdgeSecurity {
  return v === 'mutual_tls' || v === 'none' ? v : 'unknown';
}

function protocol(v: string, fallback: EdgeProtocol): EdgeProtocol {
  return v === 'http' || v === 'grpc' || v === 'tcp' ? v : fallback;
}

/** Sums the istio_* families of a (merged) snapshot by edge; the MAX_EDGES busiest edges. */
export function edgesFromSnapshot(s: MetricsSnapshot): EdgeSample[] {
  const edges = new Map<string, EdgeSample>();
  const edgeOf = (read: Reader, labels: readonly string[], fallback: EdgeProtocol): EdgeSample => {
    const values = KEY_LABELS.map((n) => read(labels, n));
    const key = values.join('\u0001');
    let e = edges.get(key);
    if (!e) {
      const [reporter, sw, sns, sp, ds, dw, dns, sec, proto] = values as unknown as string[];
      e = {
        reporter: reporter === 'source' ? 'source' : 'destination',
        sourceWorkload: sw ?? 'unknown',
        sourceNamespace: sns ?? 'unknown',
        sourcePrincipal: sp ?? 'unknown',
        destinationService: ds ?? 'unknown',
        destinationWorkload: dw ?? 'unknown',
        destinationNamespace: dns ?? 'unknown',
        security: security(sec ?? ''),
        protocol: protocol(proto ?? '', fallback),
        requests: 0,
        errors: 0,
        durationCounts: [],
        durationBounds: [],
        tcpSentBytes: 0,
        tcpReceivedBytes: 0,
        tcpConnectionsOpened: 0,
      };
      edges.set(key, e);
    }
    return e;
  };
  for (const f of s) {
    const familyRead = readerOf(f);
    for (const series of f.series) {
      // A series whose labels Telemetry overrides names its own.
      const read = series.labelNames ? readerOf({ ...f, labelNames: series.labelNames }) : familyRead;
      const v = series.value ?? 0;
      if (f.name === REQUESTS) {
        const e = edgeOf(read, series.labels, 'http');
        e.requests += v;
        const code = Number(read(series.labels, 'response_code'));
        if (code === 0 || code >= 500) e.errors += v;
      } else if (f.name === DURATION && series.counts) {
        const e = edgeOf(read, series.labels, 'http');
        if (e.durationCounts.length === 0) {
          e.durationBounds = [...(f.buckets ?? [])];
          e.durationCounts = new Array<number>(series.counts.length).fill(0);
        }
        series.counts.forEach((c, i) => {
          if (i < e.durationCounts.length) e.durationCounts[i] = (e.durationCounts[i] ?? 0) + c;
        });
      } else if (f.name === TCP_SENT) edgeOf(read, series.labels, 'tcp').tcpSentBytes += v;
      else if (f.name === TCP_RECEIVED) edgeOf(read, series.labels, 'tcp').tcpReceivedBytes += v;
      else if (f.name === TCP_OPENED) edgeOf(read, series.labels, 'tcp').tcpConnectionsOpened += v;
    }
  }
  return [...edges.values()]
    .sort((a, b) => b.requests + b.tcpConnectionsOpened - (a.requests + a.tcpConnectionsOpened))
    .slice(0, MAX_EDGES);
}

/**
 * The q-quantile of a histogram given as non-cumulative bucket counts (last = +Inf), as Prometheus'
 * histogram_quantile computes it: linear inside the bucket holding the rank, the first bucket starting at 0,
 * and the highest finite bound when the rank falls in +Inf. null when nothing was counted.
 */
export function histogramQuantile(q: number, bounds: readonly number[], counts: readonly number[]): number | null {
  const total = counts.reduce((a, c) => a + c, 0);
  if (total <= 0) return null;
  const rank = q * total;
  let below = 0;
  for (let i = 0; i < counts.length; i++) {
    const c = counts[i] ?? 0;
    if (below + c >= rank && c > 0) {
      if (i >= bounds.length) return bounds.length > 0 ? (bounds[bounds.length - 1] ?? null) : null;
      const upper = bounds[i] ?? 0;
      const lower = i === 0 ? 0 : (bounds[i - 1] ?? 0);
      return lower + (upper - lower) * ((rank - below) / c);
    }
    below += c;
  }
  return bounds[bounds.length - 1] ?? null;
}
