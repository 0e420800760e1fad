import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { workloadRegistered } from '../../../src/api/http/workloads.js';
import { proxyStatusList } from '../../../src/api/http/xds.js';
import { ApiClient } from '../../../src/cli/api-client.js';
import { loadControllerConfig } from '../../../src/config/controller.js';
import { type RunningController, startController } from '../../../src/controller/controller.js';
import { createLogger } from '../../../src/lib/logger.js';
import { echoClientConstructor, say, startEchoServer } from '../../support/echo-grpc.js';

const cleanups: Array<() => unknown> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

test('a proxyless gRPC client (@grpc/grpc-js-xds) resolves and calls a mesh service through the plaintext xDS port', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'vmesh-proxyless-'));
  const cfg = loadControllerConfig({
    flags: { dataDir, listen: '127.0.0.1', grpcPort: '0', apiPort: '0', xdsPlaintextPort: '0' },
    env: {},
    file: {},
  });
  const controller: RunningController = await startController(cfg, createLogger({ level: 'silent' }));
  cleanups.push(() => controller.stop());
  assert.ok(controller.xdsPlaintextPort);

  const a = await startEchoServer('echo-a');
  const b = await startEchoServer('echo-b');
  cleanups.push(a.stop, b.stop);
  const api = new ApiClient({
    url: `https://127.0.0.1:${controller.apiPort}`,
    token: readFileSync(controller.adminTokenFile, 'utf8').trim(),
    caPem: controller.ca.certPem,
  });
  // Two instances of one service; the service port is the first registration's, b listens elsewhere (its target port).
  const port = a.port;
  await api.call(workloadRegistered, 'POST', '/v1/workloads', {
    name: 'echo-a',
    service: 'echo',
    address: '127.0.0.1',
    ports: [`grpc:${a.port}`],
    host: 'h8',
  });
  await api.call(workloadRegistered, 'POST', '/v1/workloads', {
    name: 'echo-b',
    service: 'echo',
    address: '127.0.0.1',
    ports: [`grpc:${b.port}`],
    host: 'h9',
  });
  await controller.model.rebuild();

  process.env.GRPC_XDS_BOOTSTRAP_CONFIG = JSON.stringify({
    xds_servers: [
      { server_uri: `127.0.0.1:${controller.xdsPlaintextPort}`, channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] },
    ],
    node: { id: 'proxyless-test', locality: {}, metadata: { NAMESPACE: 'default' } },
  });
  const xds = await import('@grpc/grpc-js-xds');
  xds.register();
  const Echo = echoClientConstructor();
  const client = new Echo(`xds:///echo.default.mesh:${port}`, grpc.credentials.createInsecure());
  cleanups.push(() => client.close());
  const servers = new Set<string>();
  for (let i = 0; i < 10; i++) {
    const reply = await say(client, `hello ${i}`);
    assert.equal(reply.text, `hello ${i}`);
    servers.add(reply.server);
  }
  assert.deepEqual([...servers].sort(), ['echo-a', 'echo-b'], 'round robin over both endpoints from EDS');
  const status = await api.call(proxyStatusList, 'GET', '/v1/xds/status');
  const row = status.find((r) => r.node === 'proxyless~proxyless-test');
  assert.ok(row?.connected, JSON.stringify(status));
  assert.equal(row?.types.LDS?.state, 'SYNCED');
  assert.equal(row?.types.CDS?.state, 'SYNCED');
});
