import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createLab, type Lab, type LabHost, type LabProcess, requireLabTools } from './lab.js';

// A registration takes effect on a running host within a push, not a health report later: h1 runs the
// controller, h2 an agent with capture (the callers, each a uid), h3 an agent and the `reviews` server, which
// echoes the x-forwarded-client-cert its proxy adds. Every call is real curl, run as the workload's uid.
requireLabTools(['ip', 'nft', 'setpriv', 'curl']);

const ROOT = join(import.meta.dirname, '..', '..');
const CLI = join(ROOT, 'src', 'cli', 'main.ts');
const FIX = join(import.meta.dirname, 'fixtures');
const node = process.execPath;
const MARKER = 'identity-push-marker';
const ID = (sa: string) => `spiffe://cluster.local/ns/default/sa/${sa}`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs: number, diag: () => string): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`${what}: not within ${timeoutMs} ms\n${diag()}`);
    await sleep(200);
  }
}

describe('identity push: a registration is in effect on its host within 2 s, and register waits for it', () => {
  let lab: Lab;
  let h1: LabHost;
  let h2: LabHost;
  let h3: LabHost;
  let controller: LabProcess;
  const agents: LabProcess[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'vmesh-idpush-'));
  const ctlDir = join(dir, 'ctl');
  const api = 'https://127.0.0.1:15014';
  const controllerArgs = ['--import', 'tsx', CLI, 'controller', '--data-dir', ctlDir, '--host-timeout', '6'];
  const vmesh = (args: string[]) =>
    h1.exec(node, ['--import', 'tsx', CLI, ...args, '--controller', api, '--data-dir', ctlDir], { timeoutMs: 60_000 });
  const cli = async (args: string[]) => {
    const r = await vmesh(args);
    if (r.code !== 0) throw new Error(`vmesh ${args.join(' ')}: exit ${r.code}\n${r.stdout}\n${r.stderr}`);
    return r.stdout;
  };
  /** Real curl through capture, as the workload's uid: the server's JSON (marker, xfcc) or the failure. */
  const curlAs = async (uid: number) => {
    const r = await h2.exec('curl', ['-sS', '-m', '10', 'http://reviews:9080/'], { uid, gid: uid, timeoutMs: 15_000 });
    if (r.code !== 0)
      return { error: `curl exit ${r.code}: ${r.stderr.trim()}` } as { marker?: string; xfcc?: string | null; error?: string };
    return JSON.parse(r.stdout) as { marker: string; xfcc: string | null; error?: string };
  };
  const diag = () => [controller, ...agents].map((a) => a?.stderr().slice(-1500)).join('\n---\n');

  before(async () => {
    lab = await createLab({ hosts: 3, ipv6: false });
    [h1, h2, h3] = lab.hosts as [LabHost, LabHost, LabHost];
    for (const h of [h2, h3]) {
      mkdirSync(`/etc/netns/${h.netns}`, { recursive: true });
      writeFileSync(`/etc/netns/${h.netns}/resolv.conf`, 'nameserver 198.18.0.254\n');
    }
    controller = h1.spawn(node, [...controllerArgs, '--advertise', h1.ipv4]);
    const server = h3.spawn(node, [join(FIX, 'http-whoami.mjs'), '9080', MARKER]);
    await Promise.all([controller.waitForLine(/"ready":true/, 30_000), server.waitForLine(/ready/)]);
    // No agent runs yet: nothing would present the identity, so this one does not wait.
    await cli([
      'workload',
      'register',
      '--name',
      'reviews-1',
      '--service',
      'reviews',
      '--address',
      h3.ipv4,
      '--port',
      'http:9080',
      '--host',
      'h3',
      '--no-wait',
    ]);
    for (const [host, name] of [
      [h2, 'h2'],
      [h3, 'h3'],
    ] as const) {
      const adir = join(dir, name);
      mkdirSync(adir);
      writeFileSync(join(adir, 'token'), (await cli(['token', 'create', '--host', name])).trim(), { mode: 0o600 });
      const args = ['--import', 'tsx', CLI, 'agent', '--controller', `${h1.ipv4}:15012`, '--token-file', join(adir, 'token')];
      agents.push(host.spawn(node, [...args, '--data-dir', adir, '--host-name', name], { uid: 0, gid: 1337 }));
    }
    await Promise.all(agents.map((a) => a.waitForLine(/"ready":true/, 30_000)));
    for (const h of [h2, h3]) {
      await until(
        'capture installed',
        async () => ((await h.execOk('nft', ['list', 'tables'])).includes('inet vmesh') ? true : undefined),
        30_000,
        diag,
      );
    }
    // Traffic from h2 reaches reviews at all (plaintext: no uid there has an identity yet).
    await until('reviews answers through capture', async () => ((await curlAs(1650)).marker === MARKER ? true : undefined), 30_000, diag);
  });
  after(async () => {
    await lab?.teardown();
    for (const h of [h2, h3]) if (h) rmSync(`/etc/netns/${h.netns}`, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  });

  test('a pure client registered with no port or address: register returns once h2 presents it, and the first curl carries it', async (t) => {
    const before = await curlAs(1601);
    assert.equal(before.marker, MARKER, JSON.stringify(before));
    assert.equal(before.xfcc, null, 'an unregistered uid has no mesh identity');
    const out = await cli(['workload', 'register', '--name', 'client', '--uid', '1601', '--service-account', 'client', '--host', 'h2']);
    const took = /registered as a pure client; host h2 presents its identity after (\d+\.\d) s/.exec(out);
    assert.ok(took, out);
    t.diagnostic(out.trim());
    assert.ok(Number(took[1]) <= 2, `in effect within 2 s: ${out}`);
    const first = await curlAs(1601);
    assert.equal(first.marker, MARKER, JSON.stringify(first));
    assert.match(first.xfcc ?? '', new RegExp(`URI=${ID('client')}$`), 'the very first call carries the new identity');
    const listed = JSON.parse(await cli(['workload', 'list', '-o', 'json'])) as Array<{
      name: string;
      state: string;
      address: string;
      identityServed: boolean;
    }>;
    const c = listed.find((w) => w.name === 'client');
    assert.deepEqual([c?.state, c?.address, c?.identityServed], ['client', h2.ipv4, true]);
    assert.match(await cli(['workload', 'list']), /\bclient\s+.*\b1601\s+client\b/);
  });

  test('a serving workload with a uid: the same, by default wait', async () => {
    const out = await cli([
      'workload',
      'register',
      '--name',
      'app',
      '--service',
      'app',
      '--address',
      h2.ipv4,
      '--port',
      'http:9999',
      '--uid',
      '1600',
      '--host',
      'h2',
    ]);
    assert.match(out, /host h2 presents its identity after \d+\.\d s/);
    const first = await curlAs(1600);
    assert.match(first.xfcc ?? '', new RegExp(`URI=${ID('app')}$`), JSON.stringify(first));
  });

  test('deregistering withdraws the identity within 2 s: the uid calls without one', async () => {
    await cli(['workload', 'deregister', 'client']);
    const start = Date.now();
    let last: Awaited<ReturnType<typeof curlAs>> | undefined;
    while (Date.now() - start < 2000) {
      last = await curlAs(1601);
      if (last.marker === MARKER && last.xfcc === null) break;
      await sleep(100);
    }
    assert.equal(last?.xfcc, null, `still presented 2 s after deregistration: ${JSON.stringify(last)}`);
    assert.equal(last?.marker, MARKER);
  });

  test('--no-wait returns without waiting; waiting on a host with no agent fails in one line naming it', async () => {
    const reg = ['workload', 'register', '--service', 'ghost', '--address', '198.18.0.99', '--port', 'http:80', '--host', 'h9'];
    const quick = await vmesh([...reg, '--name', 'ghost-1', '--no-wait']);
    assert.equal(quick.code, 0, quick.stderr);
    assert.doesNotMatch(quick.stdout, /presents/);
    const started = Date.now();
    const waited = await vmesh([...reg, '--name', 'ghost-2', '--wait-timeout', '2']);
    const elapsed = Date.now() - started;
    assert.notEqual(waited.code, 0);
    const lines = waited.stderr.split('\n').filter((l) => l !== '');
    assert.equal(lines.length, 1, waited.stderr);
    assert.match(
      lines[0] ?? '',
      /^VMESH_ERR_IDENTITY_NOT_SERVED: workload default\/ghost-2 is registered, but host "h9" did not present its identity within 2 s/,
    );
    // The CLI's own start takes seconds under tsx; the wait itself ends at its timeout.
    assert.ok(elapsed < 20_000, `took ${elapsed} ms`);
  });

  test('after a controller restart the agents are back within seconds and proxy-status is SYNCED for every type', async (t) => {
    await controller.stop();
    // Down long enough for the agents' retries to back off.
    await sleep(8000);
    controller = h1.spawn(node, [...controllerArgs, '--advertise', h1.ipv4]);
    await controller.waitForLine(/"ready":true/, 30_000);
    const poll = await h1.exec(node, [join(FIX, 'xds-synced.mjs'), api, ctlDir, '15000', 'h2', 'h3'], { timeoutMs: 30_000 });
    const connected = /connected (\d+)/.exec(poll.stdout);
    const synced = /synced (\d+)/.exec(poll.stdout);
    t.diagnostic(poll.stdout.trim().slice(0, 300));
    assert.ok(connected, `the agents did not reconnect: ${poll.stdout}\n${diag()}`);
    // The agents retry at most 1 s apart (about 1.5 s measured on a quiet machine; the old backoff took 5–35 s);
    // the bound leaves room for a loaded machine, where the poller's own start counts too.
    assert.ok(Number(connected[1]) <= 5000, `reconnected after ${connected[1]} ms`);
    assert.ok(synced, `proxy-status never SYNCED for every type: ${poll.stdout.slice(0, 3000)}`);
    assert.ok(Number(synced[1]) <= 5000, `SYNCED after ${synced[1]} ms`);
    const table = await cli(['proxy-status']);
    for (const h of ['h2', 'h3']) {
      const row = table.split('\n').find((l) => l.startsWith(`${h} `)) ?? '';
      assert.equal(row.match(/SYNCED/g)?.length, 6, table);
    }
    // And a registration made after the restart is still pushed and waited for.
    assert.match(await cli(['workload', 'register', '--name', 'late', '--uid', '1603', '--host', 'h2']), /presents its identity after/);
    assert.match((await curlAs(1603)).xfcc ?? '', new RegExp(`URI=${ID('late')}$`));
  });
});
