import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startTestController, type TestController, waitFor } from '../../support/controller-harness.js';
import { type FakeConsul, startFakeConsul } from '../../support/fake-consul.js';

interface ServiceView {
  hostname: string;
  vip: string;
  ports: Array<{ name: string; number: number; protocol: string }>;
  sources: string[];
  endpoints: Array<{ address: string; ports: Record<string, number>; healthy: boolean; workload: string; source: string; meshed: boolean }>;
}

describe('Consul services through the controller', () => {
  let consul: FakeConsul;
  let ctl: TestController;

  before(async () => {
    consul = await startFakeConsul();
    consul.registerService({
      node: 'node-a',
      address: '198.18.0.20',
      service: 'ratings',
      id: 'ratings-1',
      port: 9080,
      meta: { protocol: 'http' },
    });
    ctl = await startTestController({ consulUrl: consul.url });
  });
  after(async () => {
    await ctl?.stop();
    await consul?.stop();
  });

  const service = async (hostname: string): Promise<ServiceView | undefined> => {
    const res = await ctl.api('GET', '/v1/services');
    assert.equal(res.status, 200);
    return res.body.services.find((s: ServiceView) => s.hostname === hostname);
  };
  const serviceWhere = (what: string, hostname: string, want: (s: ServiceView | undefined) => boolean) =>
    waitFor(
      what,
      async () => {
        const s = await service(hostname);
        return want(s) ? { s } : undefined;
      },
      10_000,
    ).then((x) => x.s);

  test('a Consul service appears as <svc>.default.mesh with the instance as its endpoint and a virtual IP', async () => {
    const s = await serviceWhere('ratings.default.mesh from Consul', 'ratings.default.mesh', (x) => x !== undefined);
    assert.ok(s);
    assert.match(s.vip, /^240\.240\.\d+\.\d+$/);
    assert.deepEqual(s.sources, ['consul']);
    assert.deepEqual(s.ports, [{ name: 'http', number: 9080, protocol: 'HTTP' }]);
    assert.deepEqual(
      s.endpoints.map((e) => [e.address, e.ports, e.healthy, e.workload, e.source, e.meshed]),
      [['198.18.0.20', { http: 9080 }, true, 'ratings-1', 'consul', false]],
    );
    // The controller really used blocking queries against Consul's catalog.
    assert.ok(consul.requests.some((r) => r.path === '/v1/catalog/services' && r.query.index !== undefined && r.query.wait === '1s'));
  });

  test('a second instance joins the service; a critical check makes its endpoint unhealthy', async () => {
    consul.registerService({ node: 'node-b', address: '198.18.0.21', service: 'ratings', id: 'ratings-2', port: 9080 });
    await serviceWhere('two ratings endpoints', 'ratings.default.mesh', (s) => s?.endpoints.length === 2);
    const vip = (await service('ratings.default.mesh'))?.vip;
    consul.setHealth('ratings-1', 'critical');
    const s = await serviceWhere('ratings-1 unhealthy', 'ratings.default.mesh', (x) =>
      Boolean(x?.endpoints.some((e) => e.workload === 'ratings-1' && !e.healthy)),
    );
    assert.ok(s);
    assert.deepEqual(
      s.endpoints.map((e) => [e.workload, e.healthy]),
      [
        ['ratings-1', false],
        ['ratings-2', true],
      ],
    );
    assert.equal(s.vip, vip, 'the virtual IP does not move with health changes');
    consul.setHealth('ratings-1', 'passing');
    await serviceWhere('ratings-1 healthy again', 'ratings.default.mesh', (x) => Boolean(x?.endpoints.every((e) => e.healthy)));
  });

  test('deregistering every instance removes the service', async () => {
    consul.deregister('ratings-1');
    await serviceWhere('one endpoint left', 'ratings.default.mesh', (s) => s?.endpoints.length === 1);
    consul.deregister('ratings-2');
    await serviceWhere('ratings.default.mesh gone', 'ratings.default.mesh', (s) => s === undefined);
  });
});
