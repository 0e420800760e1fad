import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createLab, type Lab, type LabHost, type LabProcess, requireLabTools } from './lab.js';

// Two hosts: h1 runs the controller, h2 an agent that joins with a token and syncs xDS over mutual TLS.
requireLabTools(['ip']);

const ROOT = join(import.meta.dirname, '..', '..');
const CLI = join(ROOT, 'src', 'cli', 'main.ts');
const FIX = join(import.meta.dirname, 'fixtures');
const node = process.execPath;

describe('xDS to an agent in the lab', () => {
  let lab: Lab;
  let h1: LabHost;
  let h2: LabHost;
  let controller: LabProcess;
  let agent: LabProcess;
  const ctlDir = mkdtempSync(join(tmpdir(), 'vmesh-lab-ctl-'));
  const agentDir = mkdtempSync(join(tmpdir(), 'vmesh-lab-agent-'));
  const api = 'https://127.0.0.1:15014';
  const cli = (args: string[]) =>
    h1.execOk(node, ['--import', 'tsx', CLI, ...args, '--controller', api, '--data-dir', ctlDir], { timeoutMs: 30_000 });
  const startAgent = () =>
    h2.spawn(node, [
      '--import',
      'tsx',
      CLI,
      'agent',
      '--controller',
      `${h1.ipv4}:15012`,
      '--token-file',
      join(agentDir, 'token'),
      '--data-dir',
      agentDir,
      '--host-name',
      'h2',
      // This test is about the control plane; capture is tested with the proxy in proxy-e2e.test.ts.
      '--no-capture',
    ]);

  before(async () => {
    lab = await createLab({ hosts: 2 });
    [h1, h2] = lab.hosts as [LabHost, LabHost];
    controller = h1.spawn(node, ['--import', 'tsx', CLI, 'controller', '--data-dir', ctlDir, '--advertise', h1.ipv4]);
    await controller.waitForLine(/"ready":true/, 20_000);
    const token = (await cli(['token', 'create', '--host', 'h2', '--ttl', '10m'])).trim();
    assert.match(token, /^vmesh1\./);
    await h2.execOk('sh', ['-c', `umask 077 && printf %s '${token}' > ${join(agentDir, 'token')}`]);
    agent = startAgent();
    await agent.waitForLine(/"ready":true/, 20_000);
  });
  after(async () => {
    await lab?.teardown();
  });

  async function waitSynced(host: string, timeoutMs = 15_000): Promise<Record<string, unknown>> {
    const until = Date.now() + timeoutMs;
    let last = '';
    while (Date.now() < until) {
      last = await cli(['proxy-status', '-o', 'json']);
      const row = (JSON.parse(last) as Array<{ node: string; connected: boolean; types: Record<string, { state: string }> }>).find(
        (r) => r.node === host,
      );
      if (row?.connected && ['CDS', 'LDS'].every((t) => row.types[t]?.state === 'SYNCED')) return row;
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`${host} never synced: ${last}`);
  }

  test('the agent joins, connects over mTLS and ACKs its config; proxy-status shows it', async () => {
    const row = await waitSynced('h2');
    assert.equal(row.mode, 'delta');
    const hosts = JSON.parse(await cli(['host', 'list', '-o', 'json'])) as Array<{ name: string }>;
    assert.deepEqual(
      hosts.map((h) => h.name),
      ['h2'],
    );
  });

  test('a newly registered workload reaches the agent within a second', async () => {
    const watcher = h2.spawn(node, [join(FIX, 'watch-config.mjs'), '15000', 'outbound|9080||reviews.default.mesh']);
    await watcher.waitForLine(/watching/);
    const body = JSON.stringify({
      name: 'reviews-v2',
      service: 'reviews',
      serviceAccount: 'reviews',
      address: h2.ipv4,
      ports: ['http:9080'],
      labels: { version: 'v2' },
      host: 'h2',
      uid: 1001,
    });
    const call = await h1.execOk(node, [join(FIX, 'api-call.mjs'), api, ctlDir, 'POST', '/v1/workloads', body]);
    const done = Number(/^done (\d+) 201 /.exec(call)?.[1]);
    assert.ok(done > 0, `registration failed: ${call}`);
    const seenLine = await watcher.waitForLine(/^(seen \d+|timeout)$/, 25_000);
    const seen = Number(/^seen (\d+)$/.exec(seenLine)?.[1]);
    assert.ok(seen > 0, 'the agent never received the cluster');
    const ms = seen - done;
    assert.ok(ms < 1000, `config reached the agent ${ms} ms after the registration returned (want < 1000)`);
    const row = await waitSynced('h2');
    assert.ok(row.lastPush, 'proxy-status records the push');
    // The agent's DNS proxy now answers the new service's names with its VIP.
    const vip = (await h2.execOk('dig', ['+short', '-p', '15053', '@127.0.0.1', 'reviews.default.svc.cluster.local'])).trim();
    assert.match(vip, /^240\.240\.\d+\.\d+$/);
    assert.equal((await h2.execOk('dig', ['+short', '+tcp', '-p', '15053', '@127.0.0.1', 'reviews.default.mesh'])).trim(), vip);
  });

  test('proxy-config shows what was sent, --local what the agent applied, secrets by name only', async () => {
    const sent = JSON.parse(await cli(['proxy-config', 'h2', 'clusters', '-o', 'json'])) as Array<{ name: string }>;
    assert.ok(
      sent.some((c) => c.name === 'inbound|9080||'),
      'h2 runs reviews-v2 on 9080',
    );
    const local = await h2.execOk(node, ['--import', 'tsx', CLI, 'proxy-config', 'h2', 'listeners', '--local', '-o', 'json']);
    const names = (JSON.parse(local) as Array<{ name: string }>).map((l) => l.name);
    assert.ok(names.includes('virtualInbound') && names.includes('virtualOutbound'), names.join(','));
    const secrets = JSON.parse(await cli(['proxy-config', 'h2', 'secrets', '-o', 'json'])) as Array<{ name: string; resource: object }>;
    assert.ok(secrets.some((x) => x.name === 'spiffe://cluster.local/ns/default/sa/reviews'));
    assert.doesNotMatch(JSON.stringify(secrets), /PRIVATE KEY/);
    // --local: what this agent's SDS serves its proxy, described (whose certificate, until when), never a key.
    const served = await h2.execOk(node, ['--import', 'tsx', CLI, 'proxy-config', 'h2', 'secrets', '--local', '-o', 'json']);
    const byName = new Map(
      (JSON.parse(served) as Array<{ name: string; kind: string; spiffeId?: string; notAfter?: string }>).map((x) => [x.name, x]),
    );
    const reviews = byName.get('spiffe://cluster.local/ns/default/sa/reviews');
    assert.equal(reviews?.spiffeId, 'spiffe://cluster.local/ns/default/sa/reviews', served);
    assert.ok(Date.parse(reviews?.notAfter ?? '') > Date.now(), served);
    assert.equal(byName.get('default')?.kind, 'certificate', served);
    assert.equal(byName.get('ROOTCA')?.kind, 'trust', served);
    assert.doesNotMatch(served, /PRIVATE KEY/);
    // The agent reaches its controller by IP and joined, renewed nothing yet but signs workloads: no channel of it
    // sent the IP as TLS server name (Node warns once per process when one does).
    assert.doesNotMatch(agent.stderr(), /DEP0123|ServerName to an IP address/);
    const text = await h2.execOk(node, ['--import', 'tsx', CLI, 'proxy-config', 'h2', 'secrets', '--local']);
    assert.match(text, /spiffe:\/\/cluster\.local\/ns\/default\/sa\/reviews\s+certificate\s+\d{4}-/);
  });

  test('with the controller down, a restarted agent serves its last good config from disk', async () => {
    await controller.stop();
    await agent.stop();
    agent = startAgent();
    await agent.waitForLine(/"ready":true/, 20_000);
    const dump = await h2.execOk(node, [
      '-e',
      "require('http').get('http://127.0.0.1:15000/config_dump',r=>{let b='';r.on('data',c=>b+=c);r.on('end',()=>console.log(b))})",
    ]);
    assert.match(dump, /outbound\|9080\|\|reviews\.default\.mesh/);
  });
});
