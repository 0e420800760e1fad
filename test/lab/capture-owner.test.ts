import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createLab, type Lab, type LabHost, type LabProcess, requireLabTools } from './lab.js';

// The nftables table tied to the process that holds capture (the agent): it goes with that process however it
// ends, kill -9 included, and nobody else can change it meanwhile. h1 holds capture, h2 is a plain server.
requireLabTools(['ip', 'nft', 'setpriv']);

const ROOT = join(import.meta.dirname, '..', '..');
const CLI = join(ROOT, 'src', 'cli', 'main.ts');
const FIX = join(import.meta.dirname, 'fixtures');
const TSX = ['--import', 'tsx'];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function hasTable(h: LabHost): Promise<boolean> {
  return /^table inet vmesh\b/m.test(await h.execOk('nft', ['list', 'tables']));
}

describe('capture owned by the agent process (nftables table owner flag)', () => {
  let lab: Lab;
  let h1: LabHost;
  let h2: LabHost;
  const started: LabProcess[] = [];
  const vmesh = (args: string[]) => h1.exec(process.execPath, [...TSX, CLI, ...args], { timeoutMs: 30_000 });
  const holder = () => {
    const p = h1.spawn(process.execPath, [...TSX, join(FIX, 'capture-owner.ts'), h2.ipv4]);
    started.push(p);
    return p;
  };
  const childOf = (line: string) => Number(/child=(\d+)/.exec(line)?.[1]);

  before(async () => {
    lab = await createLab({ hosts: 2 });
    [h1, h2] = lab.hosts as [LabHost, LabHost];
  });
  after(async () => {
    for (const p of started) await p.stop().catch(() => {});
    await lab?.teardown();
  });

  test('the holder replaces its table at will; nobody else can change or take it; status says it is owned', async () => {
    const p = holder();
    const child = childOf(await p.waitForLine(/^(installed|refused)/, 30_000));
    assert.ok(child > 0, p.stderr());
    try {
      const listing = await h1.execOk('nft', ['list', 'table', 'inet', 'vmesh']);
      assert.match(listing, /flags owner/);
      assert.match(listing, /redirect to :15001/, 'the full rule set, after full -> DNS-only -> full through one session');

      const rm = await vmesh(['capture', 'remove', '--backend', 'nftables']);
      assert.notEqual(rm.code, 0);
      assert.match(rm.stderr, /VMESH_ERR_CONFLICT.*belongs to another running process/);
      assert.equal(await hasTable(h1), true);

      // A second agent cannot take the capture of a live one over: it is refused, in words.
      const second = holder();
      const line = await second.waitForLine(/^(installed|refused)/, 30_000);
      assert.match(line, /^refused VMESH_ERR_CONFLICT .*belongs to another running process/);

      const st = await vmesh(['capture', 'status', '--output', 'json']);
      assert.equal(st.code, 0, `capture status: ${st.stderr}`);
      const status = JSON.parse(st.stdout) as { nftables: { owned: boolean } };
      assert.equal(status.nftables.owned, true);

      process.kill(p.pid, 'SIGUSR2');
      await p.waitForLine(/^removed$/, 10_000);
      assert.equal(await hasTable(h1), false);
    } finally {
      process.kill(child, 'SIGKILL');
      await p.stop().catch(() => {});
    }
  });

  test('kill -9 of the holder: the table is gone within 1 s although a child it forked lives on; capture remove after it is a no-op', async () => {
    const p = holder();
    const child = childOf(await p.waitForLine(/^installed/, 30_000));
    try {
      assert.equal(await hasTable(h1), true);
      const killedAt = Date.now();
      process.kill(p.pid, 'SIGKILL');
      while ((await hasTable(h1)) && Date.now() - killedAt < 1000) await sleep(50);
      assert.equal(await hasTable(h1), false, `table still there ${Date.now() - killedAt} ms after kill -9`);
      assert.doesNotThrow(() => process.kill(child, 0), 'the forked child is still alive');
      // systemd's ExecStopPost still runs `capture remove` after the agent died: nothing left to do, and no error.
      const rm = await vmesh(['capture', 'remove']);
      assert.equal(rm.code, 0, rm.stderr);
    } finally {
      process.kill(child, 'SIGKILL');
      await p.stop().catch(() => {});
    }
  });

  test('vmesh capture install from the CLI is persistent: the table outlives the command', async () => {
    const r = await vmesh(['capture', 'install', '--backend', 'nftables', '--controller-addresses', h2.ipv4]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await hasTable(h1), true);
    assert.doesNotMatch(await h1.execOk('nft', ['list', 'table', 'inet', 'vmesh']), /flags owner/);
    // An agent starting later takes it over (replaces it with a table of its own).
    const p = holder();
    const child = childOf(await p.waitForLine(/^installed/, 30_000));
    process.kill(child, 'SIGKILL');
    assert.match(await h1.execOk('nft', ['list', 'table', 'inet', 'vmesh']), /flags owner/);
    const killedAt = Date.now();
    process.kill(p.pid, 'SIGKILL');
    while ((await hasTable(h1)) && Date.now() - killedAt < 1000) await sleep(50);
    assert.equal(await hasTable(h1), false);
  });
});
