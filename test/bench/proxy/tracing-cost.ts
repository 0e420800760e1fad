// Micro-benchmark: what tracing adds to a request in the proxy — reading the caller's context and starting this
// proxy's span, writing W3C and B3 headers upstream, and building the span record of a sampled request.
// Median of 5 rounds of 500k each; prints a table and writes test/bench/results/tracing-cost.json.
// `node --import tsx test/bench/proxy/tracing-cost.ts`
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { injectTrace, startTrace } from '../../../src/proxy/http/trace-context.js';
import type { RequestStats } from '../../../src/proxy/http/types.js';
import type { TracingConfig } from '../../../src/proxy/proxy-config.js';
import { spanFromRequest } from '../../../src/proxy/telemetry/span.js';
import { requestStats } from '../../support/proxy-fixtures.js';

const HEAD = ['host', 'user-agent', 'accept', 'x-request-id'];
const HEAD_VALUES = ['reviews:9080', 'curl/7.88', '*/*', '1b4e28ba-2fa1-11d2-883f-0016d3cca427'];
const TP = ['traceparent', '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'];
const withTp = { names: [...HEAD, TP[0] as string], values: [...HEAD_VALUES, TP[1] as string] };
const tracing: TracingConfig = {
  sampling: 0.01,
  useRequestId: true,
  spanKind: 'CLIENT',
  maxTagLength: 256,
  tags: [],
  exporter: { protocol: 'grpc', cluster: 'c', path: '', authority: 'c', timeoutMs: 1000, headers: {}, serviceName: 's' },
};
const labels = {
  reporter: 'source',
  sourceCanonicalService: 'productpage',
  sourceNamespace: 'default',
  destinationCanonicalService: 'reviews',
  destinationNamespace: 'default',
  destinationService: 'reviews.default.mesh',
};
const stats = (trace: ReturnType<typeof startTrace>): RequestStats => requestStats({ bytesOut: 1024, durationMs: 3, trace });

// Each case returns a number folded into `sink`, so no work is optimised away.
const cases: Array<[string, () => number]> = [
  ['start a trace, no incoming context (1% sampled)', () => startTrace(HEAD, HEAD_VALUES, 0.01, Math.random).spanId.length],
  ['continue an incoming traceparent', () => startTrace(withTp.names, withTp.values, 0.01, Math.random).spanId.length],
  [
    'continue + write W3C and B3 upstream',
    () => {
      const n = [...HEAD];
      const v = [...HEAD_VALUES];
      injectTrace(n, v, startTrace(withTp.names, withTp.values, 0.01, Math.random));
      return n.length;
    },
  ],
  [
    'build the span record of a sampled request',
    () => {
      const t = startTrace(withTp.names, withTp.values, 1, Math.random);
      return spanFromRequest(stats(t), tracing, tracing.exporter as NonNullable<TracingConfig['exporter']>, labels, {}).name.length;
    },
  ],
];

let sink = 0;
const N = 500_000;
const rows: Array<{ case: string; nsPerRequest: number }> = [];
for (const [name, fn] of cases) {
  for (let i = 0; i < 100_000; i++) sink += fn();
  const rounds: number[] = [];
  for (let r = 0; r < 5; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < N; i++) sink += fn();
    rounds.push(Number(process.hrtime.bigint() - t0) / N);
  }
  rounds.sort((a, b) => a - b);
  rows.push({ case: name, nsPerRequest: Math.round(rounds[2] as number) });
}
console.log(`${'case'.padEnd(48)} ns/request (median of 5)`);
for (const r of rows) console.log(`${r.case.padEnd(48)} ${String(r.nsPerRequest).padStart(8)}`);
const dir = join(import.meta.dirname, '..', 'results');
mkdirSync(dir, { recursive: true });
writeFileSync(join(dir, 'tracing-cost.json'), `${JSON.stringify({ at: new Date().toISOString(), rows, sink: sink > 0 }, null, 2)}\n`);
