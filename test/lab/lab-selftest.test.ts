import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { after, test } from 'node:test';
import { createLab, type Lab, requireLabTools } from './lab.js';

requireLabTools();

const labs: Lab[] = [];
after(async () => {
  await Promise.all(labs.map((l) => l.teardown()));
});

async function newLab(hosts: number): Promise<Lab> {
  const lab = await createLab({ hosts });
  labs.push(lab);
  return lab;
}

function netnsList(): string[] {
  return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter(Boolean);
}

function netnsPids(ns: string): number[] {
  try {
    return execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
      .split('\n')
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

function hasPing(): boolean {
  try {
    execFileSync('sh', ['-c', 'command -v ping'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** A pid that certainly belonged to a process which has exited. */
async function deadPid(): Promise<number> {
  const child = spawn('true');
  await new Promise((r) => child.on('exit', r));
  const pid = child.pid;
  assert.ok(pid !== undefined);
  assert.throws(() => process.kill(pid, 0), { code: 'ESRCH' });
  return pid;
}

// Dual-stack TCP echo server: `::` accepts the IPv4 connections too.
const SERVER = `require('net').createServer((s) => { s.end('pong ' + s.remoteAddress + '\\n'); })
  .listen(7000, '::', () => console.log('listening uid=' + process.getuid()));`;
const CLIENT = `const s = require('net').connect({ host: process.argv[1], port: 7000 });
  let d = ''; s.setEncoding('utf8').on('data', (c) => { d += c; }).on('end', () => { process.stdout.write(d); });
  s.setTimeout(3000, () => { console.error('timeout'); process.exit(2); });`;

test('two hosts reach each other over IPv4 and IPv6, as root and as uid 1337', async () => {
  const lab = await newLab(2);
  const h1 = lab.host('h1');
  const h2 = lab.host('h2');
  assert.equal(h1.ipv4, '198.18.0.1');
  assert.equal(h2.ipv6, '2001:2::2');
  assert.match(h1.netns, new RegExp(`^vmesh-${process.pid}-\\d+-h1$`));

  // Nothing of the lab appears in the machine's own namespace.
  assert.doesNotMatch(execFileSync('ip', ['-o', 'link'], { encoding: 'utf8' }), /br0|veth|\bv\d+@/);

  const server = h2.spawn(process.execPath, ['-e', SERVER], { uid: 1337, gid: 1337 });
  assert.equal(await server.waitForLine(/^listening/, 5000), 'listening uid=1337');
  // The spawned process really runs as 1337, seen from outside.
  assert.match(readFileSync(`/proc/${server.pid}/status`, 'utf8'), /^Uid:\s+1337\s+1337\s+1337\s+1337$/m);

  assert.equal((await h1.execOk(process.execPath, ['-e', CLIENT, h2.ipv4], { timeoutMs: 5000 })).trim(), 'pong ::ffff:198.18.0.1');
  assert.equal((await h1.execOk(process.execPath, ['-e', CLIENT, h2.ipv6], { timeoutMs: 5000 })).trim(), 'pong 2001:2::1');

  if (hasPing()) {
    await h1.execOk('ping', ['-c1', '-W2', h2.ipv4]);
    await h1.execOk('ping', ['-c1', '-W2', h2.ipv6]);
  }

  assert.equal((await h1.execOk('id', ['-u'], { uid: 1337 })).trim(), '1337');
  assert.equal((await h1.execOk('id', ['-G'], { uid: 1337, gid: 1338 })).trim(), '1338');
  assert.equal((await h1.execOk('id', ['-u'])).trim(), '0');
  const failed = await h1.exec('sh', ['-c', 'echo oops >&2; exit 3']);
  assert.deepEqual([failed.code, failed.stderr], [3, 'oops\n']);
  await assert.rejects(h1.execOk('sh', ['-c', 'echo oops >&2; exit 3']), /exit code 3[\s\S]*oops/);
  assert.equal(await h1.execOk('cat', [], { input: 'hello' }), 'hello');
  assert.equal((await h1.exec('sleep', ['10'], { timeoutMs: 100 })).timedOut, true);

  const printer = h1.spawn('sh', ['-c', 'echo one; echo two']);
  const seen: string[] = [];
  for await (const line of printer.lines()) seen.push(line);
  assert.deepEqual(seen, ['one', 'two']);
  await assert.rejects(printer.waitForLine(/three/, 1000), /exited before printing/);

  // Stray processes not started through spawn() must also go with the lab.
  const stray = spawn('ip', ['netns', 'exec', h1.netns, 'sleep', '60'], { stdio: 'ignore' });
  const strayExit = new Promise((r) => stray.on('exit', r));
  await waitFor(async () => netnsPids(h1.netns).length > 0);

  await lab.teardown();
  await lab.teardown(); // idempotent
  await strayExit;
  const remaining = netnsList();
  for (const h of lab.hosts) assert.ok(!remaining.includes(h.netns), `${h.netns} still exists`);
  assert.ok(!remaining.some((ns) => ns.startsWith(`${lab.id}-`)), 'switch namespace still exists');
  assert.notEqual(server.child.exitCode ?? server.child.signalCode, null, 'spawned server still running');
});

// Lab tests run in parallel and every createLab sweeps dead leftovers, so the planted leftover may be removed by a
// concurrent run at any point (even mid `ip netns add`): that is the behaviour under test, so it is tolerated.
test('createLab removes leftovers of dead runs but never those of live ones', async () => {
  const liveOther = spawn('sleep', ['60'], { stdio: 'ignore' });
  const liveOtherNs = `vmesh-${liveOther.pid}-h1`;
  let dead = '';
  try {
    execFileSync('ip', ['netns', 'add', liveOtherNs]);
    for (let attempt = 0; ; attempt++) {
      dead = `vmesh-${await deadPid()}-h1`;
      try {
        execFileSync('ip', ['netns', 'add', dead], { stdio: 'pipe' });
        break;
      } catch (e) {
        if (attempt === 3) throw e;
      }
    }
    // A process left running inside the dead run's namespace must be killed, not orphaned in an unnamed netns.
    const orphan = spawn('ip', ['netns', 'exec', dead, 'sleep', '60'], { stdio: 'ignore' });
    const orphanExit = new Promise<string>((r) => orphan.on('exit', (code, sig) => r(sig ?? `exit ${code}`)));
    await waitFor(
      async () => orphan.exitCode !== null || orphan.signalCode !== null || !netnsList().includes(dead) || netnsPids(dead).length > 0,
    );

    const first = await newLab(1);
    assert.ok(!netnsList().includes(dead), 'dead leftover was not removed');
    const timeout = new Promise<string>((r) => setTimeout(r, 3000, 'still running').unref());
    assert.notEqual(await Promise.race([orphanExit, timeout]), 'still running', 'process in dead leftover not killed');

    const second = await newLab(1);
    const names = netnsList();
    assert.ok(names.includes(first.host('h1').netns), 'a live lab of this process was removed');
    assert.ok(names.includes(liveOtherNs), 'a namespace of another live process was removed');
    assert.notEqual(first.id, second.id);
    await Promise.all([first.teardown(), second.teardown()]);
  } finally {
    liveOther.kill('SIGKILL');
    for (const ns of [liveOtherNs, dead].filter(Boolean)) {
      for (const pid of netnsPids(ns)) process.kill(pid, 'SIGKILL');
      try {
        execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
      } catch {
        /* already removed */
      }
    }
  }
});

test('IPv4-only lab has no IPv6 address', async () => {
  const lab = await createLab({ hosts: 1, ipv6: false });
  labs.push(lab);
  const h1 = lab.host('h1');
  assert.equal(h1.ipv6, '');
  assert.doesNotMatch(await h1.execOk('ip', ['-6', 'addr', 'show', 'dev', 'eth0']), /inet6/);
  assert.throws(() => lab.host('h9'), /no host h9/);
  assert.throws(() => requireLabTools(['ip', 'no-such-tool-x']), /missing: `no-such-tool-x`$/);
  await lab.teardown();
  assert.throws(() => h1.spawn('true', []), /torn down/);
});

async function waitFor(cond: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}
