import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Resource } from '../../../../src/api/resource.js';
import { parseResources } from '../../../../src/api/resource-parse.js';
import { isVmeshError } from '../../../../src/lib/errors.js';
import { decodeMessage, encodeMessage } from '../../../../src/xds/index.js';
import { httpFiltersFor, localRateLimitFor } from '../../../../src/xds/translate/http-filters.js';
import type { TranslateInput } from '../../../../src/xds/translate/input.js';
import { inlineAny } from '../../../support/envoy-tree.js';
import { bookinfoInput, bookinfoResources } from './fixture.js';

type NodeId = 'h1' | 'h2' | 'gw';

function parse(yaml: string): Resource[] {
  const r = parseResources(yaml, { source: 'test.yaml' });
  if (!r.ok) throw new Error(JSON.stringify(r.error));
  return r.value;
}

function inputWith(node: NodeId, yaml: string, drop: (r: Resource) => boolean = () => false): TranslateInput {
  const extra = parse(yaml);
  const key = (r: Resource) => `${r.kind}/${r.metadata.namespace}/${r.metadata.name}`;
  const replaced = new Set(extra.map(key));
  return bookinfoInput(node, { resources: [...bookinfoResources().filter((r) => !replaced.has(key(r)) && !drop(r)), ...extra] });
}

const HCM = 'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';

/** The filters must encode inside a real HttpConnectionManager. */
function encodeInHcm(filters: readonly object[]): Record<string, unknown> {
  const hcm = {
    stat_prefix: 'test',
    rds: { route_config_name: '9080', config_source: { ads: {}, resource_api_version: 'V3' } },
    http_filters: filters,
  };
  return decodeMessage(HCM, encodeMessage(HCM, hcm));
}

const REVIEWS_LIMIT = `apiVersion: vmesh.io/v1alpha1
kind: LocalRateLimit
metadata: {name: reviews-limit, namespace: default}
spec:
  selector: {matchLabels: {app: reviews, version: v2}}
  tokenBucket: {maxTokens: 20, tokensPerFill: 5, fillInterval: 500ms}
  statusCode: 503
---
apiVersion: vmesh.io/v1alpha1
kind: LocalRateLimit
metadata: {name: mesh-wide, namespace: vmesh-system}
spec:
  tokenBucket: {maxTokens: 1000, fillInterval: 1s}
`;

describe('httpFiltersFor', () => {
  test('outbound: fault first when a route behind the listener injects faults, router last; only there', () => {
    const input = bookinfoInput('h1');
    const only = (route: string) => httpFiltersFor(input, { direction: 'outbound', port: 9080, route }).map((f) => f.name);
    // ratings' VirtualService injects faults; reviews on the same port has its own route config and no fault filter.
    assert.deepEqual(only('reviews.default.mesh:9080'), ['envoy.filters.http.router']);
    const filters = httpFiltersFor(input, { direction: 'outbound', port: 9080, route: 'ratings.default.mesh:9080' });
    assert.deepEqual(
      filters.map((f) => f.name),
      ['envoy.filters.http.fault', 'envoy.filters.http.router'],
    );
    // Empty: each route's own typed_per_filter_config decides.
    assert.deepEqual(filters[0]?.typed_config, { '@type': 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault' });
    encodeInHcm(filters);
  });

  test('outbound: no fault filter when no route on the port uses fault', () => {
    const input = inputWith('h1', '', (r) => r.kind === 'VirtualService' && r.metadata.name === 'ratings');
    assert.deepEqual(
      httpFiltersFor(input, { direction: 'outbound', port: 9080, route: 'ratings.default.mesh:9080' }).map((f) => f.name),
      ['envoy.filters.http.router'],
    );
  });

  test('inbound: the LocalRateLimit selecting the workload on the port, most specific first', () => {
    const input = inputWith('h2', REVIEWS_LIMIT);
    const v2 = httpFiltersFor(input, { direction: 'inbound', port: 9081 });
    assert.deepEqual(
      v2.map((f) => f.name),
      ['envoy.filters.http.local_ratelimit', 'envoy.filters.http.router'],
    );
    assert.deepEqual(v2[0]?.typed_config, {
      '@type': 'type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit',
      stat_prefix: 'local_rate_limit_9081',
      status: { code: 'ServiceUnavailable' },
      token_bucket: { max_tokens: 20, tokens_per_fill: { value: 5 }, fill_interval: { seconds: 0, nanos: 500_000_000 } },
      filter_enabled: { runtime_key: 'local_rate_limit_enabled', default_value: { numerator: 100, denominator: 'HUNDRED' } },
      filter_enforced: { runtime_key: 'local_rate_limit_enforced', default_value: { numerator: 100, denominator: 'HUNDRED' } },
    });
    const decoded = encodeInHcm(v2) as { http_filters: Array<{ name: string }> };
    assert.equal(decoded.http_filters.length, 2);
    // reviews-v1 (port 9080) is not selected by the v2 limit: the mesh-wide one applies.
    const v1 = httpFiltersFor(input, { direction: 'inbound', port: 9080 });
    const cfg = inlineAny(v1[0]?.typed_config);
    assert.equal((cfg.token_bucket as { max_tokens: number }).max_tokens, 1000);
    assert.equal((cfg.status as { code: string }).code, 'TooManyRequests');
  });

  test('inbound: explicit workloads decide, and no limit means just the router', () => {
    const input = inputWith('h2', REVIEWS_LIMIT);
    const v1 = input.node.workloads.find((w) => w.workload === 'reviews-v1');
    assert.ok(v1);
    assert.equal(localRateLimitFor(input, [v1])?.metadata.name, 'mesh-wide');
    assert.deepEqual(
      httpFiltersFor(bookinfoInput('h2'), { direction: 'inbound', port: 9080 }).map((f) => f.name),
      ['envoy.filters.http.router'],
    );
  });

  test('a ratelimit status Envoy has no name for is refused', () => {
    const input = inputWith(
      'h2',
      `apiVersion: vmesh.io/v1alpha1
kind: LocalRateLimit
metadata: {name: odd, namespace: default}
spec:
  tokenBucket: {maxTokens: 5, fillInterval: 1s}
  statusCode: 430
`,
    );
    assert.throws(
      () => httpFiltersFor(input, { direction: 'inbound', port: 9080 }),
      (e: unknown) => isVmeshError(e) && e.code === 'VMESH_ERR_UNSUPPORTED_FIELD' && e.message.includes('default/odd'),
    );
  });

  test('gateway: fault only when a gateway route on the port injects faults', () => {
    const input = bookinfoInput('gw');
    assert.deepEqual(
      httpFiltersFor(input, { direction: 'gateway', port: 8080 }).map((f) => f.name),
      ['envoy.filters.http.router'],
    );
    const withFault = inputWith(
      'gw',
      `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: bookinfo, namespace: default}
spec:
  hosts: ["bookinfo.example.com"]
  gateways: [bookinfo-gateway]
  http:
  - fault: {delay: {fixedDelay: 1s, percentage: {value: 100}}}
    route: [{destination: {host: productpage, port: {number: 9080}}}]
`,
    );
    for (const port of [8080, 8443]) {
      const filters = httpFiltersFor(withFault, { direction: 'gateway', port });
      assert.deepEqual(
        filters.map((f) => f.name),
        ['envoy.filters.http.fault', 'envoy.filters.http.router'],
      );
      encodeInHcm(filters);
    }
  });
});
