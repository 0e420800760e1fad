import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createLab, type Lab, type LabHost, type LabProcess, requireLabTools } from './lab.js';

// Two controllers sharing state in (fake) Consul KV, each on its own lab host, and an agent given both addresses:
// h1 runs Consul and controller A, h2 controller B, h3 the agent. The hosts are separate, so each controller's
// certificate names only its own address, as in a real deployment.
requireLabTools(['ip']);

const ROOT = join(import.meta.dirname, '..', '..');
const CLI = join(ROOT, 'src', 'cli', 'main.ts');
const FAKE_CONSUL = join(ROOT, 'test', 'support', 'fake-consul-main.ts');
const FIX = join(import.meta.dirname, 'fixtures');
const node = process.execPath;
const API = 'https://127.0.0.1:15014';

describe('failover between two controllers sharing state in Consul KV', () => {
  let lab: Lab;
  let h1: LabHost;
  let h2: LabHost;
  let h3: LabHost;
  let controllerA: LabProcess;
  let controllerB: LabProcess;
  let agent: LabProcess;
  const dirA = mkdtempSync(join(tmpdir(), 'vmesh-lab-ctlA-'));
  const dirB = mkdtempSync(join(tmpdir(), 'vmesh-lab-ctlB-'));
  const agentDir = mkdtempSync(join(tmpdir(), 'vmesh-lab-agent-'));

  const cliOn = (h: LabHost, dir: string, args: string[]) =>
    h.execOk(node, ['--import', 'tsx', CLI, ...args, '--controller', API, '--data-dir', dir], { timeoutMs: 30_000 });
  const startController = (h: LabHost, dir: string) =>
    h.spawn(node, [
      '--import',
      'tsx',
      CLI,
      'controller',
      '--data-dir',
      dir,
      '--advertise',
      h.ipv4,
      '--store',
      'consul',
      '--consul',
      `http://${h1.ipv4}:8500`,
      '--consul-wait',
      '5',
      '--host-timeout',
      '15',
    ]);
  const register = (h: LabHost, dir: string, w: Record<string, unknown>) =>
    h.execOk(node, [join(FIX, 'api-call.mjs'), API, dir, 'POST', '/v1/workloads', JSON.stringify(w)], { timeoutMs: 20_000 });
  const agentGet = async (path: string): Promise<string> =>
    h3.execOk(node, [
      '-e',
      `require('http').get('http://127.0.0.1:15000${path}',r=>{let b='';r.on('data',c=>b+=c);r.on('end',()=>console.log(b))}).on('error',e=>console.log('error '+e.message))`,
    ]);
  async function eventually<T>(what: string, probe: () => Promise<T | undefined>, ms: number): Promise<T> {
    const until = Date.now() + ms;
    let last: unknown;
    while (Date.now() < until) {
      try {
        const v = await probe();
        if (v !== undefined) return v;
      } catch (e) {
        last = e;
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    throw new Error(`timed out after ${ms} ms: ${what}${last ? ` (${(last as Error).message})` : ''}`);
  }
  const xdsRow = async (h: LabHost, dir: string) =>
    (
      JSON.parse(await cliOn(h, dir, ['proxy-status', '-o', 'json'])) as Array<{
        node: string;
        connected: boolean;
        types: Record<string, { state: string }>;
      }>
    ).find((r) => r.node === 'h3');
  const hostRow = async (h: LabHost, dir: string) =>
    (JSON.parse(await cliOn(h, dir, ['host', 'list', '-o', 'json'])) as Array<{ name: string; state: string }>).find(
      (r) => r.name === 'h3',
    );

  before(async () => {
    lab = await createLab({ hosts: 3 });
    [h1, h2, h3] = lab.hosts as [LabHost, LabHost, LabHost];
    const consul = h1.spawn(node, ['--import', 'tsx', FAKE_CONSUL, h1.ipv4, '8500']);
    await consul.waitForLine(/^listening /, 20_000);
    controllerA = startController(h1, dirA);
    await controllerA.waitForLine(/"ready":true/, 30_000);
    controllerB = startController(h2, dirB);
    await controllerB.waitForLine(/"ready":true/, 30_000);
  });
  after(async () => {
    await lab?.teardown();
  });

  test('the second controller took the first one’s CA and admin token from the store', () => {
    assert.equal(readFileSync(join(dirB, 'ca', 'ca-cert.pem'), 'utf8'), readFileSync(join(dirA, 'ca', 'ca-cert.pem'), 'utf8'));
    assert.equal(readFileSync(join(dirB, 'ca', 'ca-key.pem'), 'utf8'), readFileSync(join(dirA, 'ca', 'ca-key.pem'), 'utf8'));
    assert.equal(readFileSync(join(dirB, 'admin-token'), 'utf8'), readFileSync(join(dirA, 'admin-token'), 'utf8'));
  });

  test('an agent given both controllers joins with a token made on B, through A, and syncs xDS', async () => {
    // Made on B, used through A (first in the agent's list): tokens live in the shared store.
    const token = (await cliOn(h2, dirB, ['token', 'create', '--host', 'h3', '--ttl', '10m'])).trim();
    assert.match(token, /^vmesh1\./);
    await h3.execOk('sh', ['-c', `umask 077 && printf %s '${token}' > ${join(agentDir, 'token')}`]);
    agent = h3.spawn(node, [
      '--import',
      'tsx',
      CLI,
      'agent',
      '--controller',
      `${h1.ipv4}:15012,${h2.ipv4}:15012`,
      '--token-file',
      join(agentDir, 'token'),
      '--data-dir',
      agentDir,
      '--host-name',
      'h3',
      '--no-capture',
      '--no-proxy',
    ]);
    await agent.waitForLine(/"ready":true/, 30_000);
    const row = await eventually(
      'h3 synced on A',
      async () => {
        const r = await xdsRow(h1, dirA);
        return r?.connected && r.types.CDS?.state === 'SYNCED' ? r : undefined;
      },
      20_000,
    );
    assert.ok(row.connected);
    // B knows the host too (from the store), though the agent talks to A.
    assert.ok(await hostRow(h2, dirB));
  });

  test('a workload registered through A reaches the agent, and its certificate is signed', async () => {
    const out = await register(h1, dirA, {
      name: 'reviews-v1',
      service: 'reviews',
      serviceAccount: 'reviews',
      address: h3.ipv4,
      ports: ['http:9080'],
      host: 'h3',
    });
    assert.match(out, /^done \d+ 201 /, out);
    await eventually(
      'reviews in the agent’s config',
      async () => ((await agentGet('/config_dump')).includes('outbound|9080||reviews.default.mesh') ? true : undefined),
      20_000,
    );
    await eventually(
      'the reviews certificate',
      async () => ((await agentGet('/certs')).includes('/sa/reviews') ? true : undefined),
      30_000,
    );
  });

  test('with A stopped the agent fails over to B: xDS, health reports and certificate signing go on through B', async () => {
    await controllerA.stop();
    const started = Date.now();
    // A change applied through B reaches the agent: its xDS stream is now on B.
    const out = await register(h2, dirB, {
      name: 'ratings-v1',
      service: 'ratings',
      serviceAccount: 'ratings',
      address: h3.ipv4,
      ports: ['http:9090'],
      host: 'h3',
    });
    assert.match(out, /^done \d+ 201 /, out);
    await eventually(
      'ratings in the agent’s config',
      async () => ((await agentGet('/config_dump')).includes('outbound|9090||ratings.default.mesh') ? true : undefined),
      45_000,
    );
    const synced = Date.now() - started;
    const row = await eventually(
      'h3 connected and synced on B',
      async () => {
        const r = await xdsRow(h2, dirB);
        return r?.connected && r.types.CDS?.state === 'SYNCED' ? r : undefined;
      },
      20_000,
    );
    assert.ok(row.connected);
    // Health reports: B hears from the host itself.
    await eventually('h3 live on B', async () => ((await hostRow(h2, dirB))?.state === 'live' ? true : undefined), 45_000);
    // Signing: the new workload's certificate comes from B, for the same root.
    await eventually(
      'the ratings certificate',
      async () => ((await agentGet('/certs')).includes('/sa/ratings') ? true : undefined),
      45_000,
    );
    const bundle = readFileSync(join(agentDir, 'trust-bundle.pem'), 'utf8');
    assert.ok(bundle.includes(readFileSync(join(dirB, 'ca', 'ca-cert.pem'), 'utf8').trim()), 'the agent still trusts the one shared root');
    console.log(`# failover: config applied through B reached the agent ${synced} ms after A stopped`);
  });

  test('the agent stays on B and keeps syncing', async () => {
    await register(h2, dirB, {
      name: 'details-v1',
      service: 'details',
      serviceAccount: 'details',
      address: h3.ipv4,
      ports: ['http:9070'],
      host: 'h3',
    });
    await eventually(
      'details in the agent’s config',
      async () => ((await agentGet('/config_dump')).includes('outbound|9070||details.default.mesh') ? true : undefined),
      20_000,
    );
    assert.equal(agent.child.exitCode, null, 'the agent is still running');
    await controllerB.stop();
  });
});
