import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { APP, adminGet, type FeatureLab, startFeatureLab } from './features-lab.js';
import type { LabHost, LabProcess } from './lab.js';

// The agent as a service under abuse, on the features lab (controller on h1, client host h2, server host h3, both
// meshed): the hosts' resolver is a fake upstream DNS server on h1, h3 runs a server on the SSH port, and an app on h2
// keeps calling while the test kills proxy workers, the agent itself, and finally the controller.

const FIX = join(import.meta.dirname, 'fixtures');
const node = process.execPath;
const UPSTREAM = '198.18.0.1';
const UPSTREAM_ANSWER = '198.18.0.77';
const SSH_SERVER =
  "require('net').createServer(s=>{s.on('error',()=>{});s.end('SSH-2.0-vmesh-lab\\r\\n')}).listen(22,'0.0.0.0',()=>console.log('ready'))";
// A server no mesh service names, on the server host: outbound TCP to it must connect whenever no agent runs on h2.
const PLAIN_PORT = 7070;
const PLAIN_SERVER = `require('http').createServer((q,s)=>s.end('plain')).listen(${PLAIN_PORT},'0.0.0.0',()=>console.log('ready'))`;
const REVIEWS_ID = 'spiffe://cluster.local/ns/default/sa/reviews';
const APP_ID = 'spiffe://cluster.local/ns/default/sa/app';

type Event = [at: number, outcome: string, ms: number];
type Events = Partial<Record<'http' | 'ssh' | 'dns' | 'vip', Event[]>>;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs: number, diag: () => string): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`${what}: not within ${timeoutMs} ms\n${diag()}`);
    await sleep(100);
  }
}

function alive(pid: number): boolean {
  try {
    // A zombie is gone for this purpose: it holds no sockets.
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** The vmesh tables and their rules in a host's whole ruleset. */
async function vmeshRules(h: LabHost): Promise<{ tables: number; rules: number }> {
  const doc = JSON.parse(await h.execOk('nft', ['-j', 'list', 'ruleset'])) as {
    nftables: Array<Record<string, { family?: string; name?: string; table?: string }>>;
  };
  const ours = (x: { family?: string; name?: string; table?: string } | undefined, key: 'name' | 'table') =>
    x?.family === 'inet' && x[key] === 'vmesh';
  return {
    tables: doc.nftables.filter((i) => ours(i.table, 'name')).length,
    rules: doc.nftables.filter((i) => ours(i.rule, 'table')).length,
  };
}

const failures = (ev: readonly Event[] | undefined) => (ev ?? []).filter((e) => e[1] !== 'ok');
const brief = (ev: readonly Event[], t0: number) => JSON.stringify(ev.slice(0, 15).map(([t, o, ms]) => [t - t0, o, ms]));

describe('agent lifecycle: fail-safe capture, worker and agent crashes, restart without a controller, DNS', () => {
  let f: FeatureLab;
  let h2: LabHost;
  let h3: LabHost;
  let upstream: LabProcess;
  let vip = '';
  let workers = 0;
  const dir = mkdtempSync(join(tmpdir(), 'vmesh-lifecycle-'));
  // The probe runs as the app's uid and looks for its stop file here.
  chmodSync(dir, 0o755);
  const diag = () => (f ? `h2 agent:\n${f.agents.h2.stderr().slice(-2500)}\nh3 agent:\n${f.agents.h3.stderr().slice(-2500)}` : '');

  const dig = (args: string[]) => h2.execOk('dig', ['+short', '+tries=1', '+time=3', ...args], { ...APP, timeoutMs: 15_000 });
  const workerPids = async (h: LabHost) => (JSON.parse(await adminGet(h, '/proxy')) as { pids: number[] }).pids;
  /** Workers all up and serving (a replacement counts once it applied its config), capture in place: meshed again. */
  const meshed = async (h: LabHost, count: number, not: readonly number[] = []) => {
    const pids = await workerPids(h);
    if ((JSON.parse(await adminGet(h, '/proxy')) as { serving: number }).serving !== count) return undefined;
    const listening = (JSON.parse(await adminGet(h, '/listeners')) as Array<{ port: number }>).some((l) => l.port === 15001);
    const table = (await vmeshRules(h)).tables === 1;
    return pids.length === count && !pids.some((p) => not.includes(p)) && listening && table ? pids : undefined;
  };
  let probes = 0;
  /** Starts the probe loops on h2 as the app; stop() ends them and returns what they saw. */
  const startProbe = async (o: object) => {
    const stopFile = join(dir, `stop-${probes++}`);
    const p = h2.spawn(node, [join(FIX, 'lifecycle-probe.mjs'), JSON.stringify({ stopFile, maxMs: 60_000, ...o })], APP);
    await p.waitForLine(/^started$/, 15_000);
    return {
      async stop(): Promise<Events> {
        writeFileSync(stopFile, '');
        return JSON.parse(await p.waitForLine(/^\{/, 20_000)) as Events;
      },
    };
  };
  /** One connection to the VIP: how it ended and how fast. */
  const vipOnce = async () => {
    const script = `const t=Date.now();require('net').connect(9080,'${vip}').on('error',e=>console.log(e.code,Date.now()-t)).on('connect',function(){console.log('connected',Date.now()-t);this.destroy()})`;
    const [code, ms] = (await h2.execOk(node, ['-e', script], { ...APP, timeoutMs: 20_000 })).trim().split(' ');
    return { code, ms: Number(ms) };
  };
  const sshOnce = async () =>
    (
      await h2.execOk(
        node,
        [
          '-e',
          `require('net').connect(22,'${h3.ipv4}').on('data',d=>{console.log(String(d).trim());process.exit(0)}).on('error',e=>console.log(e.code))`,
        ],
        { ...APP, timeoutMs: 20_000 },
      )
    ).trim();

  before(async () => {
    f = await startFeatureLab({
      services: [{ name: 'reviews', port: 9080, portName: 'http', endpoints: [{ name: 'reviews-1', port: 9080 }] }],
      servers: ['http:reviews-1:9080'],
      nameserver: UPSTREAM,
      // A hung worker is judged after 3 s here (10 s by default), to keep the test short.
      agentArgs: ['--proxy-liveness-timeout', '3'],
    });
    ({ h2, h3 } = f);
    upstream = f.h1.spawn(node, [join(FIX, 'fake-dns.mjs'), UPSTREAM]);
    const ssh = h3.spawn(node, ['-e', SSH_SERVER]);
    const plain = h3.spawn(node, ['-e', PLAIN_SERVER]);
    await Promise.all([upstream.waitForLine(/^ready$/), ssh.waitForLine(/^ready$/), plain.waitForLine(/^ready$/)]);
    workers = (await workerPids(h2)).length;
  });
  after(async () => {
    await f?.teardown();
    rmSync(dir, { recursive: true, force: true });
  });

  test('DNS: mesh names answered by the agent, other names forwarded to the resolver of resolv.conf, over UDP and TCP', async () => {
    for (const name of ['reviews', 'reviews.default', 'reviews.default.mesh', 'reviews.default.svc.cluster.local']) {
      for (const transport of ['+notcp', '+tcp']) {
        const ip = (await dig([transport, name])).trim();
        // The upstream answers NXDOMAIN for these: a virtual IP can only come from the agent's name table.
        assert.match(ip, /^240\.240\.\d+\.\d+$/, `${name} (${transport})`);
        vip ||= ip;
        assert.equal(ip, vip, `${name} (${transport})`);
      }
    }
    assert.equal((await dig(['+notcp', 'udp-check.upstream.test'])).trim(), UPSTREAM_ANSWER);
    assert.equal((await dig(['+tcp', 'tcp-check.upstream.test'])).trim(), UPSTREAM_ANSWER);
    // The upstream saw them from the agent, each over the transport the app used.
    await upstream.waitForLine(/"q":"udp-check\.upstream\.test","type":"A","t":"udp"/, 5000);
    await upstream.waitForLine(/"q":"tcp-check\.upstream\.test","type":"A","t":"tcp"/, 5000);
    const nx = await h2.execOk('dig', ['+tries=1', '+time=3', 'nothing-here.example.invalid'], { ...APP, timeoutMs: 15_000 });
    assert.match(nx, /status: NXDOMAIN/);
    // And the app reaches the service by name over mTLS, as its own identity.
    const r = await f.client<{ results: Array<{ s?: number; body?: string }> }>('http', { url: 'http://reviews:9080/whoami', n: 1 });
    assert.equal(r.results[0]?.s, 200, JSON.stringify(r));
    assert.match(r.results[0]?.body ?? '', new RegExp(`By=${REVIEWS_ID};.*URI=${APP_ID}`));
  });

  test('kill -9 of one proxy worker: SSH-port and DNS never fail, requests by name recover within seconds', async () => {
    const pids = await workerPids(h2);
    assert.ok(pids.length >= 1, 'the agent runs proxy workers');
    const victim = pids[0] as number;
    const probe = await startProbe({
      http: { url: 'http://reviews:9080/' },
      ssh: { host: h3.ipv4, port: 22 },
      dns: { name: 'p%d.upstream.test', expect: UPSTREAM_ANSWER },
    });
    await sleep(1500);
    const killedAt = Date.now();
    process.kill(victim, 'SIGKILL');
    await until('the agent restarts the killed worker', () => meshed(h2, pids.length, [victim]), 30_000, diag);
    const backAt = Date.now();
    await sleep(1500);
    const ev = await probe.stop();
    for (const kind of ['ssh', 'dns'] as const) {
      assert.ok((ev[kind]?.length ?? 0) > 20, `${kind} probe ran: ${ev[kind]?.length}`);
      assert.deepEqual(failures(ev[kind]), [], `${kind} failed: ${brief(failures(ev[kind]), killedAt)}`);
    }
    const http = ev.http ?? [];
    const bad = failures(http);
    // Only requests on a connection the killed worker held can fail; the other worker takes new ones at once.
    assert.ok(
      bad.every(([t]) => t >= killedAt - 1000 && t <= killedAt + 5000),
      `failures outside 5 s of the kill: ${brief(bad, killedAt)}`,
    );
    const afterBack = http.filter(([t]) => t > backAt);
    assert.ok(
      afterBack.length >= 5 && failures(afterBack).length === 0,
      `after the restart: ${brief(failures(afterBack), backAt)} of ${afterBack.length}`,
    );
    assert.ok(http.filter(([t, o]) => o === 'ok' && t > killedAt && t < backAt).length > 0 || backAt - killedAt < 1000, 'served meanwhile');
    console.log(`one worker killed: ${bad.length} of ${http.length} requests failed; replaced in ${backAt - killedAt} ms`);
  });

  test('kill -9 of every worker, three times: VIPs are refused at once, SSH-port and DNS keep working, traffic comes back', async () => {
    const count = (await workerPids(h2)).length;
    const probe = await startProbe({
      vip: { host: vip, port: 9080 },
      ssh: { host: h3.ipv4, port: 22 },
      dns: { name: 'q%d.upstream.test', expect: UPSTREAM_ANSWER },
    });
    const t0 = Date.now();
    const rounds: Array<{ killedAt: number; backAt: number }> = [];
    for (let i = 0; i < 3; i++) {
      const pids = await until('meshed', () => meshed(h2, count), 30_000, diag);
      await sleep(700);
      const killedAt = Date.now();
      for (const pid of pids) process.kill(pid, 'SIGKILL');
      await until('workers back and capture on again', () => meshed(h2, count, pids), 30_000, diag);
      rounds.push({ killedAt, backAt: Date.now() });
    }
    await sleep(1000);
    const ev = await probe.stop();
    for (const kind of ['ssh', 'dns'] as const) {
      assert.ok((ev[kind]?.length ?? 0) > 20, `${kind} probe ran`);
      assert.deepEqual(failures(ev[kind]), [], `${kind} failed: ${brief(failures(ev[kind]), t0)}`);
    }
    const v = ev.vip ?? [];
    const refused = v.filter(([, o]) => o === 'ECONNREFUSED');
    // Connections the dying workers had accepted may be cut; none is left waiting and none is refused slowly.
    const cut = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'http-empty']);
    assert.deepEqual(
      v.filter(([, o]) => o !== 'ok' && !cut.has(o)),
      [],
      'every VIP connection was served, refused or cut',
    );
    assert.ok(refused.length >= 3, `refusals were seen while no worker listened: ${refused.length}`);
    const slowest = Math.max(...v.map(([, , ms]) => ms));
    assert.ok(
      slowest < 500,
      `a VIP connection took ${slowest} ms to be accepted or refused: ${brief(
        v.filter(([, , ms]) => ms >= 500),
        t0,
      )}`,
    );
    for (const r of rounds) {
      assert.ok(
        v.some(([t, o]) => o !== 'ok' && t >= r.killedAt && t <= r.backAt),
        `no refusal seen while round ${rounds.indexOf(r)} had no worker`,
      );
    }
    const last = rounds.at(-1)?.backAt ?? 0;
    const tail = v.filter(([t]) => t > last + 200);
    assert.ok(tail.length >= 5 && failures(tail).length === 0, `after the last restart: ${brief(tail, last)}`);
    assert.match(f.agents.h2.stderr(), /capture removed until it is back/);
    console.log(
      `all workers killed x3: ${refused.length} refusals (slowest ${slowest} ms), back after ${rounds.map((r) => r.backAt - r.killedAt).join('/')} ms`,
    );
  });

  test('every worker hung (SIGSTOP): within the liveness timeout VIPs are refused, the workers are replaced, SSH-port and DNS never fail', async () => {
    const count = (await workerPids(h2)).length;
    const pids = await until('meshed', () => meshed(h2, count), 30_000, diag);
    const probe = await startProbe({ ssh: { host: h3.ipv4, port: 22 }, dns: { name: 'q%d.upstream.test', expect: UPSTREAM_ANSWER } });
    // Its own loop with a short give-up: a connection stuck in the hung workers' queue must not hide the moment
    // capture comes off.
    const vipProbe = await startProbe({ vip: { host: vip, port: 9080 }, timeoutMs: 500, intervalMs: 20 });
    await sleep(700);
    const stoppedAt = Date.now();
    // Alive but answering nothing: no exit tells the agent, only the silence of its liveness pings.
    for (const pid of pids) process.kill(pid, 'SIGSTOP');
    try {
      await until('hung workers replaced and capture on again', () => meshed(h2, count, pids), 40_000, diag);
    } finally {
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone: the agent killed it
        }
      }
    }
    const backAt = Date.now();
    await sleep(1500);
    const [ev, vipEv] = await Promise.all([probe.stop(), vipProbe.stop()]);
    for (const kind of ['ssh', 'dns'] as const) {
      assert.ok((ev[kind]?.length ?? 0) > 10, `${kind} probe ran`);
      assert.deepEqual(failures(ev[kind]), [], `${kind} failed: ${brief(failures(ev[kind]), stoppedAt)}`);
    }
    const v = vipEv.vip ?? [];
    const firstRefusal = v.find(([t, o]) => t >= stoppedAt && o === 'ECONNREFUSED');
    assert.ok(
      firstRefusal,
      `capture came off while every worker hung: ${brief(
        v.filter(([t]) => t >= stoppedAt),
        stoppedAt,
      )}`,
    );
    // The agent judged the workers hung within the timeout and a ping interval (3 s + 0.6 s)...
    const judged = f.agents.h2
      .stderr()
      .split('\n')
      .filter((l) => l.includes('answers no liveness ping'))
      .map((l) => (JSON.parse(l) as { silentMs: number }).silentMs);
    assert.equal(judged.length, count, `each hung worker judged once: ${judged}`);
    assert.ok(
      judged.every((ms) => ms > 3000 && ms <= 3000 + 600 + 400),
      `silent for ${judged} ms when judged`,
    );
    // ...and from then on a VIP connection is refused, not left waiting: before, it waits in the hung queue.
    assert.ok(firstRefusal[0] - stoppedAt < 3600 + 500 + 1000, `first refusal ${firstRefusal[0] - stoppedAt} ms after the hang`);
    const beforeJudged = v.filter(([t, o]) => t >= stoppedAt && t < firstRefusal[0] && o !== 'TIMEOUT');
    assert.ok(beforeJudged.length <= 1, `before the workers were judged, VIP connections waited: ${brief(beforeJudged, stoppedAt)}`);
    const refusedFast = v.filter(([t, o]) => t > firstRefusal[0] && t < backAt && o === 'ECONNREFUSED');
    assert.ok(
      refusedFast.every(([, , ms]) => ms < 500),
      `refusals were immediate: ${brief(refusedFast, stoppedAt)}`,
    );
    const tail = v.filter(([t]) => t > backAt + 200);
    assert.ok(tail.length >= 5 && failures(tail).length === 0, `after the replacement: ${brief(tail, backAt)}`);
    assert.match(f.agents.h2.stderr(), /answers no liveness ping; killing it/);
    console.log(`all workers hung: first refusal after ${firstRefusal[0] - stoppedAt} ms, replaced after ${backAt - stoppedAt} ms`);
  });

  test('kill -9 of the agent (no systemd): within 1 s its table is gone, dig resolves, plain TCP connects; a new agent meshes again', async () => {
    const agent = f.agents.h2;
    assert.match(readFileSync(`/proc/${agent.pid}/cmdline`, 'utf8'), /agent/);
    const ruleset = await vmeshRules(h2);
    assert.equal(ruleset.tables, 1);
    const pids = await workerPids(h2);
    process.kill(agent.pid, 'SIGKILL');
    const killedAt = Date.now();
    // Nobody removes the rules: the kernel drops the table with the netlink socket the agent owned it through.
    while ((await vmeshRules(h2)).tables > 0 && Date.now() - killedAt < 1000) await sleep(50);
    const goneMs = Date.now() - killedAt;
    assert.deepEqual(await vmeshRules(h2), { tables: 0, rules: 0 }, `capture still installed ${goneMs} ms after kill -9`);
    // Names resolve through resolv.conf's resolver as if vmesh were absent (dig gives up after 1 s).
    const answer = await h2.exec('dig', ['+short', '+tries=1', '+time=1', 'after-kill.upstream.test'], { ...APP, timeoutMs: 5000 });
    assert.equal(answer.stdout.trim(), UPSTREAM_ANSWER, `dig after kill -9: ${answer.stdout}${answer.stderr}`);
    // So does TCP to a destination outside the mesh (curl gives up after 1 s).
    const plain = await h2.exec('curl', ['-sS', '-m', '1', `http://${h3.ipv4}:${PLAIN_PORT}/`], { ...APP, timeoutMs: 5000 });
    assert.equal(plain.stdout, 'plain', `curl to a plain server after kill -9: ${plain.stderr}`);
    const answeredMs = Date.now() - killedAt;
    await until('the workers exit with their agent', async () => (pids.some(alive) ? undefined : true), 15_000, diag);
    // A virtual IP has no server behind it without the agent: its local route refuses it at once.
    const r = await vipOnce();
    assert.equal(r.code, 'ECONNREFUSED');
    assert.ok(r.ms < 500, `refused after ${r.ms} ms`);
    assert.equal(await sshOnce(), 'SSH-2.0-vmesh-lab');
    console.log(`agent killed: capture gone after ${goneMs} ms, dig and curl answered by ${answeredMs} ms`);

    const restartedAt = Date.now();
    await f.startAgent('h2');
    await until('the new agent meshes the host', () => meshed(h2, pids.length), 60_000, diag);
    assert.deepEqual(await vmeshRules(h2), ruleset, 'the new agent replaced the table, not stacked one');
    const out = await f.client<{ results: Array<{ s?: number }> }>('http', { url: 'http://reviews:9080/', n: 10 });
    assert.deepEqual(
      out.results.map((x) => x.s),
      Array(10).fill(200),
    );
    console.log(`agent restarted and meshed in ${Date.now() - restartedAt} ms`);
  });

  test('restart with the controller down: both agents serve from the last good config and the identities they hold', async () => {
    await f.controller.stop();
    await Promise.all([f.agents.h2.stop(), f.agents.h3.stop()]);
    await Promise.all([f.startAgent('h2'), f.startAgent('h3')]);
    for (const h of [h2, h3]) await until(`${h.name} meshed`, () => meshed(h, workers), 60_000, diag);
    // The cached name table answers; nothing upstream knows the name.
    assert.equal((await dig(['reviews'])).trim(), vip);
    const r = await f.client<{ results: Array<{ s?: number; body?: string }> }>('http', { url: 'http://reviews:9080/whoami', n: 3 });
    for (const x of r.results) {
      assert.equal(x.s, 200, JSON.stringify(r));
      assert.match(x.body ?? '', new RegExp(`By=${REVIEWS_ID};.*URI=${APP_ID}`), 'mutual TLS with both workload identities');
    }
    for (const name of ['h2', 'h3'] as const) {
      assert.match(f.agents[name].stderr(), /serving the last good config from disk/);
      // The workload keys are on disk beside the host key, readable by root only.
      assert.equal(statSync(join(f.agentDirs[name], 'workload-identities.json')).mode & 0o777, 0o600);
    }
  });
});
