// The fake Consul is what the watcher's tests stand on, so its own semantics are pinned here.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type FakeConsul, startFakeConsul } from '../../support/fake-consul.js';

interface HealthEntry {
  Node: { Node: string; Address: string };
  Service: { ID: string; Service: string; Address: string; Port: number; Tags: string[] | null; Meta: Record<string, string> | null };
  Checks: Array<{ CheckID: string; Status: string; ServiceID: string }>;
}

async function get(fake: FakeConsul, path: string, headers: Record<string, string> = {}) {
  const t0 = performance.now();
  const res = await fetch(`${fake.url}${path}`, { headers });
  const text = await res.text();
  return {
    status: res.status,
    text,
    body: res.headers.get('content-type')?.startsWith('application/json') ? JSON.parse(text) : undefined,
    index: Number(res.headers.get('x-consul-index')),
    headers: res.headers,
    ms: performance.now() - t0,
  };
}

describe('fake consul', () => {
  let fake: FakeConsul;
  before(async () => {
    fake = await startFakeConsul({ jitter: false });
    fake.registerService({ node: 'n1', address: '198.18.0.1', service: 'web', id: 'web-1', port: 80, tags: ['v1', 'a'] });
    fake.registerService({ node: 'n2', address: '198.18.0.2', service: 'web', id: 'web-2', port: 80, tags: ['b'], status: 'warning' });
    fake.registerService({ node: 'n2', address: '198.18.0.2', service: 'db', port: 5432, serviceAddress: '198.18.1.2', meta: { x: 'y' } });
  });
  after(() => fake.stop());

  test('catalog/services maps names to the union of tags, with the query metadata headers', async () => {
    const r = await get(fake, '/v1/catalog/services');
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { consul: [], db: [], web: ['a', 'b', 'v1'] });
    assert.ok(r.index >= 1);
    assert.equal(r.headers.get('x-consul-knownleader'), 'true');
    assert.equal(r.headers.get('x-consul-lastcontact'), '0');
  });

  test('health/service lists every instance with node, service and checks; ?passing keeps only all-passing ones', async () => {
    const all = await get(fake, '/v1/health/service/web');
    const entries = all.body as HealthEntry[];
    assert.deepEqual(
      entries.map((e) => [e.Node.Node, e.Service.ID, e.Checks.map((c) => `${c.CheckID}=${c.Status}`)]),
      [
        ['n1', 'web-1', ['serfHealth=passing', 'service:web-1=passing']],
        ['n2', 'web-2', ['serfHealth=passing', 'service:web-2=warning']],
      ],
    );
    const passing = await get(fake, '/v1/health/service/web?passing');
    assert.deepEqual(
      (passing.body as HealthEntry[]).map((e) => e.Service.ID),
      ['web-1'],
    );
    assert.equal((await get(fake, '/v1/health/service/web?passing=false')).body.length, 2);
    assert.equal((await get(fake, '/v1/health/service/web?passing=nope')).status, 400);
    assert.deepEqual(
      ((await get(fake, '/v1/health/service/web?tag=b')).body as HealthEntry[]).map((e) => e.Service.ID),
      ['web-2'],
    );
    const db = (await get(fake, '/v1/health/service/db')).body as HealthEntry[];
    assert.equal(db[0]?.Service.Address, '198.18.1.2');
    assert.deepEqual(db[0]?.Service.Meta, { x: 'y' });
    assert.equal(db[0]?.Service.Tags, null); // Go's nil slice
    assert.deepEqual((await get(fake, '/v1/health/service/nope')).body, []);
  });

  test('a blocking query waits out `wait` when nothing changes, and returns at once on a change', async () => {
    const first = await get(fake, '/v1/health/service/web');
    const idle = await get(fake, `/v1/health/service/web?index=${first.index}&wait=300ms`);
    assert.ok(idle.ms >= 280, `returned after ${idle.ms} ms`);
    assert.equal(idle.index, first.index);

    // A change to another service must not wake it: the index is per service.
    setTimeout(() => fake.setHealth('db', 'critical'), 50);
    const other = await get(fake, `/v1/health/service/web?index=${first.index}&wait=400ms`);
    assert.ok(other.ms >= 380);
    assert.equal(other.index, first.index);

    setTimeout(() => fake.setHealth('web-2', 'critical'), 100);
    const woke = await get(fake, `/v1/health/service/web?index=${first.index}&wait=5s`);
    assert.ok(woke.ms < 2000, `returned after ${woke.ms} ms`);
    assert.ok(woke.index > first.index);
    assert.equal((woke.body as HealthEntry[])[1]?.Checks[1]?.Status, 'critical');

    // Health changes leave the services table index alone.
    const cat = await get(fake, '/v1/catalog/services');
    assert.ok(cat.index < woke.index);
  });

  test('idempotent writes move no index; touch does without changing the result', async () => {
    const a = await get(fake, '/v1/health/service/db');
    fake.registerService({ node: 'n2', address: '198.18.0.2', service: 'db', port: 5432, serviceAddress: '198.18.1.2', meta: { x: 'y' } });
    fake.setHealth('db', 'critical'); // already critical
    assert.equal((await get(fake, '/v1/health/service/db')).index, a.index);
    fake.touch('db');
    const b = await get(fake, `/v1/health/service/db?index=${a.index}&wait=2s`);
    assert.ok(b.index > a.index && b.ms < 1000);
    assert.deepEqual(b.body, a.body);
  });

  test('resetIndex wakes blocked queries at once with the lower index', async () => {
    const before = await get(fake, '/v1/catalog/services');
    setTimeout(() => fake.resetIndex(2), 100);
    const r = await get(fake, `/v1/catalog/services?index=${before.index}&wait=5s`);
    assert.ok(r.ms < 2000);
    assert.equal(r.index, 2);
    assert.equal(fake.index(), 2);
  });

  test('bad parameters, unknown datacenters and unknown paths are refused like Consul does', async () => {
    assert.equal((await get(fake, '/v1/catalog/services?wait=soon&index=1')).status, 400);
    assert.equal((await get(fake, '/v1/catalog/services?index=-1')).status, 400);
    const dc = await get(fake, '/v1/catalog/services?dc=dc9');
    assert.equal(dc.status, 500);
    assert.match(dc.text, /No path to datacenter/);
    assert.equal((await get(fake, '/v1/catalog/services?dc=dc1')).status, 200);
    assert.equal((await get(fake, '/v1/kv/x')).status, 404, 'a KV miss');
    assert.match((await get(fake, '/v1/agent/self')).text, /not a recognized HTTP API endpoint/);
    assert.ok(fake.requests.some((r) => r.path === '/v1/catalog/services' && r.query.dc === 'dc9'));
  });

  test('pause drops connections and refuses new ones; resume serves again on the same port', async () => {
    const port = fake.port;
    const cat = await get(fake, '/v1/catalog/services');
    const parked = get(fake, `/v1/catalog/services?index=${cat.index}&wait=10s`).then(
      () => 'answered',
      () => 'dropped',
    );
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(fake.blocked(), 1);
    await fake.pause();
    assert.equal(await parked, 'dropped');
    await assert.rejects(get(fake, '/v1/catalog/services'));
    await fake.resume();
    assert.equal(fake.port, port);
    assert.equal((await get(fake, '/v1/catalog/services')).status, 200);
  });
});

describe('fake consul with ACLs', () => {
  let fake: FakeConsul;
  before(async () => {
    fake = await startFakeConsul({ token: 's3cret' });
  });
  after(() => fake.stop());

  test('requests without the token get 403 ACL not found', async () => {
    const denied = await get(fake, '/v1/catalog/services');
    assert.equal(denied.status, 403);
    assert.equal(denied.text, 'ACL not found');
    assert.equal((await get(fake, '/v1/catalog/services', { 'X-Consul-Token': 'wrong' })).status, 403);
    assert.equal((await get(fake, '/v1/catalog/services', { 'X-Consul-Token': 's3cret' })).status, 200);
    assert.equal((await get(fake, '/v1/health/service/consul', { Authorization: 'Bearer s3cret' })).status, 200);
  });
});
