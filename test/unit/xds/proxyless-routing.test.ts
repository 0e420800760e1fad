/**
 * Proxyless gRPC clients (the real @grpc/grpc-js-xds) against a running controller's plaintext xDS port: they
 * must follow VirtualService splits, header routes and DestinationRule hash policies, resolve every name vmesh
 * gives a service, fail fast on names that do not exist, and leave no node behind when they go away.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { applyResult } from '../../../src/api/http/config.js';
import { workloadRegistered } from '../../../src/api/http/workloads.js';
import { proxyStatusList } from '../../../src/api/http/xds.js';
import { ApiClient } from '../../../src/cli/api-client.js';
import { loadControllerConfig } from '../../../src/config/controller.js';
import { type RunningController, startController } from '../../../src/controller/controller.js';
import { createLogger } from '../../../src/lib/logger.js';
import { waitFor } from '../../support/controller-harness.js';
import { echoClientConstructor, startEchoServer } from '../../support/echo-grpc.js';

// grpc-js-xds reads a per-channel bootstrap under this option: each client gets its own xDS client and node id.
const BOOTSTRAP_OPTION = 'grpc.TEST_ONLY_DO_NOT_USE_IN_PROD.xds_bootstrap_config';

type Reply = { text: string; server: string };
type RawEcho = grpc.Client & {
  Say(req: { text: string }, md: grpc.Metadata, opts: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r?: Reply) => void): void;
};

const cleanups: Array<() => unknown> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

let controller: RunningController;
let api: ApiClient;
/** The service port of `who` (the blue workload's port; green listens on its own, as its target port). */
let port = 0;
let Echo: new (target: string, creds: grpc.ChannelCredentials, opts: grpc.ChannelOptions) => RawEcho;

function client(target: string, nodeId: string): RawEcho {
  const bootstrap = {
    xds_servers: [
      { server_uri: `127.0.0.1:${controller.xdsPlaintextPort}`, channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] },
    ],
    node: { id: nodeId, locality: {}, metadata: { NAMESPACE: 'default' } },
  };
  const c = new Echo(target, grpc.credentials.createInsecure(), { [BOOTSTRAP_OPTION]: JSON.stringify(bootstrap) });
  cleanups.push(() => c.close());
  return c;
}

function call(c: RawEcho, headers: Record<string, string> = {}, deadlineMs = 10_000): Promise<Reply> {
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(headers)) md.set(k, v);
  return new Promise((resolve, reject) =>
    c.Say({ text: 'hi' }, md, { deadline: Date.now() + deadlineMs }, (e, r) => (e || !r ? reject(e ?? new Error('no reply')) : resolve(r))),
  );
}

/** `n` calls, `width` at a time; how many each server answered. */
async function tally(c: RawEcho, n: number, headers: Record<string, string> = {}, width = 25): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (let done = 0; done < n; done += width) {
    const replies = await Promise.all(Array.from({ length: Math.min(width, n - done) }, () => call(c, headers)));
    for (const r of replies) counts[r.server] = (counts[r.server] ?? 0) + 1;
  }
  return counts;
}

/** Calls until `streak` calls in a row are answered by `server` (bounded by `timeoutMs`); the time the streak began. */
async function untilStreak(c: RawEcho, server: string, headers: Record<string, string>, streak = 20, timeoutMs = 5000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let run = 0;
  let began = 0;
  while (Date.now() < deadline) {
    const sent = Date.now();
    const r = await call(c, headers);
    if (r.server !== server) run = 0;
    else {
      if (run === 0) began = sent;
      run += 1;
      if (run >= streak) return began;
    }
  }
  throw new Error(`no ${streak} calls in a row answered by ${server} within ${timeoutMs} ms`);
}

const destinationRules = `
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: { name: who, namespace: default }
spec:
  host: who
  subsets:
  - { name: blue, labels: { version: blue } }
  - { name: green, labels: { version: green } }
---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: { name: sticky, namespace: default }
spec:
  host: sticky
  trafficPolicy:
    loadBalancer:
      consistentHash: { httpHeaderName: x-user }
`;

const splitVs = `
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: { name: who, namespace: default }
spec:
  hosts: [who]
  http:
  - match: [{ headers: { x-tester: { exact: alice } } }]
    route: [{ destination: { host: who, subset: green } }]
  - route:
    - { destination: { host: who, subset: blue }, weight: 85 }
    - { destination: { host: who, subset: green }, weight: 15 }
`;

const allGreenVs = `
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: { name: who, namespace: default }
spec:
  hosts: [who]
  http:
  - route: [{ destination: { host: who, subset: green } }]
`;

before(async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'vmesh-proxyless-routing-'));
  const cfg = loadControllerConfig({
    flags: { dataDir, listen: '127.0.0.1', grpcPort: '0', apiPort: '0', xdsPlaintextPort: '0' },
    env: {},
    file: {},
  });
  controller = await startController(cfg, createLogger({ level: 'silent' }));
  cleanups.push(() => controller.stop());
  assert.ok(controller.xdsPlaintextPort);
  api = new ApiClient({
    url: `https://127.0.0.1:${controller.apiPort}`,
    token: readFileSync(controller.adminTokenFile, 'utf8').trim(),
    caPem: controller.ca.certPem,
  });
  const blue = await startEchoServer('blue');
  const green = await startEchoServer('green');
  cleanups.push(blue.stop, green.stop);
  port = blue.port;
  const register = (name: string, service: string, p: number, labels: Record<string, string>) =>
    api.call(workloadRegistered, 'POST', '/v1/workloads', {
      name,
      service,
      address: '127.0.0.1',
      ports: [`grpc:${p}`],
      host: `h-${name}`,
      labels,
    });
  await register('who-blue', 'who', blue.port, { version: 'blue' });
  await register('who-green', 'who', green.port, { version: 'green' });
  await register('sticky-blue', 'sticky', blue.port, {});
  await register('sticky-green', 'sticky', green.port, {});
  await api.call(applyResult, 'POST', '/v1/config', `${destinationRules}---${splitVs}`);
  await controller.model.rebuild();
  const xds = await import('@grpc/grpc-js-xds');
  xds.register();
  Echo = echoClientConstructor() as unknown as typeof Echo;
});

describe('proxyless gRPC clients follow the mesh routing', () => {
  let who: RawEcho;

  test('header route: every x-tester: alice call goes to green (300/300)', async () => {
    who = client(`xds:///who.default.mesh:${port}`, 'router-1');
    await untilStreak(who, 'green', { 'x-tester': 'alice' });
    assert.deepEqual(await tally(who, 300, { 'x-tester': 'alice' }), { green: 300 });
  });

  test('weighted split: 85/15 by subset within ±4 % over 2000 calls', async () => {
    const counts = await tally(who, 2000);
    const blue = (counts.blue ?? 0) / 2000;
    assert.ok(Math.abs(blue - 0.85) <= 0.04, `blue share ${blue} (${JSON.stringify(counts)})`);
  });

  test('a routing change reaches a running client within 1 s', async () => {
    const start = Date.now();
    await api.call(applyResult, 'POST', '/v1/config', allGreenVs);
    const began = await untilStreak(who, 'green', {});
    assert.ok(began - start < 1000, `the change took ${began - start} ms to reach the client`);
    await api.call(applyResult, 'POST', '/v1/config', splitVs);
    await untilStreak(who, 'blue', {}, 3);
  });

  test('hash policy: a consistentHash header keeps each user on one endpoint, users spread over both', async () => {
    const sticky = client(`xds:///sticky.default.mesh:${port}`, 'hasher-1');
    await call(sticky, { 'x-user': 'warmup' });
    const servers = new Set<string>();
    for (let u = 0; u < 16; u++) {
      const counts = await tally(sticky, 10, { 'x-user': `user-${u}` }, 10);
      assert.equal(Object.keys(counts).length, 1, `user-${u} went to ${JSON.stringify(counts)}`);
      servers.add(Object.keys(counts)[0] ?? '');
    }
    assert.deepEqual([...servers].sort(), ['blue', 'green']);
  });
});

const missingSubsetVs = `
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: { name: who, namespace: default }
spec:
  hosts: [who]
  http:
  - match: [{ headers: { x-tester: { exact: carol } } }]
    route: [{ destination: { host: ghost, port: { number: 7 } } }]
  - match: [{ headers: { x-tester: { exact: alice } } }]
    route: [{ destination: { host: who, subset: green } }]
  - route: [{ destination: { host: who, subset: blue } }]
`;

describe('proxyless routes to what does not exist', () => {
  test('a route to a service that does not exist fails its calls at once; the other routes keep working', async () => {
    const c = client(`xds:///who.default.mesh:${port}`, 'missing-subset-1');
    await api.call(applyResult, 'POST', '/v1/config', missingSubsetVs);
    try {
      // The previous config also answers alice and the default route: carol's calls are answered until the new
      // routes reach the client, then each must fail at once.
      let e: grpc.ServiceError | undefined;
      let took = 0;
      for (const until = Date.now() + 10_000; e === undefined; ) {
        const start = Date.now();
        e = await call(c, { 'x-tester': 'carol' }, 20_000).then(
          (r) => {
            if (Date.now() > until) assert.fail(`a call routed to a missing service was answered by ${r.server}`);
            return undefined;
          },
          (x: grpc.ServiceError) => x,
        );
        took = Date.now() - start;
        if (e === undefined) await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(e.code, grpc.status.UNAVAILABLE, e.message);
      assert.ok(took < 5000, `failed after ${took} ms`);
      await untilStreak(c, 'green', { 'x-tester': 'alice' }, 5);
      await untilStreak(c, 'blue', {}, 5);
    } finally {
      await api.call(applyResult, 'POST', '/v1/config', splitVs);
    }
  });
});

describe('proxyless names', () => {
  for (const name of ['who.default.svc.cluster.local', 'who.default', 'who']) {
    test(`xds:///${name}:PORT resolves to the service and its routes`, async () => {
      const c = client(`xds:///${name}:${port}`, `alias-${name}`);
      assert.deepEqual(await tally(c, 20, { 'x-tester': 'alice' }), { green: 20 });
    });
  }

  test('a name that does not exist fails fast (UNAVAILABLE, well before the 15 s does-not-exist timer)', async () => {
    const c = client('xds:///nope.default.mesh:1', 'nope-1');
    const start = Date.now();
    const e = await call(c, {}, 20_000).then(
      () => assert.fail('a call to a name that does not exist succeeded'),
      (x: grpc.ServiceError) => x,
    );
    const ms = Date.now() - start;
    assert.equal(e.code, grpc.status.UNAVAILABLE, e.message);
    assert.ok(ms < 5000, `failed after ${ms} ms`);
  });
});

describe('proxyless node lifecycle', () => {
  test('200 short-lived clients leave no proxyless rows behind', async () => {
    const status = () => api.call(proxyStatusList, 'GET', '/v1/xds/status');
    const ids = Array.from({ length: 200 }, (_, i) => `short-${i}`);
    for (let i = 0; i < ids.length; i += 20) {
      await Promise.all(
        ids.slice(i, i + 20).map(async (id) => {
          const c = client(`xds:///who.default.mesh:${port}`, id);
          await call(c);
          c.close();
        }),
      );
    }
    const left = await waitFor(
      'no short-lived proxyless rows',
      async () => {
        const rows = (await status()).filter((r) => r.node.startsWith('proxyless~short-'));
        return rows.length === 0 ? rows : undefined;
      },
      5000,
    ).catch(async () => (await status()).filter((r) => r.node.startsWith('proxyless~short-')));
    assert.equal(left.length, 0, `${left.length} rows left, e.g. ${JSON.stringify(left.slice(0, 3))}`);
    // A connected proxyless client keeps its row.
    assert.ok((await status()).some((r) => r.node === 'proxyless~router-1' && r.connected));
  });
});
