import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { ReceivedSpan } from '../support/otlp-receiver.js';
import { type FeatureLab, startFeatureLab } from './features-lab.js';
import type { LabHost, LabProcess } from './lab.js';

// Istio's metrics, Envoy-style access logs and OpenTelemetry traces, end to end: the registered client app on h2
// calls `web` (HTTP) and `rawtcp` (TCP) on h3 through both proxies (mTLS); each agent's :15020/stats/prometheus must
// then hold exact counts with Istio's labels (reporter source on h2, destination on h3), each request an access-log
// line, and the OTLP collector on h1 a CLIENT span from h2's proxy and a SERVER span from h3's for every request.
const TELEMETRY = `apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: vmesh-system}
spec:
  accessLogging:
  - providers: [{name: envoy}]
  - match: {mode: SERVER}
    filter: {expression: "response.code >= 400"}
  tracing:
  - randomSamplingPercentage: 100
    customTags:
      lab: {literal: {value: telemetry}}
      caller: {header: {name: x-caller, defaultValue: nobody}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: otel-collector, namespace: observability}
spec:
  hosts: [otel-collector.observability.svc.cluster.local]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 4317, name: grpc-otlp, protocol: GRPC}]
  endpoints: [{address: 198.18.0.1}]
`;

// Istio's MeshConfig shape: the collector as an extension provider, tracing on by default for every proxy.
// A 15 s host timeout: agents report (and so send their traffic graph) every 5 s.
const CONTROLLER_CONFIG = `hostTimeoutSeconds: 15
mesh:
  extensionProviders:
  - name: otel
    opentelemetry: {service: otel-collector.observability.svc.cluster.local, port: 4317}
  defaultProviders: {tracing: [otel]}
`;

// A caller's W3C context: the proxies must continue this trace, not start their own.
const CALLER_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const CALLER_SPAN = '00f067aa0ba902b7';

const APP_ID = 'spiffe://cluster.local/ns/default/sa/app';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

function parseProm(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m?.[1] && m[3], `not a Prometheus sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1] as string] = l[2] as string;
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

/** Sum of the samples named `name` whose labels include `match`. */
function sum(samples: readonly Sample[], name: string, match: Readonly<Record<string, string>>): number {
  return samples
    .filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v))
    .reduce((a, s) => a + s.value, 0);
}

async function httpGet(host: LabHost, port: number, path: string): Promise<{ status: number; body: string }> {
  const script = `require('http').get('http://127.0.0.1:${port}${path}',r=>{let b='';r.on('data',c=>b+=c);r.on('end',()=>console.log(JSON.stringify({status:r.statusCode,body:b})))})`;
  const out = await host.execOk(process.execPath, ['-e', script], { timeoutMs: 15_000 });
  return JSON.parse(out) as { status: number; body: string };
}

async function scrape(host: LabHost): Promise<Sample[]> {
  const r = await httpGet(host, 15020, '/stats/prometheus');
  assert.equal(r.status, 200, r.body);
  return parseProm(r.body);
}

/** Scrapes until `done` holds (metrics are recorded when a request or connection ends). */
async function scrapeUntil(host: LabHost, done: (s: Sample[]) => boolean): Promise<Sample[]> {
  const until = Date.now() + 30_000;
  for (;;) {
    const s = await scrape(host);
    if (done(s) || Date.now() > until) return s;
    await sleep(300);
  }
}

/** The access-log lines (JSON objects with Envoy's fields) the agent (and its workers) printed so far. */
async function accessLines(p: LabProcess, want: number): Promise<Array<Record<string, unknown>>> {
  const lines: Array<Record<string, unknown>> = [];
  const it = p.lines();
  const deadline = Date.now() + 20_000;
  // Once `want` lines are in, read a little longer so a surplus would show.
  let extraUntil = Number.POSITIVE_INFINITY;
  for (;;) {
    const remain = Math.min(deadline, extraUntil) - Date.now();
    if (remain <= 0) break;
    const next = await Promise.race([it.next(), sleep(remain).then(() => undefined)]);
    if (!next || next.done) break;
    try {
      const o = JSON.parse(next.value) as Record<string, unknown>;
      if ('response_code' in o && 'upstream_cluster' in o) lines.push(o);
    } catch {
      // not JSON: another line on the agent's stdout
    }
    if (lines.length >= want && extraUntil === Number.POSITIVE_INFINITY) extraUntil = Date.now() + 1500;
  }
  return lines;
}

/** A span as the collector fixture prints it (its times as strings, JSON having no bigint). */
type Span = Omit<ReceivedSpan, 'startNs' | 'endNs'>;

/** The spans the collector on h1 printed so far, once `done` holds for them (or after 20 s). */
async function spansUntil(p: LabProcess, done: (s: Span[]) => boolean): Promise<Span[]> {
  const spans: Span[] = [];
  const it = p.lines();
  const deadline = Date.now() + 20_000;
  while (!done(spans)) {
    const remain = deadline - Date.now();
    if (remain <= 0) break;
    const next = await Promise.race([it.next(), sleep(remain).then(() => undefined)]);
    if (!next || next.done) break;
    if (next.value.startsWith('{"span"')) spans.push((JSON.parse(next.value) as { span: Span }).span);
  }
  return spans;
}

describe('telemetry: Istio metrics, access logs and traces from both proxies', () => {
  let f: FeatureLab;
  let collector: LabProcess;

  before(async () => {
    f = await startFeatureLab({
      controllerConfig: CONTROLLER_CONFIG,
      servers: ['http:web:8080', 'tcp:tcp:8084'],
      services: [
        { name: 'web', port: 8080, portName: 'http', endpoints: [{ name: 'web-1', port: 8080, labels: { version: 'v1' } }] },
        { name: 'rawtcp', port: 8084, portName: 'tcp', endpoints: [{ name: 'rawtcp-1', port: 8084 }] },
      ],
      config: TELEMETRY,
    });
    collector = f.h1.spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'fixtures', 'otlp-collector.ts'), f.h1.ipv4]);
    await collector.waitForLine(/^ready$/, 30_000);
    await Promise.all([
      f.waitForConfig('h2', ['envoy.access_loggers.stdout', 'envoy.tracers.opentelemetry', 'outbound|4317||otel-collector']),
      f.waitForConfig('h3', ['status_code_filter', 'envoy.tracers.opentelemetry']),
    ]);
  });
  after(async () => {
    await f?.teardown();
  });

  test('20 × 200, 5 × 404 and 3 TCP connections are counted exactly, with Istio labels, on both hosts', async () => {
    assert.equal((await httpGet(f.h2, 15020, '/healthz/ready')).status, 200);
    const before2 = await scrape(f.h2);
    assert.equal(sum(before2, 'istio_requests_total', {}), 0, 'no request counted before the test sends any');

    type Run = { results: Array<{ s?: number }> };
    const ok = await f.client<Run>('http', { url: 'http://web:8080/ok', n: 20 });
    const missing = await f.client<Run>('http', {
      url: 'http://web:8080/missing?status=404',
      n: 5,
      headers: { traceparent: `00-${CALLER_TRACE}-${CALLER_SPAN}-01`, 'x-caller': 'lab' },
    });
    assert.deepEqual(
      ok.results.map((r) => r.s),
      Array(20).fill(200),
    );
    assert.deepEqual(
      missing.results.map((r) => r.s),
      Array(5).fill(404),
    );
    for (let i = 0; i < 3; i++) {
      assert.deepEqual(await f.client('tcp', { host: 'rawtcp', port: 8084, bytes: 1000 }), { sent: 1000, received: 1000, same: true });
    }

    const settled = (reporter: string) => (s: Sample[]) =>
      sum(s, 'istio_requests_total', { reporter }) >= 25 && sum(s, 'istio_tcp_connections_closed_total', { reporter }) >= 3;
    const [m2, m3] = await Promise.all([scrapeUntil(f.h2, settled('source')), scrapeUntil(f.h3, settled('destination'))]);

    const web = {
      destination_service: 'web.default.mesh',
      destination_service_name: 'web',
      destination_service_namespace: 'default',
      destination_workload: 'web-1',
      destination_workload_namespace: 'default',
      destination_principal: 'spiffe://cluster.local/ns/default/sa/web',
      destination_app: 'web',
      destination_version: 'v1',
      source_workload: 'app',
      source_workload_namespace: 'default',
      source_principal: APP_ID,
      request_protocol: 'http',
      response_flags: '-',
    };
    const src = { ...web, reporter: 'source', connection_security_policy: 'unknown' };
    const dst = { ...web, reporter: 'destination', connection_security_policy: 'mutual_tls' };
    const show = (s: Sample[]) =>
      s
        .filter((x) => x.name.startsWith('istio_'))
        .map((x) => `${x.name} ${JSON.stringify(x.labels)} ${x.value}`)
        .join('\n');
    for (const [m, labels, host] of [
      [m2, src, 'h2'],
      [m3, dst, 'h3'],
    ] as const) {
      assert.equal(sum(m, 'istio_requests_total', { ...labels, response_code: '200' }), 20, `${host}\n${show(m)}`);
      assert.equal(sum(m, 'istio_requests_total', { ...labels, response_code: '404' }), 5, `${host}\n${show(m)}`);
      assert.equal(sum(m, 'istio_requests_total', {}), 25, `${host}: nothing else counted\n${show(m)}`);
      assert.equal(sum(m, 'istio_request_duration_milliseconds_count', { ...labels, response_code: '200' }), 20, host);
      assert.equal(sum(m, 'istio_request_duration_milliseconds_bucket', { ...labels, response_code: '200', le: '+Inf' }), 20, host);
      assert.equal(sum(m, 'istio_request_bytes_count', labels), 25, host);
      assert.equal(sum(m, 'istio_response_bytes_count', labels), 25, host);
      assert.ok(sum(m, 'istio_response_bytes_sum', labels) > 0, host);
    }

    const tcp = {
      destination_service: 'rawtcp.default.mesh',
      destination_service_name: 'rawtcp',
      destination_workload: 'rawtcp-1',
      destination_principal: 'spiffe://cluster.local/ns/default/sa/rawtcp',
      source_workload: 'app',
      source_principal: APP_ID,
      request_protocol: 'tcp',
    };
    for (const [m, labels, host] of [
      [m2, { ...tcp, reporter: 'source', connection_security_policy: 'unknown' }, 'h2'],
      [m3, { ...tcp, reporter: 'destination', connection_security_policy: 'mutual_tls' }, 'h3'],
    ] as const) {
      assert.equal(sum(m, 'istio_tcp_connections_opened_total', labels), 3, `${host}\n${show(m)}`);
      assert.equal(sum(m, 'istio_tcp_connections_closed_total', labels), 3, `${host}\n${show(m)}`);
      assert.equal(sum(m, 'istio_tcp_received_bytes_total', labels), 3000, host);
      assert.equal(sum(m, 'istio_tcp_sent_bytes_total', labels), 3000, host);
    }
    // The agent's own metrics ride along: certificate expiry and the applied xDS versions.
    assert.ok(sum(m2, 'vmesh_certificate_expiry_seconds', { identity: APP_ID }) > 3600, show(m2));
    assert.ok(m2.some((s) => s.name === 'vmesh_xds_config_info'));

    // Access logs: every request and connection on h2 (client side); on h3 the SERVER filter keeps only >= 400.
    const [l2, l3] = await Promise.all([accessLines(f.agents.h2, 28), accessLines(f.agents.h3, 5)]);
    const http2 = l2.filter((l) => l.method !== null);
    assert.equal(http2.filter((l) => l.response_code === 200 && l.path === '/ok').length, 20, JSON.stringify(l2.slice(0, 3)));
    assert.equal(http2.filter((l) => l.response_code === 404).length, 5);
    assert.equal(l2.filter((l) => l.upstream_cluster === 'outbound|8084||rawtcp.default.mesh').length, 3);
    for (const l of http2) {
      assert.equal(l.source_principal, APP_ID);
      assert.equal(l.destination_principal, 'spiffe://cluster.local/ns/default/sa/web');
      assert.equal(l.upstream_cluster, 'outbound|8080||web.default.mesh');
      assert.equal(l.authority, 'web:8080');
      assert.equal(typeof l.x_request_id, 'string');
      assert.ok(!Number.isNaN(Date.parse(String(l.start_time))));
    }
    assert.deepEqual(
      l3.map((l) => l.response_code),
      Array(5).fill(404),
      JSON.stringify(l3),
    );
    assert.ok(l3.every((l) => l.source_principal === APP_ID && l.upstream_cluster === 'inbound|8080||'));

    // Traces: every HTTP request is one trace with h2's CLIENT span (service app.default) as the parent of h3's
    // SERVER span (web.default); the 5 requests that came with a traceparent continue the caller's trace.
    const OTLP_SERVER = 2;
    const OTLP_CLIENT = 3;
    const spans = await spansUntil(collector, (s) => s.length >= 50);
    const seen = JSON.stringify(spans.slice(0, 4));
    const clients = spans.filter((s) => s.kind === OTLP_CLIENT);
    const servers = spans.filter((s) => s.kind === OTLP_SERVER);
    assert.equal(clients.length, 25, seen);
    assert.equal(servers.length, 25, seen);
    assert.equal(spans.length, 50, 'no span for the TCP connections or anything else');
    for (const c of clients) {
      assert.equal(c.serviceName, 'app.default', seen);
      assert.equal(c.name, 'web.default.mesh/*');
      assert.equal(c.attributes.upstream_cluster, 'outbound|8080||web.default.mesh');
      assert.equal(c.attributes.lab, 'telemetry');
      const server = servers.filter((s) => s.parentSpanId === c.spanId);
      assert.equal(server.length, 1, `one SERVER span under CLIENT span ${c.spanId}`);
      assert.equal(server[0]?.traceId, c.traceId);
      assert.equal(server[0]?.serviceName, 'web.default');
      assert.equal(server[0]?.attributes['http.status_code'], c.attributes['http.status_code']);
    }
    const continued = clients.filter((c) => c.traceId === CALLER_TRACE);
    assert.equal(continued.length, 5, 'the caller-supplied traceparent is continued');
    assert.ok(
      continued.every((c) => c.parentSpanId === CALLER_SPAN && c.attributes.caller === 'lab' && c.attributes['http.status_code'] === 404),
    );
    assert.equal(new Set(clients.map((c) => c.traceId)).size, 21, '20 new traces and the caller one');
    assert.ok(clients.filter((c) => c.traceId !== CALLER_TRACE).every((c) => c.parentSpanId === '' && c.attributes.caller === 'nobody'));
    // The access logs carry the trace ids the spans have.
    const traceIds = new Set(clients.map((c) => c.traceId));
    assert.ok(
      http2.every((l) => traceIds.has(String(l.trace_id))),
      JSON.stringify(http2.map((l) => l.trace_id)),
    );

    // The controller's graph (what the UI draws), from the agents' health reports: the callee's counts, over mTLS.
    type Edge = { source: string; target: string; protocol: string; requests: number; errorRate: number; mtls: boolean };
    const edgesOf = async () => (JSON.parse(await f.cli(['graph', '-o', 'json'])) as { edges: Edge[] }).edges;
    // Both agents must have reported since the traffic ended (margin: they read their proxies just before), or a
    // callee's calls would show only as their caller saw them.
    const trafficEnded = Date.now() + 500;
    const reportedSince = async () => {
      const hosts = JSON.parse(await f.cli(['host', 'list', '-o', 'json'])) as Array<{ name: string; lastSeen?: string }>;
      return ['h2', 'h3'].every((h) => Date.parse(hosts.find((x) => x.name === h)?.lastSeen ?? '') > trafficEnded);
    };
    for (const until = Date.now() + 60_000; !(await reportedSince()) && Date.now() < until; ) await sleep(1000);
    const edges = await edgesOf();
    const pick = (source: string, target: string) =>
      edges
        .filter((e) => e.source === source && e.target === target)
        .map((e) => ({ protocol: e.protocol, requests: e.requests, errorRate: e.errorRate, mtls: e.mtls }));
    const http = { protocol: 'http', requests: 25, errorRate: 0, mtls: true };
    const tcpEdge = { protocol: 'tcp', requests: 3, errorRate: 0, mtls: true };
    assert.deepEqual(pick('workload:default/app', 'service:web.default.mesh'), [http], JSON.stringify(edges));
    assert.deepEqual(pick('service:web.default.mesh', 'workload:default/web-1'), [http]);
    assert.deepEqual(pick('workload:default/app', 'service:rawtcp.default.mesh'), [tcpEdge]);
    assert.deepEqual(pick('service:rawtcp.default.mesh', 'workload:default/rawtcp-1'), [tcpEdge]);
    assert.equal(edges.length, 4, `nothing else in the graph: ${JSON.stringify(edges)}`);
  });
});
