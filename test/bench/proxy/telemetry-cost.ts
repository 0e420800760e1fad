// Micro-benchmark: the per-request cost of the proxy's telemetry hook (Istio metrics; with and without an access
// log line), on the fixture node h1's compiled config. `node --import tsx test/bench/proxy/telemetry-cost.ts`
import { PassThrough, Writable } from 'node:stream';
import { createAccessLogger } from '../../../src/lib/logger.js';
import { compileProxyConfig } from '../../../src/proxy/compile/index.js';
import type { RequestStats } from '../../../src/proxy/http/types.js';
import { ProxyTelemetry } from '../../../src/proxy/telemetry/proxy-telemetry.js';
import { decodeAnyDeep } from '../../../src/xds/decode-deep.js';
import { makeSnapshot } from '../../../src/xds/snapshot.js';
import { translateNode } from '../../../src/xds/translate/index.js';
import { CDS, EDS, LDS, RDS } from '../../../src/xds/type-urls.js';
import { bookinfoInput } from '../../unit/xds/translate/fixture.js';

const snap = makeSnapshot('v1', translateNode(bookinfoInput('h1')));
const resources: Record<string, Record<string, unknown>> = {};
for (const t of [CDS, EDS, LDS, RDS])
  resources[t] = Object.fromEntries([...(snap.resources.get(t) ?? new Map())].map(([n, r]) => [n, decodeAnyDeep(r.any)]));
const compiled = compileProxyConfig({ versions: {}, resources, updatedAt: '' });
if (!compiled.ok) throw new Error(compiled.error);

const sink = new Writable({ write: (_c, _e, cb) => cb() });
function telemetry(accessLog: boolean): ProxyTelemetry {
  const t = new ProxyTelemetry({
    secrets: { tlsCertificate: () => undefined, trustedCa: () => undefined, onChange: () => () => {} },
    logger: createAccessLogger(new PassThrough()),
    ...(accessLog ? { accessLog: createAccessLogger(sink) } : {}),
    internals: { activeConnections: () => 0, clusters: () => [], inUse: () => 0, ejections: () => ({ ejected: 0, total: 0 }) },
  });
  if (compiled.ok) t.setConfig(compiled.value);
  return t;
}
const hosts = ['198.18.0.12:9080', '198.18.0.12:9081'];
const codes = [200, 200, 200, 404, 503];
const make = (i: number): RequestStats => ({
  method: 'GET',
  path: `/r/${i}`,
  authority: 'reviews:9080',
  protocol: 'HTTP/1.1',
  status: codes[i % 5] as number,
  responseFlags: '-',
  bytesIn: 0,
  bytesOut: 1024,
  durationMs: (i % 50) / 3,
  upstreamHost: hosts[i % 2],
  cluster: 'outbound|9080||reviews.default.mesh',
  routeName: 'default',
  peerIdentity: undefined,
  downstreamRemote: '198.18.0.11:40000',
  requestId: 'id',
  attempts: 1,
  statPrefix: 'outbound_240.240.0.4_9080',
  localIdentity: 'spiffe://cluster.local/ns/default/sa/productpage',
  grpc: false,
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
