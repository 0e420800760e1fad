import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type ConsulInstance,
  consulLabels,
  consulServiceAccount,
  parseCatalogServices,
  parseHealthEntries,
} from '../../../src/discovery/consul-instance.js';

function inst(over: Partial<ConsulInstance> = {}): ConsulInstance {
  return { service: 'reviews', id: 'reviews-1', node: 'h1', address: '198.18.0.1', port: 9080, tags: [], meta: {}, healthy: true, ...over };
}

function entry(
  id: string,
  node: string,
  over: { svcAddr?: string; checks?: unknown; tags?: unknown; meta?: unknown; port?: unknown } = {},
) {
  return {
    Node: { Node: node, Address: `198.18.0.${node.slice(1)}` },
    Service: {
      ID: id,
      Service: 'reviews',
      Address: over.svcAddr ?? '',
      Port: over.port ?? 9080,
      Tags: over.tags ?? null,
      Meta: over.meta ?? null,
    },
    Checks: over.checks ?? [{ Status: 'passing' }, { Status: 'passing' }],
  };
}

test('consulLabels: key=value tags and meta become labels, a v-tag names the version unless something explicit does', () => {
  assert.deepEqual(consulLabels(inst({ tags: ['v2', 'zone=a', 'primary', '=x'], meta: { team: 'books' } })), {
    zone: 'a',
    team: 'books',
    version: 'v2',
  });
  assert.deepEqual(consulLabels(inst({ tags: ['v2'], meta: { version: 'v3' } })), { version: 'v3' });
  assert.deepEqual(consulLabels(inst({ tags: ['version=v4', 'v2'] })), { version: 'v4' });
  assert.deepEqual(consulLabels(inst({ tags: ['zone=a'], meta: { zone: 'b' } })), { zone: 'b' }); // meta wins
  assert.deepEqual(consulLabels(inst({ tags: ['vault', 'x=1=2'] })), { x: '1=2' }); // `vault` is no version
});

test('consulServiceAccount: vmesh meta, then generic meta, then the service name', () => {
  assert.equal(consulServiceAccount(inst()), 'reviews');
  assert.equal(consulServiceAccount(inst({ meta: { 'service-account': 'bookinfo-reviews' } })), 'bookinfo-reviews');
  assert.equal(consulServiceAccount(inst({ meta: { 'service-account': 'a', 'vmesh-service-account': 'b' } })), 'b');
  assert.equal(consulServiceAccount(inst({ meta: { 'vmesh-service-account': '' } })), 'reviews');
});

test('parseHealthEntries: address fallback, null collections, health from every check, sorted output', () => {
  const { instances, skipped } = parseHealthEntries('reviews', [
    entry('reviews-2', 'h2', { checks: [{ Status: 'passing' }, { Status: 'warning' }] }),
    entry('reviews-1', 'h1', { svcAddr: '198.18.9.9', tags: ['v1'], meta: { a: 'b' } }),
    entry('reviews-3', 'h3', { checks: null }),
  ]);
  assert.deepEqual(skipped, []);
  assert.deepEqual(
    instances.map((i) => [i.id, i.address, i.healthy, i.tags, i.meta]),
    [
      ['reviews-1', '198.18.9.9', true, ['v1'], { a: 'b' }],
      ['reviews-2', '198.18.0.2', false, [], {}],
      ['reviews-3', '198.18.0.3', true, [], {}],
    ],
  );
  assert.ok(Object.isFrozen(instances[0]) && Object.isFrozen(instances[0]?.tags));
});

test('parseHealthEntries: bad entries are skipped with a reason, a bad body is an error', () => {
  const { instances, skipped } = parseHealthEntries('reviews', [
    entry('ok', 'h1'),
    entry('bad-port', 'h2', { port: 70000 }),
    { ...entry('other', 'h3'), Service: { ...entry('other', 'h3').Service, Service: 'ratings' } },
    { Node: { Node: 'h4', Address: '' }, Service: { ID: 'noaddr', Service: 'reviews', Address: '', Port: 1 } },
    42,
  ]);
  assert.deepEqual(
    instances.map((i) => i.id),
    ['ok'],
  );
  assert.equal(skipped.length, 4);
  assert.match(skipped[0] ?? '', /Service\.Port/);
  assert.match(skipped[1] ?? '', /ratings/);
  assert.match(skipped[2] ?? '', /neither Service.Address nor Node.Address/);
  assert.throws(() => parseHealthEntries('reviews', { not: 'an array' }), { code: 'VMESH_ERR_CONSUL_UNAVAILABLE' });
});

test('parseCatalogServices: sorted names; anything but a name -> tags map is an error', () => {
  assert.deepEqual(parseCatalogServices({ web: ['a'], consul: [], db: null }), ['consul', 'db', 'web']);
  assert.throws(() => parseCatalogServices(['web']), /catalog\/services/);
  assert.throws(() => parseCatalogServices({ web: 'a' }), /catalog\/services/);
});
