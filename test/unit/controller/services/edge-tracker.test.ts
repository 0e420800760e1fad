import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { EdgeSample, GraphEdge } from '../../../../src/api/edges.js';
import { EdgeTracker } from '../../../../src/controller/services/edge-tracker.js';
import { edgeSample } from '../../../support/edge-samples.js';

const BOUNDS = [10, 20, 50];

const edge = (over: Partial<EdgeSample>) => edgeSample(over, BOUNDS);

/** Rates and quantiles to 6 places: the arithmetic is exact up to float rounding. */
function rounded(edges: GraphEdge[]) {
  const r = (v: number) => Math.round(v * 1e6) / 1e6;
  return edges.map((e) => ({ ...e, rps: r(e.rps), errorRate: r(e.errorRate), p99Ms: e.p99Ms === null ? null : r(e.p99Ms) }));
}

/** productpage calling a service outside the mesh: only its own proxy counts it, with no latency histogram here. */
const EXTERNAL: Partial<EdgeSample> = {
  reporter: 'source',
  security: 'unknown',
  destinationService: 'api.example.com',
  destinationWorkload: 'unknown',
  destinationNamespace: 'unknown',
  durationCounts: [],
  durationBounds: [],
};
const PP = 'workload:default/productpage-v1';
const REVIEWS = 'service:reviews.default.mesh';

function bookinfo(): EdgeTracker {
  const t = new EdgeTracker({ reportIntervalMs: 10_000 });
  // h1 runs productpage: its proxy reports the calls it makes (reporter=source).
  t.record('h1', 0, [
    edge({ reporter: 'source', security: 'unknown', requests: 100 }),
    edge({
      ...EXTERNAL,
      requests: 10,
    }),
  ]);
  t.record('h1', 10_000, [
    edge({ reporter: 'source', security: 'unknown', requests: 150 }),
    edge({
      ...EXTERNAL,
      requests: 30,
      errors: 1,
    }),
  ]);
  // h2 runs reviews v1 and v2: it reports the calls it receives (reporter=destination).
  t.record('h2', 1000, [edge({ requests: 100, errors: 2, durationCounts: [80, 10, 10, 0] })]);
  t.record('h2', 11_000, [
    edge({ requests: 150, errors: 7, durationCounts: [100, 30, 20, 0] }),
    edge({ destinationWorkload: 'reviews-v2', requests: 30, durationCounts: [30, 0, 0, 0] }),
  ]);
  // h3 runs a second productpage host that has reported once: totals, no rate yet.
  t.record('h3', 9000, [
    edge({
      sourceWorkload: 'client',
      sourcePrincipal: 'unknown',
      destinationService: 'productpage.default.mesh',
      destinationWorkload: 'productpage-v1',
      security: 'none',
      requests: 40,
      errors: 4,
      durationCounts: [40, 0, 0, 0],
    }),
  ]);
  return t;
}

describe('EdgeTracker', () => {
  test('rates from each host’s last two reports; destination reports win; source reports fill in the rest', () => {
    const g = bookinfo().graph(12_000);
    assert.equal(g.generatedAt, new Date(12_000).toISOString());
    assert.deepEqual(g.nodes, [
      { id: 'service:api.example.com', kind: 'service', name: 'api.example.com', namespace: '' },
      { id: 'service:productpage.default.mesh', kind: 'service', name: 'productpage', namespace: 'default' },
      { id: REVIEWS, kind: 'service', name: 'reviews', namespace: 'default' },
      { id: 'workload:default/client', kind: 'workload', name: 'client', namespace: 'default' },
      { id: PP, kind: 'workload', name: 'productpage-v1', namespace: 'default' },
      { id: 'workload:default/reviews-v1', kind: 'workload', name: 'reviews-v1', namespace: 'default' },
      { id: 'workload:default/reviews-v2', kind: 'workload', name: 'reviews-v2', namespace: 'default' },
    ]);
    assert.deepEqual(rounded(g.edges), [
      {
        // One report only: no rate, the error rate and latency over everything since the agent started.
        id: 'service:productpage.default.mesh->workload:default/productpage-v1|http',
        source: 'service:productpage.default.mesh',
        target: PP,
        protocol: 'http',
        rps: 0,
        errorRate: 0.1,
        p99Ms: 9.9,
        mtls: false,
        requests: 40,
        errors: 4,
      },
      {
        // v1: 50 requests in 10 s, 5 errors; Δbuckets [20, 20, 10, 0]. v2: a new series, 30 in (0,10].
        id: `${REVIEWS}->workload:default/reviews-v1|http`,
        source: REVIEWS,
        target: 'workload:default/reviews-v1',
        protocol: 'http',
        rps: 5,
        errorRate: 0.1,
        p99Ms: 48.5,
        mtls: true,
        requests: 150,
        errors: 7,
      },
      {
        id: `${REVIEWS}->workload:default/reviews-v2|http`,
        source: REVIEWS,
        target: 'workload:default/reviews-v2',
        protocol: 'http',
        rps: 3,
        errorRate: 0,
        p99Ms: 9.9,
        mtls: true,
        requests: 30,
        errors: 0,
      },
      {
        id: 'workload:default/client->service:productpage.default.mesh|http',
        source: 'workload:default/client',
        target: 'service:productpage.default.mesh',
        protocol: 'http',
        rps: 0,
        errorRate: 0.1,
        p99Ms: 9.9,
        mtls: false,
        requests: 40,
        errors: 4,
      },
      {
        // Nobody in the mesh receives these: the caller's count (reporter=source) is all there is.
        id: `${PP}->service:api.example.com|http`,
        source: PP,
        target: 'service:api.example.com',
        protocol: 'http',
        rps: 2,
        errorRate: 0.05,
        p99Ms: null,
        mtls: false,
        requests: 30,
        errors: 1,
      },
      {
        // v1 and v2 summed: 80 requests, 5 errors, Δbuckets [50, 20, 10, 0] -> rank 79.2 at 9.2/10 of (20, 50].
        id: `${PP}->${REVIEWS}|http`,
        source: PP,
        target: REVIEWS,
        protocol: 'http',
        rps: 8,
        errorRate: 0.0625,
        p99Ms: 47.6,
        mtls: true,
        requests: 180,
        errors: 7,
      },
    ]);
  });

  test('a host silent for more than three report intervals leaves the graph', () => {
    const t = bookinfo();
    assert.equal(t.hosts(), 3);
    assert.equal(t.samples(), 5);
    const g = t.graph(39_001);
    assert.equal(t.hosts(), 2);
    assert.ok(!g.nodes.some((n) => n.id === 'workload:default/client'), 'h3 (last report at 9 s) is gone');
    assert.ok(
      g.nodes.some((n) => n.id === 'workload:default/reviews-v1'),
      'h2 (last report at 11 s) stays',
    );
    t.graph(41_001);
    assert.equal(t.hosts(), 0);
  });

  test('a counter below its previous value restarted (agent restart): its increase is the new value', () => {
    const t = new EdgeTracker({ reportIntervalMs: 10_000 });
    t.record('h2', 0, [edge({ requests: 500, errors: 50, durationCounts: [500, 0, 0, 0] })]);
    t.record('h2', 10_000, [edge({ requests: 20, errors: 1, durationCounts: [0, 20, 0, 0] })]);
    const e = t.graph(10_000).edges.find((x) => x.target === REVIEWS);
    assert.deepEqual([e?.rps, e?.errorRate, e?.p99Ms, e?.requests], [2, 0.05, 19.9, 20]);
  });

  test('a report within a second of the latest replaces it, keeping the older baseline', () => {
    const t = new EdgeTracker({ reportIntervalMs: 10_000 });
    t.record('h2', 0, [edge({ requests: 10 })]);
    t.record('h2', 10_000, [edge({ requests: 20 })]);
    t.record('h2', 10_400, [edge({ requests: 30 })]);
    const e = t.graph(10_400).edges.find((x) => x.target === REVIEWS);
    assert.equal(e?.rps, 20 / 10.4);
  });

  test('TCP edges count connections opened per second; a forgotten host is gone at once', () => {
    const t = new EdgeTracker({ reportIntervalMs: 10_000 });
    const mysql = {
      protocol: 'tcp' as const,
      destinationService: 'mysql.db.mesh',
      destinationWorkload: 'mysql',
      destinationNamespace: 'db',
    };
    t.record('h4', 0, [edge({ ...mysql, tcpConnectionsOpened: 4, durationCounts: [], durationBounds: [] })]);
    t.record('h4', 2000, [edge({ ...mysql, tcpConnectionsOpened: 10, tcpSentBytes: 900, durationCounts: [], durationBounds: [] })]);
    const e = t.graph(2000).edges.find((x) => x.target === 'service:mysql.db.mesh');
    assert.deepEqual([e?.protocol, e?.rps, e?.requests, e?.p99Ms, e?.mtls], ['tcp', 3, 10, null, true]);
    t.forget('h4');
    assert.deepEqual(t.graph(2000).edges, []);
  });
});
