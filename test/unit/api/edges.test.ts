import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type EdgeSample, edgesFromSnapshot, histogramQuantile, MAX_EDGES } from '../../../src/api/edges.js';
import { MetricsRegistry, type MetricsSnapshot, mergeSnapshots } from '../../../src/lib/metrics-registry.js';
import { DURATION_BUCKETS, REQUEST_LABELS, TCP_LABELS } from '../../../src/proxy/telemetry/istio-metrics.js';

const PRODUCTPAGE = 'spiffe://cluster.local/ns/default/sa/productpage';

/** Label values in the family's order; what a test does not name is what the proxy reports for a plain inbound call. */
function labels(names: readonly string[], over: Record<string, string>): string[] {
  const base: Record<string, string> = {
    reporter: 'destination',
    source_workload: 'productpage-v1',
    source_workload_namespace: 'default',
    source_principal: PRODUCTPAGE,
    destination_workload: 'reviews-v1',
    destination_workload_namespace: 'default',
    destination_service: 'reviews.default.mesh',
    connection_security_policy: 'mutual_tls',
    request_protocol: 'http',
    response_code: '200',
    response_flags: '-',
  };
  return names.map((n) => over[n] ?? base[n] ?? 'unknown');
}

/** A proxy worker's registry with Istio's families, as IstioMetrics declares them. */
function worker() {
  const r = new MetricsRegistry();
  const requests = r.counter('istio_requests_total', '', REQUEST_LABELS);
  const duration = r.histogram('istio_request_duration_milliseconds', '', REQUEST_LABELS, DURATION_BUCKETS);
  const opened = r.counter('istio_tcp_connections_opened_total', '', TCP_LABELS);
  const sent = r.counter('istio_tcp_sent_bytes_total', '', TCP_LABELS);
  const received = r.counter('istio_tcp_received_bytes_total', '', TCP_LABELS);
  return {
    r,
    request(over: Record<string, string>, ms: number) {
      const l = labels(REQUEST_LABELS, over);
      requests.get(l).value++;
      duration.observe(duration.get(l), ms);
    },
    tcp(over: Record<string, string>, bytesSent: number, bytesReceived: number) {
      const l = labels(TCP_LABELS, { request_protocol: 'tcp', ...over });
      opened.get(l).value++;
      sent.get(l).value += bytesSent;
      received.get(l).value += bytesReceived;
    },
  };
}

const byKey = (edges: EdgeSample[]) =>
  new Map(edges.map((e) => [`${e.reporter} ${e.sourceWorkload}->${e.destinationWorkload} ${e.protocol}`, e]));

describe('edgesFromSnapshot', () => {
  test('sums response codes, flags and workers into one edge; 5xx and 0 are errors; the histogram is kept per bucket', () => {
    const w1 = worker();
    const w2 = worker();
    w1.request({}, 3);
    w1.request({}, 7);
    w2.request({}, 40);
    w2.request({ response_code: '503', response_flags: 'UO' }, 0.2);
    w2.request({ response_code: '0', response_flags: 'UF' }, 1200);
    w1.request({ response_code: '404' }, 2);
    const edges = edgesFromSnapshot(mergeSnapshots([w1.r.snapshot(), w2.r.snapshot()]));
    assert.equal(edges.length, 1);
    const e = edges[0] as EdgeSample;
    const counts = new Array<number>(DURATION_BUCKETS.length + 1).fill(0);
    // 0.2 -> le 0.5; 2, 3 -> le 5; 7 -> le 10; 40 -> le 50; 1200 -> le 2500.
    counts[0] = 1;
    counts[2] = 2;
    counts[3] = 1;
    counts[5] = 1;
    counts[10] = 1;
    assert.deepEqual(e, {
      reporter: 'destination',
      sourceWorkload: 'productpage-v1',
      sourceNamespace: 'default',
      sourcePrincipal: PRODUCTPAGE,
      destinationService: 'reviews.default.mesh',
      destinationWorkload: 'reviews-v1',
      destinationNamespace: 'default',
      security: 'mutual_tls',
      protocol: 'http',
      requests: 6,
      errors: 2,
      durationCounts: counts,
      durationBounds: DURATION_BUCKETS,
      tcpSentBytes: 0,
      tcpReceivedBytes: 0,
      tcpConnectionsOpened: 0,
    });
  });

  test('edges differ by reporter, workload, security and protocol; TCP carries bytes and connections', () => {
    const w = worker();
    w.request({}, 1);
    w.request({ reporter: 'source', connection_security_policy: 'unknown' }, 1);
    w.request({ destination_workload: 'reviews-v2' }, 1);
    w.request({ request_protocol: 'grpc' }, 1);
    w.tcp({ destination_workload: 'mysql', destination_service: 'mysql.default.mesh', connection_security_policy: 'none' }, 100, 40);
    w.tcp({ destination_workload: 'mysql', destination_service: 'mysql.default.mesh', connection_security_policy: 'none' }, 5, 2);
    const edges = byKey(edgesFromSnapshot(w.r.snapshot()));
    assert.deepEqual([...edges.keys()].sort(), [
      'destination productpage-v1->mysql tcp',
      'destination productpage-v1->reviews-v1 grpc',
      'destination productpage-v1->reviews-v1 http',
      'destination productpage-v1->reviews-v2 http',
      'source productpage-v1->reviews-v1 http',
    ]);
    assert.equal(edges.get('source productpage-v1->reviews-v1 http')?.security, 'unknown');
    const tcp = edges.get('destination productpage-v1->mysql tcp');
    assert.deepEqual(
      [tcp?.tcpConnectionsOpened, tcp?.tcpSentBytes, tcp?.tcpReceivedBytes, tcp?.requests, tcp?.security, tcp?.durationCounts],
      [2, 105, 42, 0, 'none', []],
    );
  });

  test('labels are read by name, whatever order a family declares them in', () => {
    const snap: MetricsSnapshot = [
      {
        name: 'istio_requests_total',
        help: '',
        type: 'counter',
        labelNames: ['response_code', 'destination_service', 'reporter', 'source_workload', 'connection_security_policy'],
        series: [
          { labels: ['200', 'ratings.default.mesh', 'source', 'reviews-v2', 'unknown'], value: 4 },
          { labels: ['500', 'ratings.default.mesh', 'source', 'reviews-v2', 'unknown'], value: 1 },
        ],
      },
    ];
    const [e, ...rest] = edgesFromSnapshot(snap);
    assert.equal(rest.length, 0);
    assert.equal(e?.reporter, 'source');
    assert.equal(e?.sourceWorkload, 'reviews-v2');
    assert.equal(e?.destinationService, 'ratings.default.mesh');
    assert.equal(e?.destinationWorkload, 'unknown');
    assert.equal(e?.protocol, 'http');
    assert.deepEqual([e?.requests, e?.errors], [5, 1]);
  });

  test(`at most ${MAX_EDGES} edges, the busiest`, () => {
    const w = worker();
    for (let i = 0; i < MAX_EDGES + 100; i++) for (let n = 0; n <= i % 700; n++) w.request({ source_workload: `c${i}` }, 1);
    const edges = edgesFromSnapshot(w.r.snapshot());
    assert.equal(edges.length, MAX_EDGES);
    assert.equal(edges[0]?.requests, MAX_EDGES + 100);
    assert.equal(edges.at(-1)?.requests, 101);
  });

  test('no istio families, no edges', () => {
    assert.deepEqual(edgesFromSnapshot(new MetricsRegistry().snapshot()), []);
  });
});

describe('histogramQuantile (as Prometheus computes it)', () => {
  test('linear inside the bucket holding the rank, from 0 in the first bucket', () => {
    // 100 observations: 50 in (0,10], 40 in (10,20], 10 in (20,50]. p99 rank 99: 9 of the 10 in (20,50] -> 20 + 30*0.9.
    assert.equal(histogramQuantile(0.99, [10, 20, 50], [50, 40, 10, 0]), 47);
    assert.equal(histogramQuantile(0.5, [10, 20, 50], [50, 40, 10, 0]), 10);
    assert.equal(histogramQuantile(0.25, [10, 20, 50], [50, 40, 10, 0]), 5);
  });
  test('the highest finite bound when the rank is in +Inf; null when nothing was counted', () => {
    assert.equal(histogramQuantile(0.99, [10, 20], [1, 0, 9]), 20);
    assert.equal(histogramQuantile(0.99, [10, 20], [0, 0, 0]), null);
  });
});
