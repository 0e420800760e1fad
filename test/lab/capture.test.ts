import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createLab, type Lab, type LabHost, requireLabTools } from './lab.js';

// Three hosts: h1 runs capture and a sink standing in for the proxy, h2 is an ordinary server host,
// h3 plays the controller. Every probe stays inside the lab's namespaces.
requireLabTools(['ip', 'nft', 'iptables', 'iptables-restore', 'ip6tables-restore', 'setpriv']);

const ROOT = join(import.meta.dirname, '..', '..');
const CLI = join(ROOT, 'src', 'cli', 'main.ts');
const FIX = join(import.meta.dirname, 'fixtures');
const PROXY = 1337;

async function vmesh(h: LabHost, args: string[]) {
  return h.exec(process.execPath, ['--import', 'tsx', CLI, ...args], { timeoutMs: 30_000 });
}

async function vmeshOk(h: LabHost, args: string[]): Promise<string> {
  const r = await vmesh(h, args);
  assert.equal(r.code, 0, `vmesh ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

async function probe(h: LabHost, proto: 'tcp' | 'udp', host: string, port: number, as?: { uid: number; gid: number }, sourcePort?: number) {
  const args = [join(FIX, 'probe.mjs'), proto, host, String(port), ...(sourcePort ? [String(sourcePort)] : [])];
  const r = await h.exec(process.execPath, args, { timeoutMs: 10_000, ...(as ?? {}) });
  return r.stdout.trim();
}

/** The installed rules, without handles and counters, so two installs can be compared exactly. */
async function ruleDump(h: LabHost): Promise<string> {
  const nft = await h.exec('nft', ['list', 'table', 'inet', 'vmesh']);
  const v4 = await h.execOk('iptables-save', []);
  const v6 = await h.execOk('ip6tables-save', []);
  const ipt = (s: string) =>
    s
      .split('\n')
      .filter((l) => /VMESH_/.test(l) && !l.startsWith('#'))
      .map((l) => l.replace(/\[\d+:\d+\]/, ''));
  const nftText = nft.code === 0 ? nft.stdout.replace(/ # handle \d+/g, '').replace(/counter packets \d+ bytes \d+/g, 'counter') : '';
  return [nftText, ...ipt(v4), '--', ...ipt(v6)].join('\n');
}

for (const backend of ['nftables', 'iptables'] as const) {
  describe(`capture with ${backend}`, () => {
    let lab: Lab;
    let h1: LabHost;
    let h2: LabHost;
    let h3: LabHost;
    const install = (extra: string[] = []) =>
      vmeshOk(h1, ['capture', 'install', '--backend', backend, '--controller-addresses', h3.ipv4, h3.ipv6, ...extra]);

    before(async () => {
      lab = await createLab({ hosts: 3 });
      [h1, h2, h3] = lab.hosts as [LabHost, LabHost, LabHost];
      const sink = h1.spawn(process.execPath, ['--import', 'tsx', join(FIX, 'capture-sink.ts')], { uid: PROXY, gid: PROXY });
      const server = h2.spawn(process.execPath, [join(FIX, 'echo-server.mjs'), 'h2', '8080', '22', '53', 'udp:53']);
      const ctl = h3.spawn(process.execPath, [join(FIX, 'echo-server.mjs'), 'controller', '15012', '8080']);
      const apps = h1.spawn(process.execPath, [join(FIX, 'echo-server.mjs'), 'h1-app', '9080', '22']);
      await Promise.all([sink, server, ctl, apps].map((p) => p.waitForLine(/ready/, 15_000)));
      await install();
    });
    after(async () => {
      await lab?.teardown();
    });

    for (const family of ['ipv4', 'ipv6'] as const) {
      const addr = (h: LabHost) => (family === 'ipv4' ? h.ipv4 : h.ipv6);

      test(`${family}: an app's outbound connection reaches 15001 and originalDst names the real destination`, async () => {
        assert.equal(await probe(h1, 'tcp', addr(h2), 8080), `sink outbound ${addr(h2)}:8080`);
      });

      test(`${family}: the proxy uid, and the proxy gid alone, are not redirected`, async () => {
        assert.equal(await probe(h1, 'tcp', addr(h2), 8080, { uid: PROXY, gid: PROXY }), 'h2 8080');
        assert.equal(await probe(h1, 'tcp', addr(h2), 8080, { uid: 1500, gid: PROXY }), 'h2 8080');
        assert.equal(await probe(h1, 'tcp', addr(h2), 8080, { uid: 1500, gid: 1500 }), `sink outbound ${addr(h2)}:8080`);
      });

      test(`${family}: SSH (22) and the controller's address are not redirected`, async () => {
        assert.equal(await probe(h1, 'tcp', addr(h2), 22), 'h2 22');
        assert.equal(await probe(h1, 'tcp', addr(h3), 15012), 'controller 15012');
        assert.equal(await probe(h1, 'tcp', addr(h3), 8080), 'controller 8080');
      });

      test(`${family}: inbound connections to a captured port reach 15006; SSH inbound does not`, async () => {
        assert.equal(await probe(h2, 'tcp', addr(h1), 9080), `sink inbound ${addr(h1)}:9080`);
        assert.equal(await probe(h2, 'tcp', addr(h1), 22), 'h1-app 22');
      });

      test(`${family}: DNS to port 53, udp and tcp, reaches 15053`, async () => {
        assert.match(await probe(h1, 'udp', addr(h2), 53), /^sink dns-udp from /);
        assert.equal(await probe(h1, 'tcp', addr(h2), 53), `sink dns-tcp ${addr(h2)}:53`);
      });

      // The agent forwards non-mesh names itself from gid 1337, uncaptured; an app's query that reuses such a
      // forward's source port while its conntrack entry lives must still reach the DNS proxy.
      test(`${family}: an app's DNS query reusing the source port of the agent's own forward is still captured`, async () => {
        const port = family === 'ipv4' ? 40053 : 40054;
        assert.equal(await probe(h1, 'udp', addr(h2), 53, { uid: PROXY, gid: PROXY }, port), 'h2 udp 53');
        assert.match(await probe(h1, 'udp', addr(h2), 53, { uid: 1500, gid: 1500 }, port), /^sink dns-udp from /);
        assert.equal(await probe(h1, 'udp', addr(h2), 53, { uid: PROXY, gid: PROXY }, port), 'h2 udp 53');
      });
    }

    test('loopback and the inbound passthrough source are not captured', async () => {
      assert.equal(await probe(h1, 'tcp', '127.0.0.1', 9080), 'h1-app 9080');
      assert.equal(await probe(h1, 'tcp', '::1', 9080), 'h1-app 9080');
    });

    test('status reports the backend; verify proves capture with the proxy running', async () => {
      const s = JSON.parse(await vmeshOk(h1, ['capture', 'status', '-o', 'json']));
      assert.equal(s.installed, backend);
      assert.deepEqual(s.warnings, []);
      const v = await vmesh(h1, ['capture', 'verify', '--backend', backend, '-o', 'json']);
      assert.equal(v.code, 0, v.stderr);
      assert.equal(JSON.parse(v.stdout).ok, true);
    });

    test('install twice gives the same rule set, never a second copy', async () => {
      const first = await ruleDump(h1);
      await install();
      assert.equal(await ruleDump(h1), first);
      assert.equal((first.match(/outbound capture/g) ?? []).length, backend === 'nftables' ? 0 : 2);
      assert.equal(await probe(h1, 'tcp', h2.ipv4, 8080), `sink outbound ${h2.ipv4}:8080`);
    });

    test('bad input: one-line error, non-zero exit, rule set untouched', async () => {
      const beforeDump = await ruleDump(h1);
      for (const args of [
        ['--exclude-outbound-cidrs', '198.18.0.0/40'],
        ['--inbound-port', '0'],
        ['--backend', 'pf'],
      ]) {
        const r = await vmesh(h1, ['capture', 'install', ...args]);
        assert.notEqual(r.code, 0);
        assert.match(r.stderr.trim(), /^VMESH_ERR_[A-Z_]+: [^\n]+$/);
      }
      assert.equal(await ruleDump(h1), beforeDump);
    });

    test('a rule set the kernel refuses leaves the previous one fully in place', async () => {
      const beforeDump = await ruleDump(h1);
      for (const bad of ['ip', 'ip6']) {
        const r = await h1.execOk(process.execPath, ['--import', 'tsx', join(FIX, 'apply-broken.ts'), backend, bad]);
        assert.match(r, /^refused VMESH_ERR_(NFT|IPTABLES): /);
        assert.equal(await ruleDump(h1), beforeDump, `after a refused ${bad} rule`);
      }
      assert.equal(await probe(h1, 'tcp', h2.ipv4, 8080), `sink outbound ${h2.ipv4}:8080`);
    });

    test('a second backend present is reported in plain words', async () => {
      const other = backend === 'nftables' ? 'iptables' : 'nftables';
      await vmeshOk(h1, ['capture', 'install', '--backend', other, '--controller-addresses', h3.ipv4]);
      const s = JSON.parse(await vmeshOk(h1, ['capture', 'status', '-o', 'json']));
      assert.equal(s.installed, 'both');
      assert.ok(
        s.warnings.some((w: string) => /both backends/.test(w)),
        JSON.stringify(s.warnings),
      );
      await vmeshOk(h1, ['capture', 'remove', '--backend', other]);
      assert.equal(JSON.parse(await vmeshOk(h1, ['capture', 'status', '-o', 'json'])).installed, backend);
    });

    test('remove leaves no trace, traffic goes direct, verify then fails', async () => {
      await vmeshOk(h1, ['capture', 'remove']);
      const nft = await h1.execOk('nft', ['list', 'ruleset']);
      assert.doesNotMatch(nft, /vmesh|VMESH/);
      assert.doesNotMatch(await h1.execOk('iptables-save', []), /VMESH|vmesh/);
      assert.doesNotMatch(await h1.execOk('ip6tables-save', []), /VMESH|vmesh/);
      assert.equal(await probe(h1, 'tcp', h2.ipv4, 8080), 'h2 8080');
      assert.equal(JSON.parse(await vmeshOk(h1, ['capture', 'status', '-o', 'json'])).installed, 'none');
      const v = await vmesh(h1, ['capture', 'verify', '--backend', backend]);
      assert.notEqual(v.code, 0);
      assert.match(v.stderr, /VMESH_ERR_CAPTURE_VERIFY/);
      await vmeshOk(h1, ['capture', 'remove']); // idempotent
    });
  });
}

describe('capture without root', () => {
  test('install as an unprivileged user fails with a clear error and changes nothing', async () => {
    const lab = await createLab({ hosts: 1 });
    try {
      const h = lab.hosts[0] as LabHost;
      const r = await h.exec(process.execPath, ['--import', 'tsx', CLI, 'capture', 'install'], { uid: 1500, gid: 1500 });
      assert.equal(r.code, 1);
      assert.match(r.stderr.trim(), /^VMESH_ERR_NOT_PRIVILEGED: capture install needs root/);
      assert.doesNotMatch(await h.execOk('nft', ['list', 'ruleset']), /vmesh/);
    } finally {
      await lab.teardown();
    }
  });
});
