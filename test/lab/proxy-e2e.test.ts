import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createLab, type Lab, type LabHost, requireLabTools } from './lab.js';

// h1 runs the controller; h2 an agent with its proxy and capture, and an app calling reviews by name;
// h3 runs two versions of reviews (not meshed: plaintext). The app changes nothing: DNS and TCP are captured.
requireLabTools(['ip', 'nft', 'setpriv']);

const ROOT = join(import.meta.dirname, '..', '..');
const CLI = join(ROOT, 'src', 'cli', 'main.ts');
const FIX = join(import.meta.dirname, 'fixtures');
const node = process.execPath;
const APP = { uid: 1500, gid: 1500 };

const SPLIT = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - match:
    - headers: {end-user: {exact: jason}}
    route:
    - destination: {host: reviews, subset: v2}
  - route:
    - destination: {host: reviews, subset: v1}
      weight: 90
    - destination: {host: reviews, subset: v2}
      weight: 10
`;

describe('the data plane in the lab: capture, DNS and the proxy route an unmodified app', () => {
  let lab: Lab;
  let h1: LabHost;
  let h2: LabHost;
  let h3: LabHost;
  let agentProc: { stop(): Promise<void> } | undefined;
  const ctlDir = mkdtempSync(join(tmpdir(), 'vmesh-e2e-ctl-'));
  const agentDir = mkdtempSync(join(tmpdir(), 'vmesh-e2e-agent-'));
  const api = 'https://127.0.0.1:15014';
  const cli = (args: string[]) =>
    h1.execOk(node, ['--import', 'tsx', CLI, ...args, '--controller', api, '--data-dir', ctlDir], { timeoutMs: 30_000 });

  before(async () => {
    lab = await createLab({ hosts: 3 });
    [h1, h2, h3] = lab.hosts as [LabHost, LabHost, LabHost];
    // The client host's own resolver settings (ip netns exec bind-mounts /etc/netns/<ns>/resolv.conf): an
    // on-link nameserver, as a real host has a route to its resolver. Capture sends its queries to the agent.
    mkdirSync(`/etc/netns/${h2.netns}`, { recursive: true });
    writeFileSync(`/etc/netns/${h2.netns}/resolv.conf`, 'nameserver 198.18.0.254\n');
    const controller = h1.spawn(node, ['--import', 'tsx', CLI, 'controller', '--data-dir', ctlDir, '--advertise', h1.ipv4]);
    const servers = h3.spawn(node, [join(FIX, 'http-named.mjs'), 'v1:9080', 'v2:9081']);
    await Promise.all([controller.waitForLine(/"ready":true/, 20_000), servers.waitForLine(/ready/)]);
    const token = (await cli(['token', 'create', '--host', 'h2'])).trim();
    writeFileSync(join(agentDir, 'token'), token, { mode: 0o600 });
    // The agent's sockets carry the proxy's group, which capture lets through.
    const agent = h2.spawn(
      node,
      [
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
      ],
      { uid: 0, gid: 1337 },
    );
    await agent.waitForLine(/"ready":true/, 20_000);
    agentProc = agent;
    // The agent routes the VIP range and installs capture itself once its proxy listens.
    const captureUntil = Date.now() + 20_000;
    while (!(await h2.execOk('nft', ['list', 'tables'])).includes('inet vmesh')) {
      if (Date.now() > captureUntil) throw new Error(`the agent never installed capture: ${agent.stderr().slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    for (const [name, version, port] of [
      ['reviews-v1', 'v1', 9080],
      ['reviews-v2', 'v2', 9081],
    ] as const) {
      await cli([
        'workload',
        'register',
        '--name',
        name,
        '--service',
        'reviews',
        '--address',
        h3.ipv4,
        '--port',
        `http:${port}`,
        '--label',
        `version=${version}`,
        '--host',
        'h3',
        '--no-wait',
      ]);
    }
    const file = join(ctlDir, 'split.yaml');
    writeFileSync(file, SPLIT);
    await cli(['config', 'apply', '-f', file]);
    // Wait until the agent applied the weighted route.
    const until = Date.now() + 20_000;
    for (;;) {
      const dump = await h2.exec(node, [
        '-e',
        "require('http').get('http://127.0.0.1:15000/config_dump',r=>{let b='';r.on('data',c=>b+=c);r.on('end',()=>console.log(b))})",
      ]);
      if (dump.stdout.includes('outbound|9080|v2|reviews.default.mesh') && dump.stdout.includes('"weighted_clusters"')) break;
      if (Date.now() > until) throw new Error(`the agent never received the split: ${agent.stderr().slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    await new Promise((r) => setTimeout(r, 300));
  });
  after(async () => {
    await lab?.teardown();
    if (h2) rmSync(`/etc/netns/${h2.netns}`, { recursive: true, force: true });
  });

  test('the app resolves reviews through the agent DNS proxy (udp 53 captured)', async () => {
    const r = await h2.execOk('dig', ['+short', '@198.18.0.254', 'reviews.default.svc.cluster.local'], APP);
    assert.match(r.trim(), /^240\.240\.\d+\.\d+$/);
  });

  test('requests by name are split 90/10 between the versions', async () => {
    const out = await h2.execOk(node, [join(FIX, 'http-load.mjs'), 'http://reviews.default.mesh:9080/', '300'], {
      ...APP,
      timeoutMs: 90_000,
    });
    const counts = JSON.parse(out) as Record<string, number>;
    assert.equal(counts.errors, 0, out);
    assert.equal((counts.v1 ?? 0) + (counts.v2 ?? 0), 300, out);
    // 10% of 300 is 30 (sd ≈ 5.2): well inside 10..55 unless the split is wrong.
    assert.ok((counts.v2 ?? 0) >= 10 && (counts.v2 ?? 0) <= 55, out);
  });

  test('a header match routes to v2 only', async () => {
    const script =
      "const h=require('http');let n=0,v2=0;const go=()=>h.get({host:'reviews',port:9080,path:'/',headers:{'end-user':'jason'}},r=>{let b='';r.on('data',c=>b+=c);r.on('end',()=>{n++;if(b.startsWith('v2'))v2++;n<20?go():console.log(JSON.stringify({n,v2}))})}).on('error',e=>console.log(JSON.stringify({error:e.code})));go()";
    const out = JSON.parse(await h2.execOk(node, ['-e', script], APP)) as { n: number; v2: number };
    assert.deepEqual(out, { n: 20, v2: 20 });
  });
  test('when the agent stops, capture comes off and a VIP is refused at once, not left hanging', async () => {
    await agentProc?.stop();
    const status = JSON.parse(
      await h2.execOk(node, ['--import', 'tsx', CLI, 'capture', 'status', '-o', 'json'], { timeoutMs: 30_000 }),
    ) as { installed: string };
    assert.equal(status.installed, 'none');
    const script =
      "const t=Date.now();require('net').connect(9080,'240.240.0.1').on('error',e=>console.log(e.code,Date.now()-t)).on('connect',()=>console.log('connected'))";
    const [code, ms] = (await h2.execOk(node, ['-e', script], APP)).trim().split(' ');
    assert.equal(code, 'ECONNREFUSED');
    assert.ok(Number(ms) < 500, `refused after ${ms} ms`);
    // And plain traffic to other hosts still works without the mesh.
    const direct = await h2.execOk(node, [join(FIX, 'http-load.mjs'), `http://${h3.ipv4}:9080/`, '3'], APP);
    assert.equal(JSON.parse(direct).v1, 3);
  });
});
