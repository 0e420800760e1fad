// Micro-benchmark: the per-request cost of the proxy's telemetry hook (Istio metrics; with and without an access
// log line), on the fixture node h1's compiled config. `node --import tsx test/bench/proxy/telemetry-cost.ts`
import { PassThrough, Writable } from 'node:stream';
import { createAccessLogger } from '../../../src/lib/logger.js';
import type { RequestStats } from '../../../src/proxy/http/types.js';
import { ProxyTelemetry } from '../../../src/proxy/telemetry/proxy-telemetry.js';
import { compileTranslated, requestStats } from '../../support/proxy-fixtures.js';
import { bookinfoInput } from '../../unit/xds/translate/fixture.js';

const compiled = compileTranslated(bookinfoInput('h1'));

const sink = new Writable({ write: (_c, _e, cb) => cb() });
function telemetry(accessLog: boolean): ProxyTelemetry {
  const t = new ProxyTelemetry({
    secrets: { tlsCertificate: () => undefined, trustedCa: () => undefined, onChange: () => () => {} },
    logger: createAccessLogger(new PassThrough()),
    ...(accessLog ? { accessLog: createAccessLogger(sink) } : {}),
    internals: { activeConnections: () => 0, clusters: () => [], inUse: () => 0, ejections: () => ({ ejected: 0, total: 0 }) },
  });
  t.setConfig(compiled);
  return t;
}
const hosts = ['198.18.0.12:9080', '198.18.0.12:9081'];
const codes = [200, 200, 200, 404, 503];
const make = (i: number): RequestStats =>
  requestStats({
    path: `/r/${i}`,
    status: codes[i % 5] as number,
    bytesOut: 1024,
    durationMs: (i % 50) / 3,
    upstreamHost: hosts[i % 2],
    requestId: 'id',
    localIdentity: 'spiffe://cluster.local/ns/default/sa/productpage',
  });
// Pre-built stats objects: the hook's cost only (the proxy builds this object anyway).
const reqs = Array.from({ length: 1000 }, (_, i) => make(i));
for (const [name, t] of [
  ['metrics only', telemetry(false)],
  ['metrics + access log line', telemetry(true)],
] as const) {
  for (let i = 0; i < 200_000; i++) t.onRequestDone(reqs[i % 1000] as RequestStats);
  const n = 1_000_000;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) t.onRequestDone(reqs[i % 1000] as RequestStats);
  const ns = Number(process.hrtime.bigint() - t0) / n;
  console.log(`${name.padEnd(28)} ${ns.toFixed(0).padStart(6)} ns/request`);
}
