import assert from 'node:assert/strict';
import { Agent, request } from 'node:http';
import { test } from 'node:test';
import { AdminServer } from '../../../src/agent/admin-server.js';

function get(port: number, path: string, agent: Agent): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => {
        text += c.toString();
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('admin answers its routes as JSON, 404 with a coded error otherwise, and stops at once despite a keep-alive client', async () => {
  let calls = 0;
  const admin = new AdminServer('127.0.0.1', 0, { '/ready': () => ({ ready: true, calls: ++calls }) });
  await admin.start();
  const agent = new Agent({ keepAlive: true, keepAliveMsecs: 60_000 });
  try {
    assert.deepEqual(await get(admin.port, '/ready', agent), { status: 200, body: { ready: true, calls: 1 } });
    const missing = await get(admin.port, '/toString', agent);
    assert.equal(missing.status, 404);
    assert.match(JSON.stringify(missing.body), /VMESH_ERR_NOT_FOUND.*no admin endpoint \/toString/);
    // A client's keep-alive socket is still open: the agent's stop has 2 s before SIGKILL and must not wait for it.
    const t0 = Date.now();
    await admin.stop();
    assert.ok(Date.now() - t0 < 1000, `admin stop took ${Date.now() - t0} ms`);
  } finally {
    agent.destroy();
  }
});
