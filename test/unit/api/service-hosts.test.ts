import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DEFAULT_MESH_CONFIG, parseMeshConfig } from '../../../src/api/mesh-config.js';
import { canonicalHost, hostMatches, isMeshHost, splitMeshHost } from '../../../src/api/service-hosts.js';

const mesh = DEFAULT_MESH_CONFIG;

describe('canonicalHost', () => {
  const cases: Array<[string, string, string]> = [
    ['reviews', 'default', 'reviews.default.mesh'],
    ['reviews', 'bookinfo', 'reviews.bookinfo.mesh'],
    ['reviews.prod', 'default', 'reviews.prod.mesh'],
    ['reviews.prod.svc.cluster.local', 'default', 'reviews.prod.mesh'],
    ['reviews.prod.mesh', 'default', 'reviews.prod.mesh'],
    ['Reviews.Prod.SVC.cluster.local.', 'default', 'reviews.prod.mesh'],
    ['api.example.com', 'default', 'api.example.com'],
    ['db.internal.corp', 'default', 'db.internal.corp'],
    ['API.Example.com.', 'default', 'api.example.com'],
    ['*', 'default', '*'],
    ['*.example.com', 'default', '*.example.com'],
    ['*.prod.svc.cluster.local', 'default', '*.prod.mesh'],
    ['*.svc.cluster.local', 'default', '*.mesh'],
    ['*x', 'default', '*x'],
    ['*-db.example.com', 'default', '*-db.example.com'],
    ['*db.prod.svc.cluster.local', 'default', '*db.prod.mesh'],
    ['198.18.0.7', 'default', '198.18.0.7'],
    ['2001:db8::1', 'default', '2001:db8::1'],
  ];
  for (const [host, ns, want] of cases) {
    test(`${host} in ${ns} -> ${want}`, () => {
      assert.equal(canonicalHost(host, ns, mesh), want);
    });
  }

  test('follows a configured domain and aliases', () => {
    const custom = parseMeshConfig({ dnsDomain: 'corp.internal', dnsDomainAliases: ['svc.cluster.local', 'consul'] }, 'test');
    assert.equal(canonicalHost('reviews', 'prod', custom), 'reviews.prod.corp.internal');
    assert.equal(canonicalHost('reviews.prod.consul', 'x', custom), 'reviews.prod.corp.internal');
    assert.equal(canonicalHost('reviews.prod.svc.cluster.local', 'x', custom), 'reviews.prod.corp.internal');
    assert.equal(canonicalHost('reviews.prod.mesh', 'x', custom), 'reviews.prod.mesh', 'the default domain is not special once replaced');
  });

  test('is idempotent', () => {
    for (const h of ['reviews', 'reviews.prod', 'reviews.prod.svc.cluster.local', 'api.example.com', '*.prod.svc.cluster.local']) {
      const once = canonicalHost(h, 'ns1', mesh);
      assert.equal(canonicalHost(once, 'ns2', mesh), once, h);
    }
  });
});

describe('isMeshHost', () => {
  test('short names and names under the domain or an alias are mesh hosts', () => {
    for (const h of [
      'reviews',
      'reviews.prod',
      'reviews.prod.mesh',
      'reviews.prod.svc.cluster.local',
      '*.prod.mesh',
      '*.svc.cluster.local',
    ]) {
      assert.equal(isMeshHost(h, mesh), true, h);
    }
  });
  test('external names, IPs and * are not', () => {
    for (const h of ['api.example.com', '*.example.com', '*', '198.18.0.1', 'db.internal.corp']) {
      assert.equal(isMeshHost(h, mesh), false, h);
    }
  });
});

describe('splitMeshHost', () => {
  test('splits canonical mesh hosts', () => {
    assert.deepEqual(splitMeshHost('reviews.prod.mesh'), { name: 'reviews', namespace: 'prod' });
    assert.deepEqual(splitMeshHost('a.b.corp.internal', { dnsDomain: 'corp.internal' }), { name: 'a', namespace: 'b' });
  });
  test('refuses external hosts, wildcards and odd shapes', () => {
    for (const h of ['api.example.com', '*.prod.mesh', 'prod.mesh', 'a.b.c.mesh', 'reviews.prod.svc.cluster.local']) {
      assert.equal(splitMeshHost(h), undefined, h);
    }
  });
});

describe('hostMatches', () => {
  test('exact, wildcard suffix and *', () => {
    assert.ok(hostMatches('reviews.prod.mesh', 'reviews.prod.mesh'));
    assert.ok(hostMatches('*.prod.mesh', 'reviews.prod.mesh'));
    assert.ok(hostMatches('*.mesh', 'reviews.prod.mesh'));
    assert.ok(hostMatches('*', 'anything.example.com'));
    assert.ok(hostMatches('*.example.com', '*.api.example.com'));
    assert.ok(!hostMatches('*.example.com', 'example.com'));
    assert.ok(!hostMatches('reviews.prod.mesh', '*.prod.mesh'));
    assert.ok(!hostMatches('*.prod.mesh', 'reviews.dev.mesh'));
  });

  test("partial wildcards match as Envoy's suffix wildcards: the * stands for at least one character", () => {
    assert.ok(hostMatches('*x', 'box'));
    assert.ok(hostMatches('*x', 'a.b.x'));
    assert.ok(!hostMatches('*x', 'x'));
    assert.ok(!hostMatches('*x', 'xy'));
    assert.ok(hostMatches('*-db.example.com', 'orders-db.example.com'));
    assert.ok(!hostMatches('*-db.example.com', '-db.example.com'));
    assert.ok(!hostMatches('*-db.example.com', 'db.example.com'));
    assert.ok(hostMatches('*.example.com', '*-db.example.com'), 'every name *-db.example.com stands for is under .example.com');
    assert.ok(!hostMatches('*-db.example.com', '*.example.com'));
    assert.ok(!hostMatches('*x', '*'));
  });
});
