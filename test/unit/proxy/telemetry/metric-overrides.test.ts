import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { PassThrough } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { startMetricsServer } from '../../../../src/agent/metrics-server.js';
import { parseResources } from '../../../../src/api/resource-parse.js';
import { checkResources } from '../../../../src/api/resource-validate.js';
import { MAX_TAG_VALUE_LENGTH } from '../../../../src/api/tag-expression.js';
import { createAccessLogger, createLogger } from '../../../../src/lib/logger.js';
import { type MetricsSnapshot, renderPrometheus } from '../../../../src/lib/metrics-registry.js';
import { metricTags } from '../../../../src/proxy/http/stat-tags.js';
import type { ProxyConfig, SecretStore, StatsConfig } from '../../../../src/proxy/proxy-config.js';
import { ProxyTelemetry } from '../../../../src/proxy/telemetry/proxy-telemetry.js';
import { requestStats } from '../../../support/proxy-fixtures.js';
import {
  cluster,
  forward,
  httpAction,
  noFilters,
  type ProxyHarness,
  prefix,
  proxyConfig,
  route,
  startProxy,
  table,
  type Upstream,
  upstream,
  vhost,
} from '../http/http-fixture.js';
import { compiledFor, fixtureWith } from '../translated.js';

const run = promisify(execFile);

// Istio's Telemetry metric overrides, through validation, the translation and the proxy's compiler, applied by the
// proxy to real requests (curl), counted by two workers' telemetry, then scraped from the agent's metrics endpoint.
const TELEMETRY = `apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: vmesh-system}
spec:
  metrics:
  - providers: [{name: prometheus}]
    overrides:
    - match: {metric: REQUEST_DURATION}
      disabled: true
    - match: {metric: REQUEST_COUNT, mode: CLIENT}
      tagOverrides:
        request_method: {value: request.method}
        user: {value: "request.headers['x-user'] | 'anonymous'"}
        route: {value: "xds.route_name"}
        grpc_response_status: {operation: REMOVE}
    - match: {metric: TCP_SENT_BYTES, mode: CLIENT}
      tagOverrides:
        upstream: {value: upstream.port}
        response_flags: {operation: REMOVE}
    - match: {metric: TCP_OPENED_CONNECTIONS, mode: CLIENT}
      disabled: true
`;

const secrets: SecretStore = { tlsCertificate: () => undefined, trustedCa: () => undefined, onChange: () => () => {} };

function samples(text: string, name: string): Array<Record<string, string>> {
  return text
    .split('\n')
    .filter((l) => l.startsWith(`${name}{`))
    .map((l) => {
      const labels: Record<string, string> = {};
      for (const m of l.matchAll(/(\w+)="([^"]*)"/g)) labels[m[1] as string] = m[2] as string;
      labels.__value = l.slice(l.lastIndexOf(' ') + 1);
      return labels;
    });
}

describe('Telemetry metric overrides applied by the proxy', () => {
  let compiled: ProxyConfig;
  let httpStats: StatsConfig;
  let tcpStats: StatsConfig;
  let u: Upstream;
  let p: ProxyHarness;
  let telemetry: ProxyTelemetry;
  let telemetry2: ProxyTelemetry;
  let agent: { port: number; close(): Promise<void> };

  before(async () => {
    const parsed = parseResources(TELEMETRY, { source: 't.yaml' });
    assert.ok(parsed.ok);
    assert.deepEqual(checkResources(parsed.value).errors, [], 'the overrides validate');
    compiled = compiledFor(fixtureWith(TELEMETRY));
    const chains = [...compiled.listeners.values()].flatMap((l) => [...l.filterChains, ...(l.defaultChain ? [l.defaultChain] : [])]);
    // The client side of h1: an outbound HTTP chain, and the tcp_proxy of the passthrough (virtualOutbound).
    const http = chains.find((c) => c.action.kind === 'http' && c.action.statPrefix.startsWith('outbound_'));
    const tcp = chains.find((c) => c.action.kind === 'tcp' && c.action.statPrefix === 'PassthroughCluster');
    assert.ok(http?.action.kind === 'http' && http.action.filters.stats, 'the outbound HTTP chain carries the stats config');
    assert.ok(tcp?.action.kind === 'tcp' && tcp.action.stats, 'the passthrough tcp_proxy carries the stats config');
    httpStats = http.action.filters.stats;
    tcpStats = tcp.action.stats;

    u = await upstream('u');
    p = await startProxy(
      proxyConfig([cluster('u', [u.port])], [table('r', [vhost('any', ['*'], [route('all', prefix('/'), forward('u'))])])]),
      httpAction('r', { ...noFilters, stats: httpStats }, { statPrefix: 'outbound_240.240.0.4_9080' }),
    );
    const worker = () => {
      const t = new ProxyTelemetry({
        secrets,
        logger: createAccessLogger(new PassThrough()),
        accessLog: createAccessLogger(new PassThrough()),
        internals: { activeConnections: () => 0, clusters: () => [], inUse: () => 0, ejections: () => ({ ejected: 0, total: 0 }) },
      });
      t.setConfig(compiled);
      return t;
    };
    telemetry = worker();
    telemetry2 = worker();
    // Each worker's snapshot crosses a process boundary as JSON before the agent sums them.
    const crossed = (t: ProxyTelemetry) => JSON.parse(JSON.stringify(t.snapshot())) as MetricsSnapshot;
    agent = await startMetricsServer({
      address: '127.0.0.1',
      port: 0,
      logger: createLogger({ level: 'silent' }),
      sources: {
        proxies: async () => [crossed(telemetry), crossed(telemetry2)],
        certificates: () => [],
        xds: () => ({ versions: {}, resources: {}, updatedAt: '' }),
        ready: () => true,
      },
    });
  });
  after(async () => {
    await agent?.close();
    await p?.close();
    await u?.close();
  });

  test('real requests: the disabled metric is gone, upserted labels carry evaluated values, the removed label is gone', async () => {
    const curl = (args: string[]) => run('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', ...args], { timeout: 10_000 });
    assert.equal((await curl(['-H', 'x-user: ada', `http://127.0.0.1:${p.port}/a`])).stdout, '200');
    assert.equal((await curl(['-H', 'x-user: ada', `http://127.0.0.1:${p.port}/b`])).stdout, '200');
    assert.equal((await curl(['-X', 'POST', '-d', 'x', `http://127.0.0.1:${p.port}/c`])).stdout, '200');
    assert.equal(p.stats.length, 3);
    // Two workers: the GETs are counted one by each, the agent sums them.
    for (const [i, s] of p.stats.entries()) (i === 1 ? telemetry2 : telemetry).onRequestDone(s);
    const text = (await run('curl', ['-s', '--fail', `http://127.0.0.1:${agent.port}/stats/prometheus`], { timeout: 10_000 })).stdout;

    assert.equal(samples(text, 'istio_request_duration_milliseconds_bucket').length, 0, 'REQUEST_DURATION is disabled');
    assert.doesNotMatch(text, /^istio_request_duration_milliseconds_count/m);
    const reqs = samples(text, 'istio_requests_total');
    const get = reqs.find((r) => r.request_method === 'GET');
    const post = reqs.find((r) => r.request_method === 'POST');
    assert.equal(get?.__value, '2');
    assert.equal(get?.user, 'ada');
    assert.equal(get?.route, 'all');
    assert.equal(post?.__value, '1');
    assert.equal(post?.user, 'anonymous', 'the | default when the header is absent');
    for (const r of reqs) {
      assert.equal(r.grpc_response_status, undefined, 'grpc_response_status is removed');
      assert.equal(r.reporter, 'source');
      assert.equal(r.response_code, '200');
    }
    // Metrics the overrides do not name keep Istio's standard labels.
    const bytes = samples(text, 'istio_request_bytes_count');
    assert.equal(bytes.length, 1);
    assert.equal(bytes[0]?.grpc_response_status, '');
    assert.equal(bytes[0]?.request_method, undefined);
    assert.equal(bytes[0]?.__value, '3');
  });

  test('TCP: connection attributes only; a disabled metric is gone, a removed label is gone', () => {
    const attrs = { attribute: (n: string) => (n === 'upstream.port' ? 5432 : undefined), header: () => undefined };
    const tags = metricTags(tcpStats, attrs as Parameters<typeof metricTags>[1]);
    const info = {
      listener: 'l',
      chain: 'c',
      statPrefix: 'PassthroughCluster',
      cluster: 'PassthroughCluster',
      upstreamHost: '198.18.9.9:5432',
    };
    telemetry.onConnectionOpened({ ...info, metricTags: tags });
    const closed = requestStats();
    telemetry.onConnectionClosed({
      ...info,
      downstreamRemote: closed.downstreamRemote,
      originalDst: closed.downstreamRemote as never,
      bytesReceived: 10,
      bytesSent: 20,
      startTime: 0,
      durationMs: 1,
      flags: '-',
      metricTags: tags,
    });
    const text = renderPrometheus(telemetry.snapshot());
    assert.equal(samples(text, 'istio_tcp_connections_opened_total').length, 0);
    const sent = samples(text, 'istio_tcp_sent_bytes_total');
    assert.equal(sent.length, 1);
    assert.equal(sent[0]?.upstream, '5432');
    assert.equal(sent[0]?.response_flags, undefined);
    assert.equal(sent[0]?.__value, '20');
    assert.equal(samples(text, 'istio_tcp_received_bytes_total')[0]?.response_flags, '-');
  });

  test('a label value is cut at the bound; the series key stays bounded', () => {
    const long = 'x'.repeat(MAX_TAG_VALUE_LENGTH * 4);
    const s = requestStats({ metricTags: metricTags(httpStats, { attribute: () => undefined, header: () => long }) });
    telemetry.onRequestDone(s);
    const text = renderPrometheus(telemetry.snapshot());
    const users = samples(text, 'istio_requests_total').map((r) => r.user ?? '');
    assert.ok(users.includes('x'.repeat(MAX_TAG_VALUE_LENGTH)));
    assert.ok(users.every((v) => v.length <= MAX_TAG_VALUE_LENGTH));
  });
});
