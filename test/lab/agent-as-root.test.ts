import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createLab, type Lab, type LabHost, type LabProcess, requireLabTools } from './lab.js';

// The README's walkthrough as a new user types it: `sudo vmesh agent --controller ... --token-file F` (root, group 0,
// capture on) on a host whose resolver does not answer. h1 runs the controller, h2 the agent.
requireLabTools(['ip', 'nft', 'setpriv']);

const ROOT = join(import.meta.dirname, '..', '..');
const CLI = join(ROOT, 'src', 'cli', 'main.ts');
const node = process.execPath;
const PROXY_GID = 1337;

describe('agent started as plain root, the way the README shows it', () => {
  let lab: Lab;
  let h1: LabHost;
  let h2: LabHost;
  let agent: LabProcess;
  let controller: LabProcess;
  const ctlDir = mkdtempSync(join(tmpdir(), 'vmesh-root-ctl-'));
  const agentDir = mkdtempSync(join(tmpdir(), 'vmesh-root-agent-'));
  let resolvDir = '';
  const api = 'https://127.0.0.1:15014';
  const cli = (args: string[]) =>
    h1.execOk(node, ['--import', 'tsx', CLI, ...args, '--controller', api, '--data-dir', ctlDir], { timeoutMs: 30_000 });
  // No uid/gid given when spawned: the agent runs as root with group 0, like `sudo vmesh agent`.
  const agentArgv = [
    '--import',
    'tsx',
    CLI,
    'agent',
    '--controller',
    '',
    '--token-file',
    join(agentDir, 'token'),
    '--data-dir',
    agentDir,
    '--host-name',
    'h2',
  ];
  const vmeshOnH2 = (args: string[]) => h2.exec(node, ['--import', 'tsx', CLI, ...args], { timeoutMs: 30_000 });

  before(async () => {
    lab = await createLab({ hosts: 2 });
    [h1, h2] = lab.hosts as [LabHost, LabHost];
    // An on-link resolver that never answers: what capture verify must not depend on.
    resolvDir = `/etc/netns/${h2.netns}`;
    mkdirSync(resolvDir, { recursive: true });
    writeFileSync(join(resolvDir, 'resolv.conf'), 'nameserver 198.18.0.254\n');
    controller = h1.spawn(node, ['--import', 'tsx', CLI, 'controller', '--data-dir', ctlDir, '--advertise', h1.ipv4]);
    await controller.waitForLine(/"ready":true/, 30_000);
    const token = (await cli(['token', 'create', '--host', 'h2', '--ttl', '10m'])).trim();
    await h2.execOk('sh', ['-c', `umask 077 && printf %s '${token}' > ${join(agentDir, 'token')}`]);
    agentArgv[5] = `${h1.ipv4}:15012`;
    // No uid/gid given: the agent runs as root with group 0, like `sudo vmesh agent`.
    agent = h2.spawn(node, agentArgv);
    await agent.waitForLine(/"ready":true/, 30_000);
    // Capture goes on once the proxy listens, which takes the first config from the controller.
    const end = Date.now() + 30_000;
    while (!/flags owner/.test((await h2.exec('nft', ['list', 'table', 'inet', 'vmesh'])).stdout) && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 200));
    }
  });
  after(async () => {
    await lab?.teardown();
    for (const d of [ctlDir, agentDir, resolvDir]) if (d) rmSync(d, { recursive: true, force: true });
  });

  test('the agent takes the proxy group itself, says so once, and captures', async () => {
    assert.match(agent.stderr(), /switched to the proxy group/);
    const status = readFileSync(`/proc/${agent.pid}/status`, 'utf8');
    assert.match(status, new RegExp(`^Gid:\\s+${PROXY_GID}\\s+${PROXY_GID}\\s+${PROXY_GID}\\s+${PROXY_GID}$`, 'm'));
    assert.match(status, new RegExp(`^Groups:\\s+${PROXY_GID}\\s*$`, 'm'));
    assert.match(await h2.execOk('nft', ['list', 'table', 'inet', 'vmesh']), /flags owner/, 'capture installed, tied to the agent');
  });

  test('capture verify passes although no upstream resolver answers: DNS capture is proved by the agent itself', async () => {
    const r = await vmeshOnH2(['capture', 'verify', '-o', 'json']);
    const report = JSON.parse(r.stdout) as { ok: boolean; checks: Array<{ name: string; ok: boolean; detail: string }> };
    const dns = report.checks.filter((c) => c.name.startsWith('dns'));
    assert.ok(dns.length > 0 && dns.every((c) => c.ok), JSON.stringify(report.checks));
    assert.equal(report.ok, true, JSON.stringify(report.checks));
  });

  test("a second agent on the host cannot take the running one's capture over: it is refused in words", async () => {
    const second = await h2.exec(node, agentArgv, { timeoutMs: 60_000 });
    assert.notEqual(second.code, 0);
    assert.match(second.stderr, /VMESH_ERR_CONFLICT.*belongs to another running process/);
    assert.doesNotThrow(() => process.kill(agent.pid, 0), 'the first agent still runs');
    assert.match(await h2.execOk('nft', ['list', 'table', 'inet', 'vmesh']), /flags owner/, 'its capture is untouched');
  });

  test('nothing in a normal start looks like a failure: no DEP0123, no warning about snapshots', () => {
    assert.doesNotMatch(agent.stderr(), /DEP0123|ServerName to an IP address/);
    const bad = `${agent.stderr()}\n${controller.stderr()}`.split('\n').filter((l) => /"level":(40|50)/.test(l) && /snapshot/.test(l));
    assert.deepEqual(bad, []);
  });
});
