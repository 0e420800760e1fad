import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type DescriptorSource, descriptorsOf, RateLimiters, routeAllows } from '../../../../src/proxy/http/rate-limit.js';
import type { LocalRateLimit, RouteRateLimit } from '../../../../src/proxy/proxy-config.js';

// Envoy's local rate limit with descriptors: what a request's rate_limits actions produce, which configured
// descriptors it matches, and which buckets it takes from.

const bucket = (maxTokens: number): LocalRateLimit => ({ maxTokens, tokensPerFill: maxTokens, fillIntervalMs: 60_000, status: 429 });

function req(path: string, headers: Record<string, string> = {}, remote = '198.18.0.12'): DescriptorSource {
  return {
    method: 'GET',
    path,
    authority: 'pp',
    scheme: 'http',
    header: (n) => headers[n],
    remote: { address: remote },
    cluster: 'inbound|9080||',
  };
}

const byUser: RouteRateLimit['actions'] = [
  [{ kind: 'request_headers', header: 'x-user', key: 'user', skipIfAbsent: false }],
  [
    { kind: 'generic_key', key: 'generic_key', value: 'all' },
    { kind: 'request_headers', header: 'x-tier', key: 'tier', skipIfAbsent: true },
  ],
  [{ kind: 'remote_address' }, { kind: 'destination_cluster' }],
];

describe('rate_limits actions', () => {
  test('an absent header drops its descriptor unless skip_if_absent; the others are built in order', () => {
    assert.deepEqual(descriptorsOf(byUser, req('/')), [
      [['generic_key', 'all']],
      [
        ['remote_address', '198.18.0.12'],
        ['destination_cluster', 'inbound|9080||'],
      ],
    ]);
    assert.deepEqual(descriptorsOf(byUser, req('/', { 'x-user': 'ann', 'x-tier': 'gold' })).slice(0, 2), [
      [['user', 'ann']],
      [
        ['generic_key', 'all'],
        ['tier', 'gold'],
      ],
    ]);
  });
});

describe('descriptor buckets', () => {
  const rl = (extra: Partial<RouteRateLimit> = {}): RouteRateLimit => ({
    bucket: bucket(100),
    descriptors: [{ entries: [['user', '']], bucket: bucket(2) }],
    alwaysConsumeDefault: true,
    actions: byUser,
    limitedHeaders: [],
    status: 429,
    ...extra,
  });

  test('an empty configured value matches any value of its key; each config keeps its own buckets', () => {
    const limiters = new RateLimiters(() => 0);
    const cfg = rl();
    const ann = req('/', { 'x-user': 'ann' });
    assert.equal(routeAllows(limiters, cfg, ann), true);
    assert.equal(routeAllows(limiters, cfg, ann), true);
    assert.equal(routeAllows(limiters, cfg, ann), false, 'the descriptor bucket (2) is empty');
    assert.equal(routeAllows(limiters, cfg, req('/')), true, 'no x-user: only the default bucket');
    assert.equal(routeAllows(new RateLimiters(() => 0), cfg, ann), true, 'a new proxy has full buckets');
  });

  test('the default bucket is taken too, unless always_consume_default_token_bucket is false and a descriptor matched', () => {
    const limiters = new RateLimiters(() => 0);
    const both = rl({ bucket: bucket(1), descriptors: [{ entries: [['user', 'ann']], bucket: bucket(5) }] });
    assert.equal(routeAllows(limiters, both, req('/', { 'x-user': 'ann' })), true);
    assert.equal(routeAllows(limiters, both, req('/', { 'x-user': 'ann' })), false, 'default bucket (1) spent');
    const descriptorOnly = rl({
      bucket: bucket(1),
      descriptors: [{ entries: [['user', 'ann']], bucket: bucket(5) }],
      alwaysConsumeDefault: false,
    });
    const l2 = new RateLimiters(() => 0);
    for (let i = 0; i < 5; i++) assert.equal(routeAllows(l2, descriptorOnly, req('/', { 'x-user': 'ann' })), true, `request ${i + 1}`);
    assert.equal(routeAllows(l2, descriptorOnly, req('/', { 'x-user': 'bob' })), true, 'bob matches no descriptor: the default bucket');
    assert.equal(routeAllows(l2, descriptorOnly, req('/', { 'x-user': 'bob' })), false);
  });
});
