import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createLogger } from '../../../src/lib/logger.js';
import { decodeAnyDeep } from '../../../src/xds/decode-deep.js';
import { SnapshotCache, SnapshotPublisher } from '../../../src/xds/index.js';
import { type HostIdentity, isLocalResource, nodeInput, sharingKey, translateNode } from '../../../src/xds/translate/index.js';
import { CDS, EDS, LDS, WDS } from '../../../src/xds/type-urls.js';
import { bookinfoInput } from './translate/fixture.js';

function setup() {
  const base = bookinfoInput('h1');
  const cache = new SnapshotCache();
  const published: Array<{ nodeId: string; changed: boolean }> = [];
  const publisher = new SnapshotPublisher({
    cache,
    translate: translateNode,
    sharing: { key: sharingKey, isLocal: isLocalResource },
    logger: createLogger({ level: 'silent' }),
    onPublished: (ev) => published.push(ev),
    inputFor: (nodeId, m) => {
      const node = nodeId === 'h1' ? base.node : { ...base.node, id: nodeId, workloads: [], addresses: [] };
      return nodeInput(base.mesh, m, base.config, node);
    },
  });
  return { base, cache, published, publisher, setModel: (m: typeof base.model) => publisher.setModel(m) };
}

test('nodes get consistent snapshots; alike nodes share one; local resources stay local', () => {
  const s = setup();
  s.publisher.setModel(s.base.model);
  for (const n of ['h1', 'x1', 'x2']) s.publisher.ensureNode(n);
  const h1 = s.cache.getSnapshot('h1');
  const x1 = s.cache.getSnapshot('x1');
  const x2 = s.cache.getSnapshot('x2');
  assert.ok(h1 && x1 && x2);
  assert.equal(x1, x2, 'nodes without workloads share the very same snapshot object');
  assert.ok(h1.resources.get(CDS)?.has('outbound|9080|v1|reviews.default.mesh'));
  assert.ok(h1.resources.get(CDS)?.has('inbound|9080||'), 'h1 serves productpage on 9080');
  assert.equal(x1.resources.get(CDS)?.has('inbound|9080||'), false, 'x1 runs no workload');
  assert.ok(h1.resources.get(LDS)?.has('virtualInbound'));
  // The shared outbound part is byte-identical between the two kinds of node.
  const c = 'outbound|9080|v2|reviews.default.mesh';
  assert.equal(h1.resources.get(CDS)?.get(c)?.version, x1.resources.get(CDS)?.get(c)?.version);
});

test('a model change republishes only what changed; an identical model changes nothing', () => {
  const s = setup();
  s.publisher.setModel(s.base.model);
  s.publisher.ensureNode('h1');
  const before = s.cache.getSnapshot('h1');
  s.published.length = 0;
  s.setModel({ ...s.base.model, version: 2 });
  assert.deepEqual(
    s.published.map((p) => p.changed),
    [false],
  );
  assert.equal(s.cache.getSnapshot('h1')?.version, before?.version);

  const reviews = s.base.model.services.get('reviews.default.mesh');
  assert.ok(reviews);
  const extra = { ...reviews.endpoints[0], address: '198.18.0.99', workload: 'reviews-v9' } as (typeof reviews.endpoints)[number];
  const services = new Map(s.base.model.services);
  services.set('reviews.default.mesh', { ...reviews, endpoints: [...reviews.endpoints, extra] });
  s.setModel({ ...s.base.model, version: 3, services });
  const after = s.cache.getSnapshot('h1');
  assert.notEqual(after?.version, before?.version);
  const eds = 'outbound|9080|v1|reviews.default.mesh';
  assert.notEqual(after?.resources.get(EDS)?.get(eds)?.version, before?.resources.get(EDS)?.get(eds)?.version);
  const cds = 'outbound|9080|v1|reviews.default.mesh';
  assert.equal(after?.resources.get(CDS)?.get(cds)?.version, before?.resources.get(CDS)?.get(cds)?.version, 'clusters unchanged');
});

test('an unknown node gets nothing and a removed node is forgotten', () => {
  const s = setup();
  const publisher = new SnapshotPublisher({
    cache: s.cache,
    translate: translateNode,
    logger: createLogger({ level: 'silent' }),
    inputFor: () => undefined,
  });
  publisher.setModel(s.base.model);
  publisher.ensureNode('ghost');
  assert.equal(s.cache.getSnapshot('ghost'), undefined);
  s.publisher.setModel(s.base.model);
  s.publisher.ensureNode('h1');
  s.publisher.removeNode('h1');
  assert.equal(s.cache.getSnapshot('h1'), undefined);
  assert.deepEqual(s.publisher.tracked(), []);
});

test('a type whose content did not change keeps its map object; a changed type gets a new one', () => {
  const s = setup();
  s.publisher.setModel(s.base.model);
  s.publisher.ensureNode('h1');
  s.publisher.ensureNode('x1');
  const before = { h1: s.cache.getSnapshot('h1'), x1: s.cache.getSnapshot('x1') };
  const reviews = s.base.model.services.get('reviews.default.mesh');
  assert.ok(reviews);
  const extra = { ...reviews.endpoints[0], address: '198.18.0.98', workload: 'reviews-v8' } as (typeof reviews.endpoints)[number];
  const services = new Map(s.base.model.services);
  services.set('reviews.default.mesh', { ...reviews, endpoints: [...reviews.endpoints, extra] });
  s.setModel({ ...s.base.model, version: 4, services });
  for (const n of ['h1', 'x1'] as const) {
    const after = s.cache.getSnapshot(n);
    assert.notEqual(after?.version, before[n]?.version);
    assert.equal(after?.resources.get(CDS), before[n]?.resources.get(CDS), `${n}: CDS is the very same map`);
    assert.equal(after?.resources.get(LDS), before[n]?.resources.get(LDS), `${n}: LDS is the very same map`);
    assert.notEqual(after?.resources.get(EDS), before[n]?.resources.get(EDS), `${n}: EDS changed`);
  }
});

test('a model change publishes the first nodes at once and the rest in slices, yielding in between', async () => {
  const s = setup();
  s.publisher.setModel(s.base.model);
  const nodes = Array.from({ length: 250 }, (_, i) => `x${String(i).padStart(3, '0')}`);
  for (const n of nodes) s.publisher.ensureNode(n);
  const before = s.cache.getSnapshot('x000')?.version;
  const reviews = s.base.model.services.get('reviews.default.mesh');
  assert.ok(reviews);
  const services = new Map(s.base.model.services);
  services.set('reviews.default.mesh', { ...reviews, endpoints: reviews.endpoints.slice(1) });
  s.published.length = 0;
  s.setModel({ ...s.base.model, version: 5, services });
  assert.equal(s.published.length, 100, 'one slice synchronously');
  assert.notEqual(s.cache.getSnapshot('x000')?.version, before);
  assert.equal(s.cache.getSnapshot('x249')?.version, before, 'the last node waits for a later slice');
  await s.publisher.settled();
  assert.equal(s.published.length, 250);
  assert.equal(s.cache.getSnapshot('x249')?.version, s.cache.getSnapshot('x000')?.version);
});

test('a newer model supersedes a publishing pass still under way', async () => {
  const s = setup();
  s.publisher.setModel(s.base.model);
  for (let i = 0; i < 250; i += 1) s.publisher.ensureNode(`y${String(i).padStart(3, '0')}`);
  const reviews = s.base.model.services.get('reviews.default.mesh');
  assert.ok(reviews);
  const services = new Map(s.base.model.services);
  services.set('reviews.default.mesh', { ...reviews, endpoints: reviews.endpoints.slice(1) });
  s.setModel({ ...s.base.model, version: 6, services });
  const first = s.publisher.settled();
  s.published.length = 0;
  s.setModel(s.base.model);
  await Promise.all([first, s.publisher.settled()]);
  assert.equal(s.published.length, 250, 'the old pass stopped: each node published once by the new one');
  assert.equal(s.cache.getSnapshot('y249')?.version, s.cache.getSnapshot('y000')?.version);
});

test("each host's WDS lists its own registered workloads, pure clients too; hosts without any share one snapshot", () => {
  const base = bookinfoInput('h1');
  const cache = new SnapshotCache();
  const identities: Record<string, HostIdentity[]> = {
    c1: [{ namespace: 'default', name: 'client', serviceAccount: 'client', uid: 1601 }],
    c2: [{ namespace: 'default', name: 'batch', serviceAccount: 'batch' }],
  };
  const publisher = new SnapshotPublisher({
    cache,
    translate: translateNode,
    sharing: { key: sharingKey, isLocal: isLocalResource },
    logger: createLogger({ level: 'silent' }),
    inputFor: (nodeId, m) =>
      nodeInput(base.mesh, m, base.config, {
        ...base.node,
        id: nodeId,
        workloads: [],
        addresses: [],
        identities: identities[nodeId] ?? [],
      }),
  });
  publisher.setModel(base.model);
  for (const n of ['c1', 'c2', 'x1', 'x2']) publisher.ensureNode(n);
  const wds = (n: string) => {
    const r = cache.getSnapshot(n)?.resources.get(WDS)?.get('host-workloads');
    return r ? decodeAnyDeep(r.any) : undefined;
  };
  assert.deepEqual(wds('c1'), {
    workloads: [
      {
        namespace: 'default',
        name: 'client',
        service_account: 'client',
        spiffe_id: 'spiffe://cluster.local/ns/default/sa/client',
        uid: 1601,
        has_uid: true,
      },
    ],
  });
  assert.deepEqual(
    (wds('c2') as { workloads: Array<{ name: string; has_uid: boolean }> }).workloads.map((w) => [w.name, w.has_uid]),
    [['batch', false]],
  );
  assert.deepEqual(wds('x1'), { workloads: [] });
  assert.equal(cache.getSnapshot('x1'), cache.getSnapshot('x2'), 'hosts without registrations still share');
  assert.notEqual(cache.getSnapshot('c1'), cache.getSnapshot('x1'));
  // The outbound part stays shared with the hosts that run nothing.
  const c = 'outbound|9080|v2|reviews.default.mesh';
  assert.equal(cache.getSnapshot('c1')?.resources.get(CDS)?.get(c), cache.getSnapshot('x1')?.resources.get(CDS)?.get(c));
});
