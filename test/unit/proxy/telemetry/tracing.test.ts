import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { createLogger } from '../../../../src/lib/logger.js';
import { injectTrace, sampledByRequestId, startTrace } from '../../../../src/proxy/http/trace-context.js';
import type { RequestStats } from '../../../../src/proxy/http/types.js';
import type { ProxyConfig, TracingConfig } from '../../../../src/proxy/proxy-config.js';
import { ProxyTelemetry } from '../../../../src/proxy/telemetry/proxy-telemetry.js';
import { type OtlpReceiver, startOtlpReceiver } from '../../../support/otlp-receiver.js';
import { requestStats } from '../../../support/proxy-fixtures.js';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN = '00f067aa0ba902b7';
const never = () => 0.99;
const always = () => 0;

function start(headers: Record<string, string>, sampling = 0, random = never) {
  return startTrace(Object.keys(headers), Object.values(headers), sampling, random);
}

describe('trace context: W3C and B3 in, both out', () => {
  test('traceparent is continued with its sampling flag; this proxy gets a new span id', () => {
    const t = start({ traceparent: `00-${TRACE}-${SPAN}-01` });
    assert.equal(t.traceId, TRACE);
    assert.equal(t.parentSpanId, SPAN);
    assert.match(t.spanId, /^[0-9a-f]{16}$/);
    assert.notEqual(t.spanId, SPAN);
    assert.equal(t.sampled, true);
    assert.equal(start({ traceparent: `00-${TRACE}-${SPAN}-00` }, 1, always).sampled, false, 'the caller decided: not sampled');
  });

  test('invalid traceparents (all-zero ids, version ff, bad hex) start a new trace', () => {
    for (const bad of [
      `00-${'0'.repeat(32)}-${SPAN}-01`,
      `ff-${TRACE}-${SPAN}-01`,
      `00-${TRACE}-${'0'.repeat(16)}-01`,
      `00-xyz-${SPAN}-01`,
    ]) {
      const t = start({ traceparent: bad });
      assert.notEqual(t.traceId, TRACE, bad);
      assert.equal(t.parentSpanId, undefined, bad);
    }
  });

  test('B3 multi and single headers; 64-bit trace ids are padded; x-b3-flags forces sampling', () => {
    const multi = start({ 'x-b3-traceid': TRACE.slice(16), 'x-b3-spanid': SPAN, 'x-b3-sampled': '1' });
    assert.deepEqual([multi.traceId, multi.parentSpanId, multi.sampled], [`${'0'.repeat(16)}${TRACE.slice(16)}`, SPAN, true]);
    const single = start({ b3: `${TRACE}-${SPAN}-0` }, 1, always);
    assert.deepEqual([single.traceId, single.parentSpanId, single.sampled], [TRACE, SPAN, false]);
    assert.equal(start({ 'x-b3-traceid': TRACE, 'x-b3-spanid': SPAN, 'x-b3-flags': '1' }).sampled, true);
    assert.equal(start({ b3: '0' }, 1, always).sampled, false, 'a bare decision binds a new trace');
    assert.equal(start({ b3: '1' }).sampled, true);
  });

  test('with no context, the sampling fraction decides; every span id is new', () => {
    assert.equal(start({}, 0.3, () => 0.29).sampled, true);
    assert.equal(start({}, 0.3, () => 0.3).sampled, false);
    assert.equal(start({}, 0, always).sampled, false);
    const ids = new Set(Array.from({ length: 2000 }, () => start({}).spanId));
    assert.equal(ids.size, 2000);
  });

  test("with an x-request-id, Envoy's UUID sampling: the id decides, the same on every proxy", () => {
    const rid = (head: string) => `${head}-1b2c-4d5e-8f90-123456789abc`;
    const byId = (head: string, sampling: number, random = never) => startTrace([], [], sampling, random, rid(head)).sampled;
    // first 8 hex digits % 10000 against the rate in ten-thousandths: 0x00001387 = 4999, 0x00001388 = 5000
    assert.equal(sampledByRequestId(rid('00001387'), 0.5), true);
    assert.equal(sampledByRequestId(rid('00001388'), 0.5), false);
    assert.equal(sampledByRequestId(rid('ffffffff'), 0.5454), 0xffffffff % 10000 < 5454);
    assert.equal(byId('00001387', 0.5, never), true, 'the id overrides a random draw that would not sample');
    assert.equal(byId('00001388', 0.5, always), false, 'and one that would');
    assert.equal(sampledByRequestId('not-a-uuid', 0.5), undefined);
    assert.equal(byId('zzzzzzzz', 0.5, always), true, 'an id without 8 hex digits: random, as Envoy');
    // a caller's decision still wins over the id
    assert.equal(startTrace(['traceparent'], [`00-${TRACE}-${SPAN}-00`], 1, always, rid('00000000')).sampled, false);
    // over many ids the rate holds
    let n = 0;
    for (let i = 0; i < 10_000; i++) if (sampledByRequestId(randomUUID(), 0.25)) n++;
    assert.ok(n > 2200 && n < 2800, `${n} of 10000 at 25%`);
  });

  test('both formats go upstream, naming this proxy span as the parent', () => {
    const t = start({ traceparent: `00-${TRACE}-${SPAN}-01` });
    const names: string[] = ['accept'];
    const values: string[] = ['*/*'];
    injectTrace(names, values, t);
    const h = Object.fromEntries(names.map((n, i) => [n, values[i]]));
    assert.deepEqual(h, {
      accept: '*/*',
      traceparent: `00-${TRACE}-${t.spanId}-01`,
      'x-b3-traceid': TRACE,
      'x-b3-spanid': t.spanId,
      'x-b3-sampled': '1',
      'x-b3-parentspanid': SPAN,
    });
  });
});

function configWith(tracing: TracingConfig, collectorPort: number): ProxyConfig {
  const action = {
    kind: 'http' as const,
    routeConfig: 'r',
    filters: { rbac: [], fault: false },
    statPrefix: 'outbound_x',
    forwardClientCert: false,
    tracing,
  };
  const listener = {
    name: 'l',
    address: '0.0.0.0',
    port: 1,
    bindToPort: false,
    useOriginalDst: false,
    inspectTls: false,
    filterChains: [{ name: 'c', match: { serverNames: [], applicationProtocols: [], prefixRanges: [] }, action }],
  };
  const cluster = {
    name: 'outbound|4317||otel',
    discovery: 'EDS',
    endpoints: [{ address: '127.0.0.1', port: collectorPort, weight: 1, healthy: true, locality: '', priority: 0, mtls: false }],
  };
  return {
    version: '1',
    listeners: new Map([['l', listener]]),
    virtualByAddress: new Map(),
    clusters: new Map([[cluster.name, cluster]]),
    routes: new Map(),
  } as unknown as ProxyConfig;
}

function stats(trace: ReturnType<typeof startTrace>, status: number): RequestStats {
  return requestStats({
    path: '/p?q=1',
    authority: 'web:8080',
    status,
    durationMs: 7,
    cluster: 'outbound|8080||web.default.mesh',
    statPrefix: 'outbound_x',
    trace,
    traceTags: [['user', 'ann']],
  });
}

describe('span export: the proxy telemetry reports sampled spans over OTLP', () => {
  let rx: OtlpReceiver;
  before(async () => {
    rx = await startOtlpReceiver();
  });
  after(async () => {
    await rx.close();
  });

  for (const protocol of ['grpc', 'http'] as const) {
    test(`OTLP/${protocol}: one span per sampled request, none for unsampled ones, with Istio's tags`, async () => {
      const telemetry = new ProxyTelemetry({
        secrets: { tlsCertificate: () => undefined, onChange: () => () => {} } as never,
        internals: { activeConnections: () => 0, clusters: () => [], inUse: () => 0, ejections: () => ({ ejected: 0, total: 0 }) },
        logger: createLogger({ level: 'silent' }),
        environment: { TEAM: 'blue' },
      });
      const tracing: TracingConfig = {
        sampling: 1,
        useRequestId: true,
        spanKind: 'CLIENT',
        maxTagLength: 16,
        tags: [
          { tag: 'team', environment: { name: 'TEAM', defaultValue: 'none' } },
          { tag: 'user', header: { name: 'x-user', defaultValue: '' } },
        ],
        exporter: {
          protocol,
          cluster: 'outbound|4317||otel',
          path: '/v1/traces',
          authority: 'otel',
          timeoutMs: 2000,
          headers: {},
          serviceName: 'fallback.default',
        },
      };
      telemetry.setConfig(configWith(tracing, protocol === 'grpc' ? rx.grpcPort : rx.httpPort));
      const sampled = start({ traceparent: `00-${TRACE}-${SPAN}-01` });
      const unsampled = start({ traceparent: `00-${TRACE}-${SPAN}-00` });
      const from = rx.spans.length;
      telemetry.onRequestDone(stats(sampled, 503));
      telemetry.onRequestDone(stats(unsampled, 200));
      await telemetry.close();
      await rx.waitFor((s) => s.length > from, 5000, 'a span');
      const got = rx.spans.slice(from);
      assert.equal(got.length, 1);
      const s = got[0];
      assert.ok(s);
      assert.equal(s.via, protocol);
      assert.equal(s.traceId, TRACE);
      assert.equal(s.parentSpanId, SPAN);
      assert.equal(s.spanId, sampled.spanId);
      assert.equal(s.kind, 3, 'CLIENT');
      assert.equal(s.statusCode, 2, 'a 503 is an error');
      assert.equal(s.serviceName, 'fallback.default', 'no workload labels: the provider service name');
      assert.equal(s.attributes['http.status_code'], 503);
      assert.equal(s.attributes['http.url'], 'http://web:8080/', 'cut at maxTagLength');
      assert.equal(s.attributes.team, 'blue');
      assert.equal(s.attributes.user, 'ann');
      assert.equal(s.attributes['guid:x-request-id'], 'req-1');
      assert.equal(s.endNs - s.startNs, 7_000_000n);
    });
  }
});
