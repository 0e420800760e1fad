import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, test } from 'node:test';
import { createAccessLogger } from '../../../../src/lib/logger.js';
import { MetricsRegistry, mergeSnapshots, renderPrometheus } from '../../../../src/lib/metrics-registry.js';
import { accessLogWants, compileAccessLogs } from '../../../../src/proxy/compile/access-log.js';
import type { RequestStats } from '../../../../src/proxy/http/types.js';
import type { ProxyConfig, SecretStore } from '../../../../src/proxy/proxy-config.js';
import { ProxyTelemetry } from '../../../../src/proxy/telemetry/proxy-telemetry.js';
import { TypedConfigUrl } from '../../../../src/xds/type-urls.js';
import { compileTranslated, requestStats } from '../../../support/proxy-fixtures.js';
import { bookinfoInput } from '../../xds/translate/fixture.js';

const PRODUCTPAGE = 'spiffe://cluster.local/ns/default/sa/productpage';
const REVIEWS = 'spiffe://cluster.local/ns/default/sa/reviews';

/** The fixture node h1 (productpage-v1) as its proxy runs it: translated, encoded, decoded and compiled. */
function h1Config(): ProxyConfig {
  return compileTranslated(bookinfoInput('h1'));
}

const secrets: SecretStore = { tlsCertificate: () => undefined, trustedCa: () => undefined, onChange: () => () => {} };

function stats(over: Partial<RequestStats>): RequestStats {
  return requestStats({ localIdentity: PRODUCTPAGE, ...over });
}

function setup() {
  const out = new PassThrough();
  let text = '';
  out.on('data', (d: Buffer) => {
    text += d.toString();
  });
  const t = new ProxyTelemetry({
    secrets,
    logger: createAccessLogger(new PassThrough()),
    accessLog: createAccessLogger(out),
    internals: { activeConnections: () => 7, clusters: () => [], inUse: () => 0, ejections: () => ({ ejected: 0, total: 0 }) },
  });
  t.setConfig(h1Config());
  return {
    t,
    lines: () =>
      text
        .trim()
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

function series(text: string, name: string): Array<{ labels: Record<string, string>; value: number }> {
  return text
    .split('\n')
    .filter((l) => l.startsWith(`${name}{`))
    .map((l) => {
      const labels: Record<string, string> = {};
      for (const m of l.matchAll(/(\w+)="([^"]*)"/g)) labels[m[1] as string] = m[2] as string;
      return { labels, value: Number(l.slice(l.lastIndexOf(' ') + 1)) };
    });
}

describe('proxy telemetry', () => {
  test('client side: Istio labels from the cluster, the picked endpoint and the caller identity', () => {
    const { t } = setup();
    for (let i = 0; i < 3; i++) t.onRequestDone(stats({}));
    t.onRequestDone(stats({ status: 503, responseFlags: 'UO', upstreamHost: undefined }));
    const text = renderPrometheus(t.snapshot());
    const reqs = series(text, 'istio_requests_total');
    const ok = reqs.find((s) => s.labels.response_code === '200');
    assert.equal(ok?.value, 3);
    assert.deepEqual(Object.fromEntries(Object.entries(ok?.labels ?? {}).filter(([k]) => !k.includes('canonical'))), {
      reporter: 'source',
      source_workload: 'productpage-v1',
      source_workload_namespace: 'default',
      source_principal: PRODUCTPAGE,
      source_app: 'productpage',
      source_version: 'v1',
      destination_workload: 'reviews-v2',
      destination_workload_namespace: 'default',
      destination_principal: REVIEWS,
      destination_app: 'reviews',
      destination_version: 'v2',
      destination_service: 'reviews.default.mesh',
      destination_service_name: 'reviews',
      destination_service_namespace: 'default',
      connection_security_policy: 'unknown',
      request_protocol: 'http',
      response_code: '200',
      grpc_response_status: '',
      response_flags: '-',
    });
    assert.equal(reqs.find((s) => s.labels.response_code === '503')?.labels.destination_workload, 'unknown');
    assert.deepEqual(series(text, 'vmesh_proxy_circuit_breaker_overflows_total'), [
      { labels: { cluster: 'outbound|9080||reviews.default.mesh' }, value: 1 },
    ]);
    const buckets = series(text, 'istio_request_duration_milliseconds_bucket').filter((s) => s.labels.response_code === '200');
    assert.equal(buckets.find((b) => b.labels.le === '1')?.value, 0);
    assert.equal(buckets.find((b) => b.labels.le === '5')?.value, 3);
    assert.equal(buckets.find((b) => b.labels.le === '+Inf')?.value, 3);
    assert.match(text, /^vmesh_proxy_active_connections 7$/m);
  });

  test('server side: the peer identity names the source, the chain certificate the destination, mTLS is reported', () => {
    const { t } = setup();
    t.onRequestDone(
      stats({
        statPrefix: 'inbound_9080',
        cluster: 'inbound|9080||',
        upstreamHost: '127.0.0.1:9080',
        peerIdentity: REVIEWS,
        localIdentity: PRODUCTPAGE,
        status: 404,
      }),
    );
    const [s] = series(renderPrometheus(t.snapshot()), 'istio_requests_total');
    assert.equal(s?.value, 1);
    assert.equal(s?.labels.reporter, 'destination');
    // reviews-v1 and reviews-v2 share the service account: the identity cannot say which one called.
    assert.equal(s?.labels.source_workload, 'unknown');
    assert.equal(s?.labels.source_workload_namespace, 'default');
    assert.equal(s?.labels.source_principal, REVIEWS);
    assert.equal(s?.labels.destination_workload, 'productpage-v1');
    assert.equal(s?.labels.destination_principal, PRODUCTPAGE);
    assert.equal(s?.labels.destination_service, 'productpage.default.mesh');
    assert.equal(s?.labels.connection_security_policy, 'mutual_tls');
  });

  test('access log: one JSON line per request with Envoy fields and both principals', () => {
    const { t, lines } = setup();
    t.onRequestDone(stats({ requestId: 'abc' }));
    const [l] = lines();
    assert.equal(l?.response_code, 200);
    assert.equal(l?.path, '/reviews/1');
    assert.equal(l?.x_request_id, 'abc');
    assert.equal(l?.upstream_cluster, 'outbound|9080||reviews.default.mesh');
    assert.equal(l?.upstream_host, '198.18.0.12:9081');
    assert.equal(l?.source_principal, PRODUCTPAGE);
    assert.equal(l?.destination_principal, REVIEWS);
    assert.ok(!Number.isNaN(Date.parse(String(l?.start_time))));
  });

  test('access_log entries compile with their status filter (protobufjs oneof form) and refuse other loggers', () => {
    const typed = { '@type': TypedConfigUrl.stdoutAccessLog };
    const [e] = compileAccessLogs(
      [
        {
          name: 'envoy.access_loggers.stdout',
          typed_config: typed,
          filter: {
            filter_specifier: 'status_code_filter',
            status_code_filter: { comparison: { op: 'GE', value: { default_value: 400, runtime_key: 'k' } } },
          },
        },
      ],
      'access_log',
    );
    assert.deepEqual(e, { statusFilter: { op: 'GE', value: 400 } });
    assert.equal(accessLogWants(e ?? {}, 404), true);
    assert.equal(accessLogWants(e ?? {}, 200), false);
    const file = { name: 'envoy.access_loggers.file', typed_config: { '@type': TypedConfigUrl.fileAccessLog }, filter: null };
    assert.throws(() => compileAccessLogs([file], 'access_log'), /stdout only/);
    const byDuration = { name: 'envoy.access_loggers.stdout', typed_config: typed, filter: { duration_filter: { comparison: null } } };
    assert.throws(() => compileAccessLogs([byDuration], 'access_log'), /status_code_filter/);
  });

  test('snapshots from several workers sum series by label tuple', () => {
    const mk = (n: number) => {
      const r = new MetricsRegistry();
      const c = r.counter('c_total', 'c', ['a']);
      c.get(['x']).value += n;
      c.get([`only${n}`]).value += 1;
      const h = r.histogram('h', 'h', ['a'], [1, 10]);
      h.observe(h.get(['x']), n);
      return r.snapshot();
    };
    const text = renderPrometheus(mergeSnapshots([mk(2), mk(20)]));
    assert.match(text, /^c_total\{a="x"\} 22$/m);
    assert.match(text, /^c_total\{a="only2"\} 1$/m);
    assert.match(text, /^h_bucket\{a="x",le="10"\} 1$/m);
    assert.match(text, /^h_bucket\{a="x",le="\+Inf"\} 2$/m);
    assert.match(text, /^h_sum\{a="x"\} 22$/m);
    assert.match(text, /^# TYPE h histogram$/m);
  });
});
