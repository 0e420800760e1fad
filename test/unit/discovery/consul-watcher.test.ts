import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import { type ConsulSnapshot, ConsulWatcher, type ConsulWatcherOptions } from '../../../src/discovery/consul-watcher.js';
import type { VmeshError } from '../../../src/lib/errors.js';
import { createLogger } from '../../../src/lib/logger.js';
import { type FakeConsul, type FakeConsulOptions, startFakeConsul } from '../../support/fake-consul.js';

const logger = createLogger({ level: 'silent' });

async function waitFor<T>(what: string, fn: () => T | undefined | false, timeoutMs = 5000): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v !== undefined && v !== false) return v;
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Rig {
  fake: FakeConsul;
  w: ConsulWatcher;
  changes: ConsulSnapshot[];
  errors: VmeshError[];
  /** `service: id@address:port healthy|unhealthy` lines of the current snapshot, for readable asserts. */
  view(): string[];
}

async function rig(t: TestContext, fakeOpts: FakeConsulOptions = {}, opts: Partial<ConsulWatcherOptions> = {}): Promise<Rig> {
  const fake = await startFakeConsul(fakeOpts);
  const w = new ConsulWatcher({
    url: fake.url,
    logger,
    waitSeconds: 1,
    backoff: { baseMs: 20, maxMs: 200 },
    exclude: ['consul'],
    ...opts,
  });
  const changes: ConsulSnapshot[] = [];
  const errors: VmeshError[] = [];
  w.onChange((s) => changes.push(s));
  w.onError((e) => errors.push(e));
  t.after(async () => {
    await w.stop();
    await fake.stop();
  });
  const view = () => {
    const services: ConsulSnapshot['services'] = w.snapshot()?.services ?? new Map();
    return [...services.entries()].flatMap(([name, list]) =>
      list.map((i) => `${name}: ${i.id}@${i.address}:${i.port} ${i.healthy ? 'healthy' : 'unhealthy'}`),
    );
  };
  return { fake, w, changes, errors, view };
}

function addWeb(fake: FakeConsul): void {
  fake.registerService({ node: 'h1', address: '198.18.0.1', service: 'web', id: 'web-1', port: 8080, tags: ['v1', 'zone=a'] });
  fake.registerService({
    node: 'h2',
    address: '198.18.0.2',
    service: 'web',
    id: 'web-2',
    port: 8080,
    meta: { 'service-account': 'frontend' },
  });
}

test('first sync, then services and instances appearing and going are reported', async (t) => {
  const { fake, w, changes, view } = await rig(t);
  addWeb(fake);
  w.start();
  const first = await waitFor('first sync', () => w.snapshot());
  assert.equal(changes.length, 1);
  assert.ok(w.stats.synced);
  assert.deepEqual(view(), ['web: web-1@198.18.0.1:8080 healthy', 'web: web-2@198.18.0.2:8080 healthy']);
  const web1 = first.services.get('web')?.[0];
  assert.deepEqual(web1?.tags, ['v1', 'zone=a']);
  assert.equal(web1?.node, 'h1');
  assert.deepEqual(first.services.get('web')?.[1]?.meta, { 'service-account': 'frontend' });
  assert.ok(first.index > 0);

  fake.registerService({ node: 'h3', address: '198.18.0.3', service: 'db', id: 'db-1', port: 5432, serviceAddress: '198.18.7.7' });
  await waitFor('db to appear', () => w.snapshot()?.services.has('db'));
  assert.deepEqual(view().slice(0, 1), ['db: db-1@198.18.7.7:5432 healthy']);

  fake.registerService({ node: 'h3', address: '198.18.0.3', service: 'web', id: 'web-3', port: 9090 });
  await waitFor('web-3', () => w.snapshot()?.services.get('web')?.length === 3);
  fake.deregister('web-1');
  await waitFor('web-1 to go', () => w.snapshot()?.services.get('web')?.length === 2);
  assert.deepEqual(view(), [
    'db: db-1@198.18.7.7:5432 healthy',
    'web: web-2@198.18.0.2:8080 healthy',
    'web: web-3@198.18.0.3:9090 healthy',
  ]);
  assert.equal(changes.length, 4);
  assert.ok(!fake.requests.some((r) => r.path === '/v1/health/service/consul'), 'excluded services are not watched');
});

test('health: critical and warning mark instances unhealthy, passing heals them, node checks count', async (t) => {
  const { fake, w, view } = await rig(t);
  addWeb(fake);
  w.start();
  await waitFor('sync', () => w.snapshot());
  const healthOf = (id: string) =>
    w
      .snapshot()
      ?.services.get('web')
      ?.find((i) => i.id === id)?.healthy;

  fake.setHealth('web-1', 'critical');
  await waitFor('web-1 unhealthy', () => healthOf('web-1') === false);
  assert.deepEqual(view(), ['web: web-1@198.18.0.1:8080 unhealthy', 'web: web-2@198.18.0.2:8080 healthy']);
  fake.setHealth('web-1', 'passing');
  await waitFor('web-1 healthy', () => healthOf('web-1') === true);
  fake.setHealth('web-2', 'warning');
  await waitFor('web-2 unhealthy on warning', () => healthOf('web-2') === false);
  fake.setHealth('web-2', 'passing');
  fake.setNodeHealth('h1', 'critical');
  await waitFor('node failure marks web-1', () => healthOf('web-1') === false && healthOf('web-2') === true);
  // Unhealthy instances are listed, not dropped: the watcher never uses ?passing.
  assert.ok(fake.requests.filter((r) => r.path.startsWith('/v1/health/')).every((r) => !('passing' in r.query)));
});

test('a removed service disappears and its watch stops', async (t) => {
  const { fake, w, changes } = await rig(t);
  addWeb(fake);
  fake.registerService({ node: 'h3', address: '198.18.0.3', service: 'db', port: 5432 });
  w.start();
  await waitFor('sync', () => w.snapshot()?.services.has('db'));
  fake.deregister('db');
  await waitFor('db gone', () => w.snapshot()?.services.has('db') === false);
  assert.deepEqual([...(w.snapshot()?.services.keys() ?? [])], ['web']);
  await pause(100);
  const seen = fake.requests.length;
  const n = changes.length;
  await pause(1300);
  assert.equal(fake.requests.slice(seen).filter((r) => r.path === '/v1/health/service/db').length, 0);
  assert.equal(changes.length, n);
});

test('blocking is real: an idle catalog costs a request per loop per wait, and empty wake-ups notify no one', async (t) => {
  const { fake, w, changes } = await rig(t, { jitter: false }, { waitSeconds: 1 });
  addWeb(fake);
  w.start();
  await waitFor('sync', () => w.snapshot());
  await pause(100);
  const seen = fake.requests.length;
  await pause(2000);
  const idle = fake.requests.slice(seen);
  // Two loops (catalog + web), wait=1s: about 4 requests in 2 s. Polling without blocking would make ~80.
  assert.ok(idle.length >= 2 && idle.length < 10, `${idle.length} requests while idle`);
  assert.ok(
    idle.every((r) => Number(r.query.index) > 0 && r.query.wait === '1s'),
    'idle requests all block',
  );
  assert.equal(changes.length, 1);

  fake.touch('web'); // the index moves, the result does not
  await waitFor('the woken request', () => fake.requests.length > seen + idle.length);
  await pause(150);
  assert.equal(changes.length, 1);
});

test('a burst of changes across services becomes one notification', async (t) => {
  // A wide window keeps the burst one burst on a loaded CI machine; the default is 20 ms.
  const { fake, w, changes } = await rig(t, {}, { debounceMs: 300 });
  for (const s of ['a', 'b', 'c']) fake.registerService({ node: 'h1', address: '198.18.0.1', service: s, port: 80 });
  w.start();
  await waitFor('sync', () => w.snapshot()?.services.size === 3);
  await pause(100);
  const n = changes.length;
  // Spread over a few milliseconds, so the three answers arrive in separate event-loop turns.
  for (const s of ['a', 'b', 'c']) {
    fake.setHealth(s, 'critical');
    await pause(3);
  }
  await waitFor('all unhealthy', () => [...(w.snapshot()?.services.values() ?? [])].every((l) => l[0]?.healthy === false));
  await pause(400);
  assert.equal(changes.length, n + 1);
});

test('Consul index going backwards (restore/restart): the watcher starts over and keeps seeing changes', async (t) => {
  // wait=3s: a watcher that kept its old, higher index would only notice changes when each wait runs out.
  const { fake, w, view } = await rig(t, {}, { waitSeconds: 3 });
  addWeb(fake);
  for (let i = 0; i < 20; i++) fake.touch('web'); // push indexes well above where the reset lands
  w.start();
  await waitFor('sync', () => w.snapshot());
  await waitFor('loops parked', () => fake.blocked() >= 2);
  const seen = fake.requests.length;
  fake.resetIndex(1);
  await waitFor('loops parked again', () => fake.requests.length >= seen + 4 && fake.blocked() >= 2);
  fake.setHealth('web-2', 'critical');
  await waitFor('change after reset', () => view().includes('web: web-2@198.18.0.2:8080 unhealthy'), 1500);
  fake.registerService({ node: 'h1', address: '198.18.0.1', service: 'api', port: 7000 });
  await waitFor('new service after reset', () => w.snapshot()?.services.has('api'), 1500);
  // Per the blocking-query rules, each loop answered the lower index with a plain (non-blocking) read.
  assert.ok(fake.requests.slice(seen).filter((r) => r.query.index === undefined).length >= 2);
});

test('Consul down: one error per outage, the last snapshot stands, then a resync shows what changed', async (t) => {
  const { fake, w, errors, changes, view } = await rig(t);
  addWeb(fake);
  fake.registerService({ node: 'h3', address: '198.18.0.3', service: 'db', port: 5432 });
  w.start();
  const before = await waitFor('sync', () => w.snapshot());
  await waitFor('loops parked', () => fake.blocked() >= 3);

  await fake.pause();
  await waitFor('onError', () => errors.length > 0);
  await pause(500); // several retries of three loops
  assert.equal(errors.length, 1);
  assert.equal(errors[0]?.code, 'VMESH_ERR_CONSUL_UNAVAILABLE');
  assert.match(errors[0]?.message ?? '', new RegExp(`127\\.0\\.0\\.1:${fake.port}`));
  assert.ok(w.stats.errors >= 3, `stats.errors ${w.stats.errors}`);
  assert.match(w.stats.lastError ?? '', /ECONNREFUSED|ECONNRESET|socket hang up/);
  assert.equal(w.snapshot(), before, 'the last snapshot is kept');
  assert.equal(changes.length, 1);

  // Consul changes while we cannot see it.
  fake.setHealth('web-1', 'critical');
  fake.deregister('db');
  const mark = fake.requests.length;
  await fake.resume();
  await waitFor('resync', () => !w.snapshot()?.services.has('db') && view()[0] === 'web: web-1@198.18.0.1:8080 unhealthy');
  // Each loop is back once it blocks again: that takes a successful read after the resume.
  await waitFor('every loop back', () =>
    ['/v1/catalog/services', '/v1/health/service/web'].every((p) => fake.requests.slice(mark).some((r) => r.path === p && r.query.index)),
  );
  fake.registerService({ node: 'h4', address: '198.18.0.4', service: 'web', id: 'web-4', port: 8080 });
  await waitFor('changes after recovery', () => w.snapshot()?.services.get('web')?.length === 3);
  assert.equal(errors.length, 1);

  await fake.pause();
  await waitFor('second outage reported', () => errors.length === 2);
  await fake.resume();
});

test('ACL token: sent when configured; without it Consul refuses and the watcher reports it', async (t) => {
  const { fake, w } = await rig(t, { token: 'tok-123' }, { token: 'tok-123' });
  addWeb(fake);
  w.start();
  await waitFor('sync with token', () => w.snapshot());
  assert.ok(fake.requests.every((r) => r.token === 'tok-123'));

  const anon = new ConsulWatcher({ url: fake.url, logger, waitSeconds: 1, backoff: { baseMs: 20, maxMs: 100 } });
  const errs: VmeshError[] = [];
  anon.onError((e) => errs.push(e));
  anon.start();
  try {
    await waitFor('403', () => errs[0]);
    assert.match(errs[0]?.message ?? '', /HTTP 403: ACL not found/);
    assert.equal(errs[0]?.details.status, 403);
    assert.equal(anon.snapshot(), undefined);
    assert.equal(anon.stats.synced, false);
  } finally {
    await anon.stop();
  }
});

test('datacenter: passed as ?dc; an unknown one is an error', async (t) => {
  const { fake, w } = await rig(t, { datacenter: 'east' }, { datacenter: 'east' });
  addWeb(fake);
  w.start();
  await waitFor('sync', () => w.snapshot());
  assert.ok(fake.requests.every((r) => r.query.dc === 'east'));

  const other = new ConsulWatcher({ url: fake.url, logger, waitSeconds: 1, datacenter: 'west', backoff: { baseMs: 20, maxMs: 100 } });
  const errs: VmeshError[] = [];
  other.onError((e) => errs.push(e));
  other.start();
  try {
    await waitFor('dc error', () => errs[0]);
    assert.match(errs[0]?.message ?? '', /No path to datacenter/);
  } finally {
    await other.stop();
  }
});

test('stop() aborts blocked requests at once and ends every loop', async (t) => {
  const { fake, w } = await rig(t, {}, { waitSeconds: 30 });
  addWeb(fake);
  fake.registerService({ node: 'h3', address: '198.18.0.3', service: 'db', port: 5432 });
  w.start();
  await waitFor('sync', () => w.snapshot());
  await waitFor('loops parked', () => fake.blocked() >= 3);
  const t0 = performance.now();
  await w.stop();
  assert.ok(performance.now() - t0 < 1000, `stop took ${performance.now() - t0} ms`);
  await waitFor('server sees the requests gone', () => fake.blocked() === 0, 1000);
  const seen = fake.requests.length;
  await pause(200);
  assert.equal(fake.requests.length, seen);
  await w.stop(); // idempotent
  assert.throws(() => w.start(), /start\(\) after stop\(\)/);
});

test('bad options are refused up front', () => {
  assert.throws(() => new ConsulWatcher({ url: 'ftp://127.0.0.1:8500', logger }), { code: 'VMESH_ERR_INVALID_CONFIG' });
  assert.throws(() => new ConsulWatcher({ url: 'not a url', logger }), { code: 'VMESH_ERR_INVALID_CONFIG' });
  assert.throws(() => new ConsulWatcher({ url: 'http://127.0.0.1:8500', logger, waitSeconds: 0 }), /waitSeconds/);
  assert.throws(() => new ConsulWatcher({ url: 'http://127.0.0.1:8500', logger, waitSeconds: 601 }), /waitSeconds/);
});
