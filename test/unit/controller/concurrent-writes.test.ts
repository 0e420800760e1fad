import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { DEFAULT_MESH_CONFIG } from '../../../src/api/mesh-config.js';
import { startTestController, type TestController, waitFor } from '../../support/controller-harness.js';
import { type FakeConsul, startFakeConsul } from '../../support/fake-consul.js';

// The race of issue 15 item 4 through the real API: concurrent requests must get the answers of some serial
// order, on one controller with its file store and on two controllers sharing Consul.

const ROOT = DEFAULT_MESH_CONFIG.rootNamespace;
const ROUNDS = 5;
const pa = (name: string, mode: string) => [
  { apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: { name, namespace: ROOT }, spec: { mtls: { mode } } },
];
const conflicts = (body: { warnings?: string[] }) => (body.warnings ?? []).filter((w) => w.startsWith('VMESH_WARN_CONFLICT')).length;

const setups: Record<string, () => Promise<{ ctls: TestController[]; stop: () => Promise<void> }>> = {
  'one controller, file store': async () => {
    const c = await startTestController();
    return { ctls: [c], stop: () => c.stop() };
  },
  'two controllers sharing Consul': async () => {
    const consul: FakeConsul = await startFakeConsul();
    const a = await startTestController({ consulUrl: consul.url, store: 'consul' });
    const b = await startTestController({ consulUrl: consul.url, store: 'consul' });
    return {
      ctls: [a, b],
      stop: async () => {
        await b.stop();
        await a.stop();
        await consul.stop();
      },
    };
  },
};

for (const [name, setup] of Object.entries(setups)) {
  describe(`concurrent API writes: ${name}`, () => {
    let ctls: TestController[] = [];
    let stop = async () => {};
    const at = (i: number) => ctls[i % ctls.length] as TestController;
    before(async () => {
      ({ ctls, stop } = await setup());
    });
    after(() => stop());

    test('mesh-wide STRICT and DISABLE at the same moment: both accepted, and the second in order warns which applies', async () => {
      for (let round = 0; round < ROUNDS; round++) {
        const rs = await Promise.all([
          at(0).api('POST', '/v1/config', pa('strict', 'STRICT')),
          at(1).api('POST', '/v1/config', pa('disable', 'DISABLE')),
        ]);
        assert.deepEqual(
          rs.map((r) => r.status),
          [200, 200],
        );
        assert.deepEqual(
          rs.map((r) => conflicts(r.body)).sort(),
          [0, 1],
          `round ${round}: ${JSON.stringify(rs.map((r) => r.body.warnings))}`,
        );
        for (const n of ['strict', 'disable']) {
          const del = await at(round).api('DELETE', `/v1/config/PeerAuthentication/${ROOT}/${n}`);
          assert.equal(del.status, 200, JSON.stringify(del.body));
        }
      }
    });

    test('20 workloads of a new service registered at once: one ServiceEntry, created once, and 20 WorkloadEntries', async () => {
      const rs = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          at(i).api('POST', '/v1/workloads', {
            name: `ratings-${i}`,
            service: 'ratings',
            address: `198.18.3.${i + 1}`,
            ports: ['http:9080'],
            host: `vm${i}`,
          }),
        ),
      );
      assert.deepEqual(
        rs.filter((r) => r.status !== 201).map((r) => r.body),
        [],
      );
      assert.equal(rs.filter((r) => r.body.serviceEntryCreated).length, 1);
      // Another controller's writes reach each one's reads within a round trip of the store's watch.
      for (const c of ctls) {
        const wes = await waitFor(
          '20 WorkloadEntries on every controller',
          async () => {
            const r = await c.api('GET', '/v1/config/WorkloadEntry');
            return r.body.length === 20 ? r.body : undefined;
          },
          5000,
          20,
        );
        assert.equal(wes.length, 20);
        const ses = await c.api('GET', '/v1/config/ServiceEntry');
        assert.deepEqual(
          ses.body.map((s: { metadata: { name: string } }) => s.metadata.name),
          ['ratings'],
        );
      }
    });
  });
}
