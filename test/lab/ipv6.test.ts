import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { APP, adminGet, type FeatureLab, type ServiceSpec, serviceYaml, startFeatureLab } from './features-lab.js';
import type { LabProcess } from './lab.js';

// IPv6 through capture on dual-stack hosts, with real clients run as the registered app uid on h2: curl to an
// unmeshed IPv6 server (passthrough), to a meshed workload's IPv6 address, and by name to services whose only
// endpoints are IPv6 (a WorkloadEntry, and a workload registered with `vmesh workload register --address <v6>`),
// socat and nc over IPv6, dig AAAA through the captured resolver, and h1 (unmeshed) calling h3's IPv6 address.
// Then a lab with IPv6 disabled: the proxy listens on IPv4 only and capture redirects no IPv6.

/** An unmeshed IPv6-only HTTP server on `port` that answers with the caller's address. */
const serveV6 = (port: number) =>
  `require('http').createServer((q,s)=>s.end('plain-v6 '+q.socket.remoteAddress+'\\n')).listen({port:${port},host:'::',ipv6Only:true},()=>console.log('ready'))`;

/** A ServiceEntry's own IPv6 address: on the lab's link (so clients route it), assigned to no host. */
const V6_SERVICE_ADDRESS = '2001:2::100';

function v6Yaml(serverV6: string): string {
  const services: ServiceSpec[] = [
    { name: 'v6web', port: 9900, portName: 'http', endpoints: [{ name: 'v6web-1', port: 9901 }] },
    { name: 'v6tcp', port: 9910, portName: 'tcp', endpoints: [{ name: 'v6tcp-1', port: 9911 }] },
  ];
  // A service of its own on v6web's workload, with an IPv6 address of its own.
  const v6addr = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: v6addr}
spec:
  hosts: [v6addr.default.mesh]
  addresses: ["${V6_SERVICE_ADDRESS}"]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9940, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: v6web}}
`;
  return [...services.map((s) => serviceYaml(s, serverV6)), v6addr].join('---\n');
}

const FEATURE_SERVERS = join(import.meta.dirname, 'fixtures', 'feature-servers.mjs');
const V4WEB = { name: 'v4web', port: 9930, portName: 'http', endpoints: [{ name: 'v4web-1', port: 9931 }] } as const;

const curlArgs = (url: string) => ['-sS', '-m', '8', '-w', '\\nstatus=%{http_code}\\n', url];

for (const backend of ['nftables', 'iptables'] as const)
  describe(`IPv6 on dual-stack hosts (${backend}): outbound, inbound, passthrough and DNS through capture`, () => {
    let f: FeatureLab;
    let plain: LabProcess;
    let servers: LabProcess;
    let undeclared: LabProcess;

    before(async () => {
      f = await startFeatureLab({ servers: ['http:v4web:9931'], services: [V4WEB], backend });
      plain = f.h1.spawn(process.execPath, ['-e', serveV6(8800)], APP);
      // A port no service declares: inbound passthrough on h3.
      undeclared = f.h3.spawn(process.execPath, ['-e', serveV6(8801)], APP);
      // On [::]: the agent's health check of the registered workload dials its IPv6 address directly.
      servers = f.h3.spawn(process.execPath, [FEATURE_SERVERS, 'http:v6web:9901', 'tcp:v6tcp:9911', 'http:v6reg:9921'], {
        ...APP,
        env: { FEATURE_LISTEN_HOST: '::' },
      });
      await Promise.all([plain, servers, undeclared].map((p) => p.waitForLine(/^ready$/, 20_000)));
      await f.apply(v6Yaml(f.h3.ipv6));
      await f.cli([
        'workload',
        'register',
        '--name',
        'v6reg-1',
        '--service',
        'v6reg',
        '--address',
        f.h3.ipv6,
        '--port',
        'http:9921',
        '--host',
        'h3',
      ]);
      await Promise.all([
        f.waitForConfig('h2', [
          'outbound|9900||v6web.default.mesh',
          'outbound|9910||v6tcp.default.mesh',
          'outbound|9921||v6reg.default.mesh',
          `${V6_SERVICE_ADDRESS}_9940`,
        ]),
        f.waitForConfig('h3', ['inbound|9901||', 'inbound|9911||', 'inbound|9921||']),
      ]);
    });
    after(async () => {
      await plain?.stop();
      await servers?.stop();
      await undeclared?.stop();
      await f?.teardown();
    });

    test('the proxy listens on [::] as well as 0.0.0.0 for the outbound and inbound ports', async () => {
      for (const h of [f.h2, f.h3]) {
        const ss = await h.execOk('ss', ['-Hltn']);
        for (const port of [15001, 15006]) {
          assert.match(ss, new RegExp(`0\\.0\\.0\\.0:${port}\\b`), `${h.name}:\n${ss}`);
          assert.match(ss, new RegExp(`\\[::\\]:${port}\\b`), `${h.name}:\n${ss}`);
        }
        const listeners = JSON.parse(await adminGet(h, '/listeners')) as Array<{ port: number; ipv6: boolean }>;
        assert.equal(listeners.find((l) => l.port === 15001)?.ipv6, true, JSON.stringify(listeners));
      }
    });

    test('curl -6 to an unmeshed IPv6 server goes through as passthrough', async () => {
      const out = await f.h2.execOk('curl', ['-6', ...curlArgs(`http://[${f.h1.ipv6}]:8800/`)], { ...APP, timeoutMs: 20_000 });
      assert.match(out, /status=200/, out);
      assert.match(out, new RegExp(`^plain-v6 ${f.h2.ipv6}$`, 'm'), out);
    });

    test("curl to a meshed workload's IPv6 address reaches it (outbound passthrough, inbound capture on h3)", async () => {
      const out = await f.h2.execOk('curl', curlArgs(`http://[${f.h3.ipv6}]:9901/direct`), { ...APP, timeoutMs: 20_000 });
      assert.match(out, /status=200/, out);
      assert.match(out, /^v6web /m, out);
    });

    test('by name: a service whose endpoint is IPv6 answers over mutual TLS, a registered IPv6 workload too', async () => {
      for (const [name, port] of [
        ['v6web', 9900],
        ['v6reg', 9921],
      ] as const) {
        const out = await f.h2.execOk('curl', curlArgs(`http://${name}.default.mesh:${port}/whoami`), { ...APP, timeoutMs: 20_000 });
        assert.match(out, /status=200/, `${name}: ${out}`);
        // The server side saw the caller's mesh identity: the hop between the proxies was mTLS over IPv6.
        assert.match(out, new RegExp(`^${name} xfcc=.*URI=spiffe://cluster.local/ns/default/sa/app`, 'm'), `${name}: ${out}`);
      }
    });

    test("the agent's health check reaches the workload registered with an IPv6 address: healthy", async () => {
      const until = Date.now() + 60_000;
      for (;;) {
        const ws = JSON.parse(await f.cli(['workload', 'list', '--output', 'json'])) as Array<{
          name: string;
          address: string;
          healthy?: boolean;
        }>;
        const w = ws.find((x) => x.name === 'v6reg-1');
        assert.equal(w?.address, f.h3.ipv6, JSON.stringify(ws));
        if (w?.healthy !== undefined) {
          assert.equal(w.healthy, true, JSON.stringify(w));
          break;
        }
        assert.ok(Date.now() < until, `no health report for v6reg-1: ${JSON.stringify(w)}`);
        await new Promise((r) => setTimeout(r, 1000));
      }
    });

    test('socat and nc carry raw TCP over IPv6, by name and to the IPv6 address', async () => {
      const viaName = await f.h2.execOk('socat', ['-t', '2', '-T', '8', '-', 'TCP:v6tcp.default.mesh:9910'], {
        ...APP,
        input: 'hello by name\n',
        timeoutMs: 20_000,
      });
      assert.equal(viaName, 'hello by name\n');
      const viaSocat6 = await f.h2.execOk('socat', ['-t', '2', '-T', '8', '-', `TCP6:[${f.h3.ipv6}]:9911`], {
        ...APP,
        input: 'hello socat6\n',
        timeoutMs: 20_000,
      });
      assert.equal(viaSocat6, 'hello socat6\n');
      const viaNc = await f.h2.execOk('nc', ['-6', '-N', '-w', '8', f.h3.ipv6, '9911'], {
        ...APP,
        input: 'hello nc6\n',
        timeoutMs: 20_000,
      });
      assert.equal(viaNc, 'hello nc6\n');
    });

    test('an unmeshed host calls the meshed server on its IPv6 address (inbound capture, PERMISSIVE)', async () => {
      const out = await f.h1.execOk('curl', ['-6', ...curlArgs(`http://[${f.h3.ipv6}]:9901/from-h1`)], { ...APP, timeoutMs: 20_000 });
      assert.match(out, /status=200/, out);
      assert.match(out, /^v6web /m, out);
    });

    test('inbound passthrough over IPv6 (a port no service declares) reaches the app from ::6', async () => {
      const out = await f.h1.execOk('curl', curlArgs(`http://[${f.h3.ipv6}]:8801/`), { ...APP, timeoutMs: 20_000 });
      assert.match(out, /status=200/, out);
      assert.match(out, /^plain-v6 ::6$/m, out);
      const lo = await f.h3.execOk('ip', ['-6', 'addr', 'show', 'dev', 'lo']);
      assert.match(lo, /inet6 ::6\/128/, lo);
    });

    test("a ServiceEntry's IPv6 address answers AAAA, and curl reaches the service on it and on its VIP", async () => {
      const aaaa = await f.h2.execOk('dig', ['+short', '+tries=1', '+time=3', 'AAAA', 'v6addr.default.mesh'], {
        ...APP,
        timeoutMs: 15_000,
      });
      assert.equal(aaaa.trim(), V6_SERVICE_ADDRESS);
      for (const family of ['-6', '-4']) {
        const out = await f.h2.execOk('curl', [family, ...curlArgs('http://v6addr.default.mesh:9940/whoami')], {
          ...APP,
          timeoutMs: 20_000,
        });
        assert.match(out, /status=200/, `${family}: ${out}`);
        assert.match(out, /^v6web xfcc=.*URI=spiffe:\/\/cluster.local\/ns\/default\/sa\/app/m, `${family}: ${out}`);
      }
    });

    test('DNS: a VIP-only mesh name answers AAAA with NOERROR and no records, also for queries sent over IPv6', async () => {
      for (const server of [[], [`@${f.h1.ipv6}`]]) {
        const aaaa = await f.h2.execOk('dig', ['+tries=1', '+time=3', ...server, 'AAAA', 'v6web.default.mesh'], {
          ...APP,
          timeoutMs: 15_000,
        });
        assert.match(aaaa, /status: NOERROR/, aaaa);
        assert.match(aaaa, /ANSWER: 0,/, aaaa);
        const a = await f.h2.execOk('dig', ['+short', '+tries=1', '+time=3', ...server, 'A', 'v6web.default.mesh'], {
          ...APP,
          timeoutMs: 15_000,
        });
        assert.match(a.trim(), /^240\.240\.\d+\.\d+$/, a);
      }
    });
  });

describe('IPv6 disabled on the hosts', () => {
  let f: FeatureLab;

  before(async () => {
    f = await startFeatureLab({
      ipv6: false,
      servers: ['http:v4web:9931'],
      services: [V4WEB],
    });
  });
  after(async () => {
    await f?.teardown();
  });

  test('the agent runs, the proxy listens on IPv4 only, capture redirects no IPv6, IPv4 calls work', async () => {
    const ss = await f.h2.execOk('ss', ['-Hltn']);
    assert.match(ss, /0\.0\.0\.0:15001\b/, ss);
    assert.doesNotMatch(ss, /\[::\]:1500[16]\b/, ss);
    const listeners = JSON.parse(await adminGet(f.h2, '/listeners')) as Array<{ port: number; ipv6: boolean }>;
    assert.equal(listeners.find((l) => l.port === 15001)?.ipv6, false, JSON.stringify(listeners));
    const rules = await f.h2.execOk('nft', ['list', 'table', 'inet', 'vmesh']);
    // Every chain returns IPv6 before any redirect.
    assert.match(rules, /meta nfproto ipv6 .*return comment "vmesh: IPv6 capture is off"/, rules);
    const out = await f.h2.execOk('curl', curlArgs('http://v4web.default.mesh:9930/whoami'), { ...APP, timeoutMs: 20_000 });
    assert.match(out, /status=200/, out);
  });
});
