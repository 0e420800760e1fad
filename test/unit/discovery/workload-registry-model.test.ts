import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { DEFAULT_MESH_CONFIG } from '../../../src/api/mesh-config.js';
import { isKind } from '../../../src/api/resource.js';
import type { ConsulInstance } from '../../../src/discovery/consul-watcher.js';
import { HealthTracker } from '../../../src/discovery/health.js';
import { ModelBuilder } from '../../../src/discovery/model-builder.js';
import { VipAllocator } from '../../../src/discovery/vip-allocator.js';
import { parsePortSpec, VmRegistry } from '../../../src/discovery/workload-registry.js';
import { createLogger } from '../../../src/lib/logger.js';
import { ConfigStore } from '../../../src/store/config-store.js';
import { FileStore } from '../../../src/store/file/file-store.js';

const REG = {
  name: 'reviews-v2',
  service: 'reviews',
  namespace: 'default',
  serviceAccount: 'reviews',
  address: '198.18.0.12',
  ports: ['http:9080'],
  labels: { version: 'v2' },
  host: 'h2',
  uid: 1001,
};

const opened: FileStore[] = [];
after(() => Promise.all(opened.map((s) => s.close())));

async function setup(dir = mkdtempSync(join(tmpdir(), 'vmesh-model-')), debounce = { quietMs: 5, maxMs: 50 }) {
  const store = await FileStore.open(dir);
  opened.push(store);
  const config = new ConfigStore(store, DEFAULT_MESH_CONFIG);
  let now = 1_000_000;
  let model: ModelBuilder | undefined;
  const health = new HealthTracker({ hostTimeoutMs: 30_000, onChange: () => model?.trigger(), now: () => now });
  const meshed = new Set(['h1', 'h2']);
  model = new ModelBuilder({
    config,
    vips: new VipAllocator(store),
    health,
    meshedHosts: () => meshed,
    mesh: DEFAULT_MESH_CONFIG,
    logger: createLogger({ level: 'silent' }),
    debounce,
  });
  return { dir, store, config, health, model, registry: new VmRegistry(config, health), tick: (ms: number) => (now += ms) };
}

describe('VM registry', () => {
  test('register creates a WorkloadEntry with host and uid annotations, and the ServiceEntry once', async () => {
    const { config, registry } = await setup();
    const r = await registry.register(REG);
    assert.equal(r.serviceEntryCreated, true);
    const we = config.get('WorkloadEntry', 'default', 'reviews-v2');
    assert.equal(we?.metadata.annotations['vmesh.io/uid'], '1001');
    assert.equal(we?.metadata.annotations['vmesh.io/host'], 'h2');
    const se = config.get('ServiceEntry', 'default', 'reviews');
    assert.ok(se && isKind(se, 'ServiceEntry'));
    assert.deepEqual(se.spec.hosts, ['reviews.default.mesh']);
    const r2 = await registry.register({ ...REG, name: 'reviews-v3', address: '198.18.0.13', labels: { version: 'v3' } });
    assert.equal(r2.serviceEntryCreated, false);
    assert.deepEqual(
      registry.list().map((w) => [w.name, w.uid, w.ports.http]),
      [
        ['reviews-v2', 1001, 9080],
        ['reviews-v3', 1001, 9080],
      ],
    );
    assert.equal((await registry.deregister('default', 'reviews-v2')).serviceEntryRemoved, false);
    assert.equal((await registry.deregister('default', 'reviews-v3')).serviceEntryRemoved, true);
    assert.equal(config.list().length, 0);
    await assert.rejects(registry.deregister('default', 'nope'), /not found/);
  });

  test('an IPv6 address, bracketed or not, is kept in its canonical form', async () => {
    const { registry, config } = await setup();
    const r = await registry.register({ ...REG, address: '[FDCE:77:0:0::3]' });
    assert.equal(r.workload.address, 'fdce:77::3');
    const we = config.list().find((x) => x.kind === 'WorkloadEntry');
    assert.equal((we?.spec as { address?: string } | undefined)?.address, 'fdce:77::3');
  });

  test('bad registrations are refused with the field named', async () => {
    const { registry, config } = await setup();
    await assert.rejects(registry.register({ ...REG, address: 'not-an-ip' }), /address: "not-an-ip" is not an IPv4 or IPv6 address/);
    await assert.rejects(registry.register({ ...REG, address: 'fdce:77::3::1' }), /address: "fdce:77::3::1" is not an IPv4/);
    await assert.rejects(registry.register({ ...REG, ports: ['http:99999'] }), /port "http:99999"/);
    await assert.rejects(registry.register({ ...REG, name: 'Reviews_V2' }), /name: must be a DNS-1123 label/);
    await assert.rejects(registry.register({ ...REG, color: 'blue' }), /color/);
    assert.equal(config.list().length, 0);
    assert.deepEqual(parsePortSpec('grpc-api:9090'), { name: 'grpc-api', number: 9090, protocol: 'GRPC' });
    assert.deepEqual(parsePortSpec('5432'), { name: 'tcp-5432', number: 5432, protocol: 'TCP' });
  });
});

describe('mesh model', () => {
  test('services get <name>.<ns>.mesh, the svc.cluster.local alias, a VIP stable across restart, and endpoints', async () => {
    const s = await setup();
    await s.registry.register(REG);
    await s.registry.register({
      ...REG,
      name: 'ratings-v1',
      service: 'ratings',
      serviceAccount: 'ratings',
      address: '198.18.0.13',
      host: 'h3',
    });
    const m = await s.model.rebuild();
    const reviews = m.services.get('reviews.default.mesh');
    assert.ok(reviews);
    assert.deepEqual(reviews.aliases, ['reviews.default.svc.cluster.local']);
    assert.match(reviews.vip, /^240\.240\.\d+\.\d+$/);
    assert.equal(reviews.endpoints[0]?.meshed, true, 'h2 joined: mTLS automatically');
    assert.equal(reviews.endpoints[0]?.uid, 1001);
    assert.equal(m.services.get('ratings.default.mesh')?.endpoints[0]?.meshed, false, 'h3 never joined');
    const vips = [...m.services.values()].map((x) => `${x.hostname}=${x.vip}`);
    await s.store.close();

    const again = await setup(s.dir);
    const m2 = await again.model.rebuild();
    assert.deepEqual(
      [...m2.services.values()].map((x) => `${x.hostname}=${x.vip}`),
      vips,
    );
  });

  test('short names in ServiceEntry hosts resolve in its namespace; external hosts stay as written', async () => {
    const s = await setup();
    await s.config.applyText(
      `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: prod}
spec:
  hosts: [db]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 5432, name: tcp-pg, protocol: TCP}]
  endpoints: [{address: 198.18.0.40}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: payments, namespace: prod}
spec:
  hosts: [api.payments.example.com]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 443, name: https, protocol: HTTPS}]
`,
      { source: 'se.yaml' },
    );
    const m = await s.model.rebuild();
    assert.deepEqual([...m.services.keys()].sort(), ['api.payments.example.com', 'db.prod.mesh']);
    assert.equal(m.services.get('db.prod.mesh')?.endpoints[0]?.address, '198.18.0.40');
    assert.equal(m.services.get('api.payments.example.com')?.location, 'MESH_EXTERNAL');
  });

  test('a host that stops reporting takes its endpoints out; reporting again brings them back', async () => {
    const s = await setup();
    await s.registry.register(REG);
    let changes = 0;
    s.model.onChange(() => changes++);
    s.health.report('h2', [{ namespace: 'default', name: 'reviews-v2', healthy: true }]);
    let m = await s.model.rebuild();
    assert.equal(m.services.get('reviews.default.mesh')?.endpoints[0]?.healthy, true);
    s.tick(31_000);
    s.health.check();
    m = await s.model.rebuild();
    assert.equal(m.services.get('reviews.default.mesh')?.endpoints[0]?.healthy, false);
    s.health.report('h2', [{ namespace: 'default', name: 'reviews-v2', healthy: false }]);
    m = await s.model.rebuild();
    assert.equal(m.services.get('reviews.default.mesh')?.endpoints[0]?.healthy, false, 'the workload itself reports unhealthy');
    s.health.report('h2', [{ namespace: 'default', name: 'reviews-v2', healthy: true }]);
    m = await s.model.rebuild();
    assert.equal(m.services.get('reviews.default.mesh')?.endpoints[0]?.healthy, true);
    assert.ok(changes >= 3);
  });

  test('Consul services join the model; one with a ServiceEntry of the same host merges', async () => {
    const s = await setup();
    await s.registry.register(REG);
    const inst = (service: string, id: string, address: string, healthy: boolean): ConsulInstance => ({
      service,
      id,
      node: 'n1',
      address,
      port: 9080,
      tags: ['v1'],
      meta: { protocol: 'http' },
      healthy,
    });
    s.model.setConsul({
      index: 5,
      services: new Map([
        ['reviews', [inst('reviews', 'reviews-c1', '198.18.0.50', true)]],
        ['ratings', [inst('ratings', 'ratings-c1', '198.18.0.51', false)]],
      ]),
    });
    const m = await s.model.rebuild();
    const reviews = m.services.get('reviews.default.mesh');
    assert.deepEqual(reviews?.sources, ['registry', 'consul']);
    assert.equal(reviews?.endpoints.length, 2);
    const ratings = m.services.get('ratings.default.mesh');
    assert.equal(ratings?.ports[0]?.protocol, 'HTTP');
    assert.equal(ratings?.endpoints[0]?.healthy, false);
    assert.equal(ratings?.endpoints[0]?.labels.version, 'v1');
  });

  test('changes are debounced into one event and an unchanged rebuild emits nothing', async () => {
    // Istio-like windows (quiet 100 ms, at most 5 s), so two quick registrations stay one burst even on a loaded machine.
    const s = await setup(undefined, { quietMs: 100, maxMs: 5000 });
    const versions: number[] = [];
    s.model.onChange((m) => versions.push(m.version));
    await s.registry.register(REG);
    await s.registry.register({ ...REG, name: 'reviews-v3', address: '198.18.0.13' });
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(versions.length, 1, `one event for a burst, got ${versions.join(',')}`);
    await s.model.rebuild();
    assert.equal(versions.length, 1);
  });
});
