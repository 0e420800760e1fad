import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runOk, sleep } from './exec.js';
import { createFleet, type Fleet, type FleetHost, requireFleetTools } from './fleet.js';
import { type PlaybookRun, runPlaybook, writeInventory } from './playbook.js';
import { ensureRootfs } from './rootfs.js';

// Real systemd hosts (systemd-nspawn on a cached Debian rootfs) get vmesh from the Ansible playbook over ssh:
// ctl1 runs the controller, h1 and h2 agents. Then an app on h1, running as an unprivileged user, calls a
// service on h2 by name with no change to the app: DNS and TCP are captured, the proxies speak mutual TLS.
requireFleetTools(['ansible-playbook']);

const ROOT = join(import.meta.dirname, '..', '..');
const VMESH = 'node /opt/vmesh/current/dist/src/cli/main.js';
const HELLO = { uid: 1500, user: 'hello', port: 9080 };
const APP = { uid: 1501, user: 'app' };
const asApp = `setpriv --reuid ${APP.uid} --regid ${APP.uid} --clear-groups`;
const log = (line: string) => console.error(`# fleet: ${line}`);

const FETCH = `fetch('http://hello:${HELLO.port}/', { signal: AbortSignal.timeout(5000) })
  .then(async (r) => { const b = await r.text(); if (!r.ok) throw new Error(r.status + ' ' + b); console.log(b); })
  .catch((e) => { console.error(String(e.cause ?? e)); process.exit(1); });`;

describe('the fleet: systemd hosts rolled out by ansible/site.yml', { timeout: 600_000 }, () => {
  let fleet: Fleet | undefined;
  let ctl: FleetHost;
  let h1: FleetHost;
  let h2: FleetHost;
  let inventory: string;
  const work = mkdtempSync(join(tmpdir(), 'vmesh-fleet-release-'));
  const release = join(work, 'vmesh-release.tar.gz');
  let first: PlaybookRun;
  const t0 = Date.now();

  type Hello = { host: string; uid: number; remote: string; xfcc: string | null };
  /**
   * The app's call by name, as its own user, until it answers and `done` accepts the answer (bounded): the
   * mesh converges asynchronously (the name, the routes, then the workload certificates).
   */
  const callHello = async (withinMs: number, done: (b: Hello) => boolean = () => true): Promise<Hello> => {
    const until = Date.now() + withinMs;
    let last = '';
    while (Date.now() < until) {
      const r = await h1.ssh(`${asApp} node /tmp/fetch-hello.cjs`, { timeoutMs: 15_000 });
      if (r.code === 0) {
        const body = JSON.parse(r.stdout) as Hello;
        if (done(body)) return body;
      }
      last = `${r.stdout}${r.stderr}`.trim();
      await sleep(500);
    }
    assert.fail(
      `the app never got the expected answer from http://hello:${HELLO.port}/ within ${withinMs} ms (last: ${last})\n${await diagnose()}`,
    );
  };

  /** Journals of the vmesh units for a failure message. */
  const diagnose = async (): Promise<string> => {
    if (!fleet) return '';
    const parts = await Promise.all([ctl.diagnose('vmesh-controller'), h1.diagnose('vmesh-agent'), h2.diagnose('vmesh-agent')]);
    return parts.join('\n').slice(-12_000);
  };

  before(async () => {
    // The release builds while the rootfs is made (or found) and the hosts boot. Node comes from this machine,
    // read-only (same glibc).
    const built = runOk(process.execPath, [join(ROOT, 'scripts', 'release.mjs'), '--out', release], { timeoutMs: 180_000, cwd: ROOT });
    built.catch(() => {}); // awaited below; a failure must not surface as an unhandled rejection first
    const rootfs = await ensureRootfs(log);
    log(`rootfs ready after ${Date.now() - t0} ms`);
    const [relDone, boot] = await Promise.allSettled([
      built,
      createFleet({ rootfs, hosts: ['ctl1', 'h1', 'h2'], bindReadOnly: [`${realpathSync(process.execPath)}:/usr/bin/node`], log }),
    ]);
    if (boot.status === 'fulfilled') fleet = boot.value; // so that `after` tears it down whatever failed
    if (relDone.status === 'rejected') throw relDone.reason;
    if (boot.status === 'rejected') throw boot.reason;
    const booted = boot.value;
    [ctl, h1, h2] = ['ctl1', 'h1', 'h2'].map((n) => booted.host(n)) as [FleetHost, FleetHost, FleetHost];
    log(`release built and 3 hosts booted after ${Date.now() - t0} ms`);
    inventory = writeInventory(booted, 'ctl1', ['h1', 'h2']);
    first = await runPlaybook(booted, inventory, release);
    log(`first playbook run: ${first.ms} ms`);
  });

  after(async () => {
    await fleet?.teardown();
    rmSync(work, { recursive: true, force: true });
    log(`done after ${Date.now() - t0} ms`);
  });

  test('the release carries the build, the production packages and the addon, and no dev tools', async () => {
    const entries = new Set((await runOk('tar', ['-tzf', release], { timeoutMs: 30_000 })).split('\n'));
    for (const need of [
      'package.json',
      'dist/src/cli/main.js',
      'native/build/Release/vmesh_native.node',
      'systemd/vmesh-agent.service',
      'src/xds/proto/vmesh/v1/name_table.proto',
      'node_modules/@grpc/grpc-js/package.json',
      'node_modules/yaml/package.json',
    ])
      assert.ok(entries.has(need), `the release lacks ${need}`);
    for (const dev of ['node_modules/typescript/package.json', 'node_modules/tsx/package.json', 'node_modules/@biomejs/biome/package.json'])
      assert.ok(!entries.has(dev), `the release carries the dev package ${dev}`);
  });

  test('the playbook installs and starts the controller and both agents', async () => {
    assert.equal(first.code, 0, `ansible-playbook failed:\n${first.output.slice(-8000)}\n${await diagnose()}`);
    for (const h of ['ctl1', 'h1', 'h2']) {
      const r = first.recap[h];
      assert.ok(r, `no recap for ${h}:\n${first.output.slice(-3000)}`);
      assert.equal(r.failed + r.unreachable, 0, `${h}: ${JSON.stringify(r)}`);
      assert.ok(r.changed > 0, `${h}: the first run changed nothing: ${JSON.stringify(r)}`);
    }
    assert.equal((await ctl.sshOk('systemctl is-active vmesh-controller.service')).trim(), 'active');
    for (const h of [h1, h2]) {
      const active = (await h.ssh('systemctl is-active vmesh-agent.service')).stdout.trim();
      if (active !== 'active') assert.fail(`${h.name}: vmesh-agent is ${active}\n${await h.diagnose('vmesh-agent')}`);
      assert.match(await h.sshOk('nft list tables'), /^table inet vmesh$/m, `${h.name}: capture is not installed`);
      // The unit lets the agent start its proxy workers as the proxy's own unprivileged user.
      const workers = (await h.sshOk("ps -o uid=,args= -C node | grep '[p]roxy-worker-main' || true")).trim().split('\n').filter(Boolean);
      assert.ok(workers.length > 0, `${h.name}: no proxy worker runs`);
      for (const w of workers) assert.match(w, /^\s*1337\s/, `${h.name}: a proxy worker runs as another user: ${w}`);
    }
  });

  test('proxy-status shows both agents connected, every pushed type acknowledged', async () => {
    const rows = JSON.parse(await ctl.sshOk(`${VMESH} proxy-status -o json`, { timeoutMs: 30_000 })) as Array<{
      node: string;
      connected: boolean;
      types: Record<string, { state: string }>;
    }>;
    for (const name of ['h1', 'h2']) {
      const row = rows.find((r) => r.node === name);
      assert.ok(row?.connected, `${name} is not connected: ${JSON.stringify(rows)}`);
      const states = Object.values(row.types).map((t) => t.state);
      assert.ok(states.length >= 3, `${name}: too few types pushed: ${JSON.stringify(row)}`);
      assert.deepEqual([...new Set(states)], ['SYNCED'], `${name}: ${JSON.stringify(row)}`);
    }
  });

  test('an app on h1 (unprivileged) reaches a service on h2 by name, through capture and mutual TLS', async () => {
    // The service: a plain HTTP server run by systemd as its own user. The app: node's fetch run as another user.
    await h2.sshOk(`useradd --system --no-create-home --shell /usr/sbin/nologin --uid ${HELLO.uid} ${HELLO.user} && mkdir -p /srv`);
    await h2.sshOk('cat > /srv/hello-server.mjs', {
      input: readFileSync(join(import.meta.dirname, 'fixtures', 'hello-server.mjs'), 'utf8'),
    });
    await h2.sshOk(
      `systemd-run --unit=hello --uid=${HELLO.user} -p ProtectSystem=strict /usr/bin/node /srv/hello-server.mjs ${HELLO.port}`,
    );
    await h1.sshOk(`useradd --system --no-create-home --shell /usr/sbin/nologin --uid ${APP.uid} ${APP.user}`);
    await h1.sshOk('cat > /tmp/fetch-hello.cjs', { input: FETCH });
    const register = (args: string) => ctl.sshOk(`${VMESH} workload register ${args}`, { timeoutMs: 30_000 });
    await register(`--name hello-h2 --service hello --address ${h2.ip} --port http:${HELLO.port} --host h2 --uid ${HELLO.uid}`);
    await register(`--name app-h1 --service app --address ${h1.ip} --port http:8080 --host h1 --uid ${APP.uid}`);

    // The registration reaches the agents over xDS and the workload certificates get signed: poll, bounded.
    const t = Date.now();
    // Until h1's agent holds the app's certificate the call goes out without a mesh identity (plaintext, which
    // the default PERMISSIVE mode accepts): wait for the identity.
    const body = await callHello(90_000, (b) => b.xfcc !== null);
    log(`hello answered after ${Date.now() - t} ms: ${JSON.stringify(body)}`);
    assert.equal(body.host, 'h2');
    assert.equal(body.uid, HELLO.uid);
    // From the inbound proxy on h2 (its passthrough source), with the caller's verified SPIFFE id.
    assert.equal(body.remote, '127.0.0.6', `the service was reached directly, not through h2's proxy: ${JSON.stringify(body)}`);
    // The caller's certificate: the identity of the uid that opened the connection (the app's registration).
    assert.match(body.xfcc ?? '', /URI=spiffe:\/\/cluster\.local\/ns\/default\/sa\/app(;|,|$)/, JSON.stringify(body));
    assert.match(body.xfcc ?? '', /By=spiffe:\/\/cluster\.local\/ns\/default\/sa\/hello(;|,|$)/, JSON.stringify(body));
    // The name resolved to a virtual IP through the agent's DNS proxy (udp 53 captured), as the app saw it.
    assert.match(await h1.sshOk(`${asApp} getent hosts hello`), /^240\.240\.\d+\.\d+\s+hello/);
  });

  test('a second playbook run changes nothing', async () => {
    assert.ok(fleet);
    const second = await runPlaybook(fleet, inventory, release);
    log(`second playbook run: ${second.ms} ms`);
    assert.equal(second.code, 0, second.output.slice(-8000));
    for (const h of ['ctl1', 'h1', 'h2']) {
      const r = second.recap[h];
      assert.ok(r, `no recap for ${h}`);
      assert.deepEqual(
        { changed: r.changed, failed: r.failed, unreachable: r.unreachable },
        { changed: 0, failed: 0, unreachable: 0 },
        `${h}:\n${second.output.slice(-8000)}`,
      );
    }
  });

  test('a killed agent: ExecStopPost takes capture off, systemd restarts the agent, capture returns', async () => {
    const pid = (await h2.sshOk('systemctl show -p MainPID --value vmesh-agent.service')).trim();
    assert.match(pid, /^[1-9]\d*$/);
    const shown = await h2.sshOk('journalctl -u vmesh-agent.service -n 0 --show-cursor --no-pager');
    const cursor = /-- cursor: (\S+)/.exec(shown)?.[1];
    assert.ok(cursor, `no journal cursor in: ${shown}`);
    await h2.sshOk(`kill -KILL ${pid}`);
    const until = Date.now() + 60_000;
    let state = '';
    for (;;) {
      const now = (await h2.sshOk('systemctl show -p MainPID --value vmesh-agent.service; nft list tables')).trim();
      const [mainPid = '', ...tables] = now.split('\n');
      state = now;
      if (mainPid !== '0' && mainPid !== pid && tables.includes('table inet vmesh')) break;
      assert.ok(Date.now() < until, `the agent did not come back with capture: ${state}\n${await h2.diagnose('vmesh-agent')}`);
      await sleep(500);
    }
    const journal = await h2.sshOk(`journalctl -u vmesh-agent.service --after-cursor='${cursor}' --no-pager -o cat`);
    assert.match(journal, /capture removed/, `ExecStopPost did not remove capture after the kill:\n${journal.slice(-4000)}`);
    // The restarted agent serves the app again.
    assert.equal((await callHello(60_000, (b) => b.xfcc !== null)).host, 'h2');
  });

  test('systemctl stop vmesh-agent leaves no nftables rules behind', async () => {
    await h1.sshOk('systemctl stop vmesh-agent.service', { timeoutMs: 60_000 });
    assert.equal((await h1.ssh('systemctl is-active vmesh-agent.service')).stdout.trim(), 'inactive');
    const tables = await h1.sshOk('nft list tables');
    assert.doesNotMatch(tables, /inet vmesh/, `capture left behind after stop:\n${tables}\n${await h1.diagnose('vmesh-agent')}`);
    // Nothing is captured any more: h2's service is plainly reachable from h1, and the app is not cut off.
    const direct = await h1.sshOk(`${asApp} node -e "fetch('http://${h2.ip}:${HELLO.port}/').then(r => r.text()).then(console.log)"`, {
      timeoutMs: 15_000,
    });
    assert.equal(JSON.parse(direct).host, 'h2');
  });
});
