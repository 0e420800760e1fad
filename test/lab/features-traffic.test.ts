import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type FeatureLab, type HttpResult, type HttpRun, startFeatureLab, tally } from './features-lab.js';

// Traffic management and resilience, each on its own service so one test's config never touches another's:
// requests from an app on h2 (by name, through capture and h2's proxy) to servers behind h3's proxy.
const SERVERS = [
  'http:split-v1:9101',
  'http:split-v2:9102',
  'http:retry:9200',
  'http:timeout:9300',
  'http:breaker:9400',
  'http:outlier-good:9501',
  'http:outlier-bad:9502:fail',
  'http:capped-good:9511',
  'http:capped-bad-a:9512:fail',
  'http:capped-bad-b:9513:fail',
  'http:fault:9600',
  'http:update-v1:9701',
  'http:update-v2:9702',
  'http:health-ok:9801',
  'http:health-sick:9802:fail',
];

const one = (name: string, port: number) => ({ name, port, portName: 'http' as const, endpoints: [{ name, port }] });
const SERVICES = [
  {
    name: 'split',
    port: 9100,
    portName: 'http' as const,
    endpoints: [
      { name: 'split-v1', port: 9101, labels: { version: 'v1' } },
      { name: 'split-v2', port: 9102, labels: { version: 'v2' } },
    ],
  },
  one('retry', 9200),
  one('timeout', 9300),
  one('breaker', 9400),
  {
    name: 'outlier',
    port: 9500,
    portName: 'http' as const,
    endpoints: [
      { name: 'outlier-good', port: 9501 },
      { name: 'outlier-bad', port: 9502 },
    ],
  },
  {
    name: 'capped',
    port: 9510,
    portName: 'http' as const,
    endpoints: [
      { name: 'capped-good', port: 9511 },
      { name: 'capped-bad-a', port: 9512 },
      { name: 'capped-bad-b', port: 9513 },
    ],
  },
  one('fault', 9600),
  {
    name: 'update',
    port: 9700,
    portName: 'http' as const,
    endpoints: [
      { name: 'update-v1', port: 9701, labels: { version: 'v1' } },
      { name: 'update-v2', port: 9702, labels: { version: 'v2' } },
    ],
  },
  {
    name: 'health',
    port: 9800,
    portName: 'http' as const,
    endpoints: [
      { name: 'health-ok', port: 9801 },
      { name: 'health-sick', port: 9802 },
    ],
  },
];

const versions = (host: string) => `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ${host}}
spec:
  host: ${host}
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
`;

const CONFIG = [
  versions('split'),
  `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: split}
spec:
  hosts: [split]
  http:
  - route:
    - {destination: {host: split, subset: v1}, weight: 75}
    - {destination: {host: split, subset: v2}, weight: 25}
`,
  `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: retry}
spec:
  hosts: [retry]
  http:
  - route: [{destination: {host: retry}}]
    retries: {attempts: 3, retryOn: 5xx}
`,
  `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: timeout}
spec:
  hosts: [timeout]
  http:
  - route: [{destination: {host: timeout}}]
    timeout: 1s
    retries: {attempts: 0}
`,
  // Istio's circuit-breaking sample: one connection, one pending request, one request per connection.
  `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: breaker}
spec:
  host: breaker
  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 1}
      http: {http1MaxPendingRequests: 1, maxRequestsPerConnection: 1}
`,
  `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: outlier}
spec:
  host: outlier
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    outlierDetection: {consecutive5xxErrors: 2, interval: 1s, baseEjectionTime: 120s, maxEjectionPercent: 100}
`,
  `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: capped}
spec:
  host: capped
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    outlierDetection: {consecutive5xxErrors: 2, interval: 1s, baseEjectionTime: 120s, maxEjectionPercent: 34}
`,
  `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: fault}
spec:
  hosts: [fault]
  http:
  - match: [{uri: {prefix: /abort}}]
    fault: {abort: {httpStatus: 418, percentage: {value: 30}}}
    route: [{destination: {host: fault}}]
  - match: [{uri: {prefix: /delay}}]
    fault: {delay: {fixedDelay: 600ms, percentage: {value: 40}}}
    route: [{destination: {host: fault}}]
`,
  versions('update'),
  `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: update}
spec:
  hosts: [update]
  http:
  - name: step-0
    route: [{destination: {host: update, subset: v1}}]
`,
  `apiVersion: vmesh.io/v1alpha1
kind: HealthCheck
metadata: {name: health}
spec:
  host: health
  port: 9800
  http: {path: /healthz}
  interval: 1s
  timeout: 500ms
  healthyThreshold: 1
  unhealthyThreshold: 1
`,
].join('---\n');

const ok = (r: HttpResult) => r.s === 200;
const show = (x: unknown) => JSON.stringify(x).slice(0, 3000);

describe('traffic management and resilience end to end', () => {
  let f: FeatureLab;
  const http = (o: object) => f.client<HttpRun>('http', o);

  before(async () => {
    f = await startFeatureLab({ servers: SERVERS, services: SERVICES, config: CONFIG });
  });
  after(async () => {
    await f?.teardown();
  });

  test('a 75/25 weighted split holds within statistical tolerance', async () => {
    const run = await http({ url: 'http://split:9100/', n: 400, concurrency: 4 });
    const byServer = tally(run.results, (r) => (ok(r) ? r.w : `status-${r.s ?? r.e}`));
    assert.equal((byServer['split-v1'] ?? 0) + (byServer['split-v2'] ?? 0), 400, show(byServer));
    // 25% of 400 is 100 (sd ≈ 8.7): 65..135 fails only when the split is wrong.
    const v2 = byServer['split-v2'] ?? 0;
    assert.ok(v2 >= 65 && v2 <= 135, show(byServer));
  });

  test('retries recover from an upstream that fails twice per request, and stop after the configured attempts', async () => {
    const run = await http({ url: 'http://retry:9200/?fail=2', n: 10, concurrency: 2, uniqueIds: true });
    assert.equal(run.results.length, 10);
    for (const r of run.results) {
      assert.equal(r.s, 200, show(r));
      assert.match(r.body ?? '', / attempt=3$/, show(r));
    }
    // fail=10 outlasts 1 try + 3 retries: the caller sees the last 503, and the server saw exactly 4 attempts.
    const failing = await http({ url: 'http://retry:9200/?fail=10', n: 1, uniqueIds: true });
    const last = failing.results[0];
    assert.equal(last?.s, 503, show(failing));
    const count = await http({ url: `http://retry:9200/attempts?id=${last?.id}`, n: 1 });
    assert.equal(count.results[0]?.w, '4', show(count));
  });

  test('a route timeout answers 504 against a slow upstream; fast requests pass', async () => {
    const slow = await http({ url: 'http://timeout:9300/?delay=5000', n: 2 });
    for (const r of slow.results) {
      assert.equal(r.s, 504, show(r));
      assert.equal(r.body, 'upstream request timeout', show(r));
      assert.ok(r.ms >= 900 && r.ms < 4500, `answered after ${r.ms} ms`);
    }
    const fast = await http({ url: 'http://timeout:9300/?delay=50', n: 2 });
    assert.deepEqual(
      fast.results.map((r) => r.s),
      [200, 200],
      show(fast),
    );
  });

  test('a tripped circuit breaker answers 503 with x-envoy-overloaded, and closes again', async () => {
    const run = await http({ url: 'http://breaker:9400/?delay=300', n: 36, concurrency: 6 });
    const kinds = tally(run.results, (r) => (r.s === 503 ? `503-overloaded-${r.ov}` : r.s === 200 ? '200' : `other-${r.s ?? r.e}`));
    assert.deepEqual(Object.keys(kinds).sort(), ['200', '503-overloaded-true'], show(kinds));
    // One request holds the only connection for 300 ms; what arrives meanwhile overflows at once.
    assert.ok((kinds['503-overloaded-true'] ?? 0) >= 6, show(kinds));
    assert.ok((kinds['200'] ?? 0) >= 1, show(kinds));
    const after = await http({ url: 'http://breaker:9400/', n: 3 });
    assert.deepEqual(
      after.results.map((r) => r.s),
      [200, 200, 200],
      show(after),
    );
  });

  test('outlier detection ejects the endpoint that keeps failing: traffic moves to the healthy one', async () => {
    const run = await http({ url: 'http://outlier:9500/', n: 40 });
    const servers = run.results.map((r) => `${r.s}:${r.w}`);
    const bad = servers.filter((s) => s === '500:outlier-bad').length;
    // Round robin sends the bad endpoint every other request until its 2nd consecutive 5xx ejects it.
    assert.ok(bad >= 2 && bad <= 4, show(servers));
    assert.deepEqual(new Set(servers.slice(10)), new Set(['200:outlier-good']), show(servers));
  });

  test('maxEjectionPercent caps ejections: of two failing endpoints out of three, one stays in rotation', async () => {
    const run = await http({ url: 'http://capped:9510/', n: 60 });
    const servers = run.results.map((r) => `${r.s}:${r.w}`);
    // 34% of 3 hosts allows one ejection; the other failing endpoint keeps about half the traffic (15 of 30, sd ≈ 2.7).
    const lateBad = servers.slice(30).filter((s) => s.startsWith('500:')).length;
    assert.ok(lateBad >= 5, `only ${lateBad} of the last 30 reached a failing endpoint: both were ejected\n${show(servers)}`);
  });

  test('fault injection aborts 30% and delays 40% of requests, within statistical tolerance', async () => {
    const aborts = await http({ url: 'http://fault:9600/abort', n: 200, concurrency: 4 });
    const kinds = tally(aborts.results, (r) => (r.s === 418 ? `418:${r.body}` : String(r.s ?? r.e)));
    assert.deepEqual(Object.keys(kinds).sort(), ['200', '418:fault filter abort'], show(kinds));
    // 30% of 200 is 60 (sd ≈ 6.5).
    const aborted = kinds['418:fault filter abort'] ?? 0;
    assert.ok(aborted >= 35 && aborted <= 85, show(kinds));

    const delays = await http({ url: 'http://fault:9600/delay', n: 100, concurrency: 10 });
    assert.ok(delays.results.every(ok), show(delays));
    // 40% of 100 is 40 (sd ≈ 4.9); a delayed request takes at least 600 ms, an undelayed one a few.
    const delayed = delays.results.filter((r) => r.ms >= 580).length;
    assert.ok(delayed >= 22 && delayed <= 62, `${delayed} delayed: ${show(delays.results.map((r) => r.ms))}`);
  });

  test('an active health check keeps traffic off the endpoint that fails it', async () => {
    // The check runs every second; within a bounded time the sick endpoint must be out of rotation.
    const until = Date.now() + 20_000;
    let servers: string[] = [];
    for (;;) {
      const run = await http({ url: 'http://health:9800/', n: 10 });
      servers = run.results.map((r) => `${r.s}:${r.w}`);
      if (servers.every((s) => s === '200:health-ok')) break;
      assert.ok(Date.now() < until, `the sick endpoint still gets traffic: ${show(servers)}`);
      await new Promise((r) => setTimeout(r, 500));
    }
    const run = await http({ url: 'http://health:9800/', n: 30 });
    assert.deepEqual(new Set(run.results.map((r) => `${r.s}:${r.w}`)), new Set(['200:health-ok']), show(run));
  });

  test('config updates applied mid-stream drop no request and no connection', async () => {
    const stopFile = join(tmpdir(), `vmesh-feat-stop-${process.pid}-${Date.now()}`);
    const loop = f.spawnClient('loop', { url: 'http://update:9700/', concurrency: 4, stopFile, maxMs: 70_000 });
    try {
      await loop.waitForLine(/^started$/, 20_000);
      await new Promise((r) => setTimeout(r, 1000));
      const vs = (step: number, http: string) => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: update}
spec:
  hosts: [update]
  http:
${http.replaceAll('STEP', `step-${step}`)}`;
      const changes: Array<{ yaml: string; marker: string }> = [
        { yaml: vs(1, '  - name: STEP\n    route: [{destination: {host: update, subset: v2}}]\n'), marker: 'step-1' },
        {
          yaml: `${versions('update').replace('spec:\n', 'spec:\n  trafficPolicy: {loadBalancer: {simple: LEAST_REQUEST}}\n')}`,
          marker: 'LEAST_REQUEST',
        },
        {
          yaml: vs(
            3,
            '  - name: STEP\n    timeout: 10s\n    retries: {attempts: 1}\n    route:\n' +
              '    - {destination: {host: update, subset: v1}, weight: 50}\n    - {destination: {host: update, subset: v2}, weight: 50}\n',
          ),
          marker: 'step-3',
        },
        {
          yaml: vs(
            4,
            '  - name: STEP-canary\n    match: [{headers: {x-canary: {exact: "1"}}}]\n    route: [{destination: {host: update, subset: v2}}]\n' +
              '  - name: STEP\n    route: [{destination: {host: update, subset: v1}}]\n',
          ),
          marker: 'step-4',
        },
        { yaml: vs(5, '  - name: STEP\n    route: [{destination: {host: update, subset: v2}}]\n'), marker: 'step-5' },
      ];
      for (const c of changes) {
        await f.apply(c.yaml);
        await f.waitForConfig('h2', [c.marker]);
        await new Promise((r) => setTimeout(r, 700));
      }
    } finally {
      writeFileSync(stopFile, '');
    }
    const line = await loop.waitForLine(/^\{/, 30_000);
    rmSync(stopFile, { force: true });
    const out = JSON.parse(line) as {
      n: number;
      statuses: Record<string, number>;
      words: Record<string, number>;
      errorCount: number;
      errors: string[];
      sockets: number;
      stoppedByFile: boolean;
    };
    assert.equal(out.stoppedByFile, true, show(out));
    assert.equal(out.errorCount, 0, show(out));
    assert.deepEqual(Object.keys(out.statuses), ['200'], show(out));
    // Both versions answered: the changes took effect while the same connections kept carrying requests.
    assert.ok((out.words['update-v1'] ?? 0) > 0 && (out.words['update-v2'] ?? 0) > 0, show(out));
    assert.ok(out.n >= 100, show(out));
    assert.equal(out.sockets, 4, `the client had to reconnect: ${show(out)}`);
  });
});
