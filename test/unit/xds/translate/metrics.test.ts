import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { Resource } from '../../../../src/api/resource.js';
import { parseResources } from '../../../../src/api/resource-parse.js';
import type { NetworkAction, StatsConfig } from '../../../../src/proxy/proxy-config.js';
import { buildListeners } from '../../../../src/xds/translate/listeners.js';
import { STATS_FILTER, statsMetricsFor } from '../../../../src/xds/translate/metrics.js';
import { assertGolden } from '../../../support/golden.js';
import { compileTranslated } from '../../../support/proxy-fixtures.js';
import { bookinfoInput, bookinfoResources } from './fixture.js';

function parse(yaml: string): Resource[] {
  const r = parseResources(yaml, { source: 'test.yaml' });
  if (!r.ok) throw new Error(JSON.stringify(r.error));
  return r.value;
}

const tel = (name: string, ns: string, spec: string) =>
  `apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: ${name}, namespace: ${ns}}\nspec:\n${spec}\n---\n`;

/** Istio's layering cases: each is a set of Telemetry resources; the golden holds the merged stats config per side. */
const CASES: Record<string, string> = {
  'root disables a metric, upserts and removes tags': tel(
    'mesh',
    'vmesh-system',
    `  metrics:
  - providers: [{name: prometheus}]
    overrides:
    - match: {metric: REQUEST_DURATION}
      disabled: true
    - match: {metric: REQUEST_COUNT, mode: CLIENT}
      tagOverrides:
        request_method: {value: request.method}
        user: {value: "request.headers['x-user'] | 'anonymous'"}
    - match: {metric: ALL_METRICS}
      tagOverrides:
        grpc_response_status: {operation: REMOVE}`,
  ),
  'namespace layers on root; later overrides win tag by tag': `${tel(
    'mesh',
    'vmesh-system',
    `  metrics:
  - overrides:
    - tagOverrides:
        request_method: {value: request.method}`,
  )}${tel(
    'ns',
    'default',
    `  metrics:
  - overrides:
    - match: {metric: REQUEST_COUNT}
      tagOverrides:
        request_method: {operation: REMOVE}
      disabled: false
    - match: {customMetric: my_metric}
      tagOverrides:
        x: {value: "'literal'"}`,
  )}`,
  'all metrics off at the root, back on for the namespace, off again for one workload server side': `${tel(
    'mesh',
    'vmesh-system',
    `  metrics:
  - overrides:
    - match: {metric: ALL_METRICS}
      disabled: true`,
  )}${tel(
    'ns',
    'default',
    `  metrics:
  - overrides:
    - match: {metric: TCP_SENT_BYTES}
      disabled: true`,
  )}${tel(
    'productpage',
    'default',
    `  selector: {matchLabels: {app: productpage}}
  metrics:
  - overrides:
    - match: {mode: SERVER}
      disabled: true`,
  )}`,
};

describe('Telemetry metric overrides to the istio.stats filter', () => {
  test('merged per side as Istio merges them (golden)', () => {
    const out: Record<string, unknown> = {};
    for (const [name, yaml] of Object.entries(CASES)) {
      const input = bookinfoInput('h1', { resources: [...bookinfoResources(), ...parse(yaml)] });
      const server = { mode: 'SERVER' as const, namespace: 'default', labels: { app: 'productpage', version: 'v1' } };
      out[name] = {
        CLIENT: statsMetricsFor(input, { mode: 'CLIENT', namespace: 'default', labels: {} }) ?? null,
        SERVER: statsMetricsFor(input, server) ?? null,
      };
    }
    assertGolden(join(import.meta.dirname, 'golden', 'metrics-h1.json'), `${JSON.stringify(out, null, 2)}\n`);
  });

  test('no Telemetry metrics: no istio.stats filter on any listener of any node', () => {
    for (const node of ['h1', 'h2', 'gw'] as const) {
      assert.ok(!JSON.stringify(buildListeners(bookinfoInput(node))).includes(STATS_FILTER), node);
    }
  });

  test('the proxy compiles the filter: HTTP and TCP chains of both sides carry the overrides', () => {
    const yaml = `${CASES['root disables a metric, upserts and removes tags']}${tel(
      'tcp',
      'default',
      `  metrics:
  - overrides:
    - match: {metric: TCP_OPENED_CONNECTIONS, mode: SERVER}
      disabled: true`,
    )}`;
    const config = compileTranslated(bookinfoInput('h1', { resources: [...bookinfoResources(), ...parse(yaml)] }));
    const seen: Array<{ kind: NetworkAction['kind']; stats: StatsConfig }> = [];
    for (const l of config.listeners.values()) {
      for (const c of [...l.filterChains, ...(l.defaultChain ? [l.defaultChain] : [])]) {
        const stats = c.action.kind === 'http' ? c.action.filters.stats : c.action.stats;
        if (stats) seen.push({ kind: c.action.kind, stats });
      }
    }
    assert.ok(seen.some((s) => s.kind === 'http'));
    assert.ok(seen.some((s) => s.kind === 'tcp'));
    const http = seen.find((s) => s.kind === 'http' && s.stats.metrics.get('requests_total')?.upsert.length === 2)?.stats;
    assert.ok(http, 'a client-side HTTP chain upserts two tags on requests_total');
    assert.equal(http.metrics.get('request_duration_milliseconds')?.drop, true);
    assert.deepEqual(http.metrics.get('requests_total')?.remove, ['grpc_response_status']);
    assert.equal(http.expressions.length, 2);
  });
});
