import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { gatherHostFacts, joinController, renewHostCert } from '../../../src/ca/index.js';
import { loadControllerConfig } from '../../../src/config/controller.js';
import { startTestController, type TestController, waitFor } from '../../support/controller-harness.js';
import { type FakeConsul, startFakeConsul } from '../../support/fake-consul.js';

// Two controllers in this process share their state through the fake Consul's KV: what one is told, the other serves.

const WORKLOAD = {
  name: 'reviews-v1',
  service: 'reviews',
  namespace: 'default',
  serviceAccount: 'reviews',
  address: '198.18.0.12',
  ports: ['http:9080'],
  host: 'h2',
};

const serviceIn = (c: TestController, hostname: string) => c.running.model.current().services.get(hostname);

describe('controllers sharing a Consul KV store', () => {
  let consul: FakeConsul;
  let a: TestController;
  let b: TestController;

  before(async () => {
    consul = await startFakeConsul({ jitter: false });
    // Started together: both race to publish their CA and admin token; one wins and the other adopts it.
    [a, b] = await Promise.all([
      startTestController({ consulUrl: consul.url, store: 'consul' }),
      startTestController({ consulUrl: consul.url, store: 'consul' }),
    ]);
  });
  after(async () => {
    await b?.stop();
    await a?.stop();
    await consul?.stop();
  });

  test('both sign for one root and share the admin token; the CA lives under the prefix', async () => {
    assert.equal(a.running.ca.caHash(), b.running.ca.caHash());
    assert.equal(a.caPem, b.caPem);
    assert.equal(a.adminToken, b.adminToken);
    assert.deepEqual(consul.kvKeys('vmesh/ca/'), ['vmesh/ca/ca-cert.pem', 'vmesh/ca/ca-key.pem']);
    assert.equal((await b.api('GET', '/v1/tokens')).status, 200, 'the shared admin token works on B');
  });

  test('a workload registered through A is served by B with the same virtual IP; deleted through B, A drops it', async () => {
    const res = await a.api('POST', '/v1/workloads', WORKLOAD);
    assert.equal(res.status, 201, JSON.stringify(res.body));
    const onB = await waitFor('reviews in B’s model', async () => serviceIn(b, 'reviews.default.mesh'), 5000, 20);
    const onA = await waitFor('reviews in A’s model', async () => serviceIn(a, 'reviews.default.mesh'), 5000, 20);
    assert.equal(onB.vip, onA.vip);
    assert.deepEqual(
      onB.endpoints.map((e) => e.address),
      ['198.18.0.12'],
    );
    const del = await b.api('DELETE', '/v1/workloads/default/reviews-v1');
    assert.equal(del.status, 200, JSON.stringify(del.body));
    await waitFor('reviews gone from A', async () => (serviceIn(a, 'reviews.default.mesh') ? undefined : true), 5000, 20);
  });

  test('config applied through B is read back through A with the same resourceVersion', async () => {
    const vs = {
      apiVersion: 'networking.istio.io/v1',
      kind: 'VirtualService',
      metadata: { name: 'r', namespace: 'default' },
      spec: { hosts: ['reviews'], http: [{ route: [{ destination: { host: 'reviews' } }] }] },
    };
    const applied = await b.api('POST', '/v1/config', [vs]);
    assert.equal(applied.status, 200, JSON.stringify(applied.body));
    const got = await waitFor(
      'the VirtualService on A',
      async () => {
        const r = await a.api('GET', '/v1/config/VirtualService/default/r');
        return r.status === 200 ? r.body : undefined;
      },
      5000,
      20,
    );
    const onB = await b.api('GET', '/v1/config/VirtualService/default/r');
    assert.equal(got.metadata.resourceVersion, onB.body.metadata.resourceVersion);
  });

  test('a token made on A joins through B once; a host removed through B is refused by A', async () => {
    const made = await a.api('POST', '/v1/tokens', { host: 'h2' });
    assert.equal(made.status, 201, JSON.stringify(made.body));
    const facts = await gatherHostFacts();
    const creds = await joinController({ address: b.grpcAddress, token: made.body.token, hostName: 'h2', facts });
    await assert.rejects(joinController({ address: a.grpcAddress, token: made.body.token, hostName: 'h2', facts }), {
      code: 'VMESH_ERR_TOKEN_USED',
    });
    await waitFor('h2 known on A', async () => ((await a.api('GET', '/v1/hosts')).body.length === 1 ? true : undefined), 5000, 20);
    assert.equal((await b.api('DELETE', '/v1/hosts/h2')).status, 200);
    const refusedOnA = await waitFor(
      'A to refuse h2',
      async () => {
        const hosts = (await a.api('GET', '/v1/hosts')).body as Array<{ name: string; state: string }>;
        return hosts.find((h) => h.name === 'h2' && h.state === 'removed');
      },
      5000,
      20,
    );
    assert.ok(refusedOnA);
    assert.ok(creds.certPem);
  });

  test('a renewal through A, whose view lags, cannot undo a removal just made through B', async () => {
    const made = await a.api('POST', '/v1/tokens', { host: 'h3' });
    const creds = await joinController({ address: a.grpcAddress, token: made.body.token, hostName: 'h3', facts: await gatherHostFacts() });
    await waitFor(
      'h3 known on B',
      async () => ((await b.api('GET', '/v1/hosts')).body.some((h: { name: string }) => h.name === 'h3') ? true : undefined),
      5000,
      20,
    );
    consul.setWatchDelay(2000);
    try {
      assert.equal((await b.api('DELETE', '/v1/hosts/h3')).status, 200);
      // A still thinks h3 is joined: the renewal is authenticated from its view, but the record is rewritten from a fresh read.
      await assert.rejects(
        renewHostCert({ address: a.grpcAddress, keyPem: creds.keyPem, certPem: creds.certPem, trustBundlePem: creds.trustBundlePem }),
        {
          code: 'VMESH_ERR_HOST_REVOKED',
        },
      );
      assert.equal(JSON.parse(consul.kvGet('vmesh/hosts/h3') ?? '{}').revoked, true, 'the removal stands');
    } finally {
      consul.setWatchDelay(0);
    }
  });

  test('a root rotation step taken on A reaches B: B trusts the staged root, then signs with it', async () => {
    const before = b.running.ca.caHash();
    const staged = await a.api('POST', '/v1/ca/rotate-root', { step: 'stage' });
    assert.equal(staged.status, 200, JSON.stringify(staged.body));
    await waitFor('B to hold the staged root', async () => (b.running.ca.rotationState().phase === 'staged' ? true : undefined), 5000, 20);
    assert.equal(b.running.ca.trustBundlePem(), a.running.ca.trustBundlePem());
    const activated = await a.api('POST', '/v1/ca/rotate-root', { step: 'activate', force: true });
    assert.equal(activated.status, 200, JSON.stringify(activated.body));
    await waitFor(
      'B to sign with the new root',
      async () => (b.running.ca.caHash() === a.running.ca.caHash() ? true : undefined),
      5000,
      20,
    );
    assert.notEqual(b.running.ca.caHash(), before);
    assert.equal(b.running.ca.rotationState().phase, 'activated');
  });
});

describe('store flags', () => {
  const load = (flags: Record<string, unknown>) => loadControllerConfig({ flags, env: {}, file: {} });

  test('the embedded file store stays the default; --store consul needs --consul and takes a prefix', () => {
    assert.deepEqual(load({}).store, { kind: 'file' });
    assert.deepEqual(load({ store: 'consul', consul: 'http://127.0.0.1:8500' }).store, { kind: 'consul', prefix: 'vmesh/' });
    assert.deepEqual(load({ store: 'consul', consul: 'http://127.0.0.1:8500', consulPrefix: 'mesh/prod/' }).store, {
      kind: 'consul',
      prefix: 'mesh/prod/',
    });
    assert.throws(() => load({ store: 'consul' }), /give the Consul URL too/);
    assert.throws(() => load({ store: 'etcd' }), /not a store kind/);
    assert.throws(() => load({ store: 'consul', consul: 'http://127.0.0.1:8500', consulPrefix: 'x' }), /ending in "\/"/);
  });
});
