import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { APP, type FeatureLab, startFeatureLab } from './features-lab.js';
import type { LabHost, LabProcess } from './lab.js';

// Policy changes take back open connections they no longer admit, as Envoy drains a listener's removed filter
// chains: real clients hold connections open (curl reusing one keep-alive connection at 5 requests/s, socat
// sending a line every 200 ms), from h1 (unmeshed: plaintext) and h2 (meshed: mTLS between the proxies), then
// the policy on h3 changes under them.

const STRICT = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: vmesh-system}
spec:
  mtls: {mode: STRICT}
`;
const DENY_APP = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-app-tcp}
spec:
  selector: {matchLabels: {app: rawtcp}}
  action: DENY
  rules:
  - from: [{source: {principals: [cluster.local/ns/default/sa/app]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-app-late}
spec:
  selector: {matchLabels: {app: web}}
  action: DENY
  rules:
  - from: [{source: {principals: [cluster.local/ns/default/sa/app]}}]
    to: [{operation: {paths: [/late/*]}}]
`;

const FIX = join(import.meta.dirname, 'fixtures');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Watched {
  readonly proc: LabProcess;
  readonly lines: Array<{ readonly t: number; readonly line: string }>;
  exitedAt: number | undefined;
}

function watch(proc: LabProcess): Watched {
  const w: Watched = { proc, lines: [], exitedAt: undefined };
  void (async () => {
    for await (const line of proc.lines()) w.lines.push({ t: Date.now(), line });
  })();
  void proc.exited.then(() => {
    w.exitedAt = Date.now();
  });
  return w;
}

/** curl on one keep-alive connection, 5 requests a second for at most `n` requests: `STATUS CONNECTS` per request. */
function curlLoop(host: LabHost, base: string, n: number, who?: { uid: number; gid: number }): Watched {
  const args = ['-oL', 'curl', '-sS', '--http1.1', '--rate', '5/s', '--max-time', '3', '-w', '%{http_code} %{num_connects}\\n'];
  for (let i = 0; i < n; i++) args.push('-o', '/dev/null', `${base}/${i}`);
  return watch(host.spawn('stdbuf', args, who));
}

/** A long-lived TCP connection: socat sends `ping-I` every 200 ms (at most `n`) and prints the echo. */
function socatLoop(host: LabHost, target: string, n: number, who?: { uid: number; gid: number }): Watched {
  const script = `for i in $(seq 1 ${n}); do echo ping-$i; sleep 0.2; done | socat -t 1 - TCP:${target}`;
  return watch(host.spawn('sh', ['-c', script], who));
}

async function until(what: string, ok: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

const after_ = (w: Watched, t: number) => w.lines.filter((l) => l.t >= t).map((l) => l.line);
const show = (w: Watched) => JSON.stringify(w.lines.map((l) => l.line)).slice(-1500) + w.proc.stderr().slice(-500);

describe('a policy change drains the open connections it no longer admits', () => {
  let f: FeatureLab;
  const loops: Watched[] = [];

  before(async () => {
    f = await startFeatureLab({
      servers: ['http:web:9700', 'tcp:tcp:9710', 'h2:web2:9720'],
      services: [
        { name: 'web', port: 9700, portName: 'http', endpoints: [{ name: 'web-1', port: 9700 }] },
        { name: 'rawtcp', port: 9710, portName: 'tcp', endpoints: [{ name: 'rawtcp-1', port: 9710 }] },
        { name: 'web2', port: 9720, portName: 'http2', endpoints: [{ name: 'web2-1', port: 9720 }] },
      ],
    });
  });
  after(async () => {
    for (const w of loops) await w.proc.stop();
    await f?.teardown();
  });

  test('STRICT closes plaintext HTTP/1.1, HTTP/2 and TCP connections within seconds; mTLS ones keep working', async () => {
    const plainHttp = curlLoop(f.h1, `http://${f.h3.ipv4}:9700/plain`, 300);
    // curl 7.88 cannot reuse an h2c prior-knowledge connection (its second request fails in the framing layer,
    // against any server): a Node HTTP/2 client holds the session instead.
    const plainH2 = watch(f.h1.spawn(process.execPath, [join(FIX, 'h2-loop.mjs'), `http://${f.h3.ipv4}:9720/plain`, '300', '200']));
    const plainTcp = socatLoop(f.h1, `${f.h3.ipv4}:9710`, 300);
    const meshHttp = curlLoop(f.h2, 'http://web:9700/late', 300, APP);
    const meshTcp = socatLoop(f.h2, 'rawtcp:9710', 300, APP);
    loops.push(plainHttp, plainTcp, meshHttp, meshTcp, plainH2);
    for (const [name, w] of Object.entries({ plainHttp, plainTcp, meshHttp, meshTcp, plainH2 })) {
      await until(`${name} to get going`, () => w.lines.length >= 5 || w.exitedAt !== undefined);
      assert.equal(w.exitedAt, undefined, `${name} ended early: ${show(w)}`);
    }
    assert.deepEqual(
      plainHttp.lines.slice(0, 3).map((l) => l.line),
      ['200 1', '200 0', '200 0'],
      show(plainHttp),
    );
    assert.deepEqual(
      plainH2.lines.slice(0, 3).map((l) => l.line),
      ['200 1', '200 0', '200 0'],
      show(plainH2),
    );
    assert.deepEqual(
      meshHttp.lines.slice(0, 3).map((l) => l.line),
      ['200 1', '200 0', '200 0'],
      show(meshHttp),
    );

    await f.apply(STRICT);
    await f.waitForConfig('h3', ['inbound|9700|mtls', 'inbound|9720|mtls'], ['inbound|9700|plaintext', 'inbound|9720|plaintext']);
    const applied = Date.now();
    await sleep(4000);
    // The plaintext keep-alive connection was closed: curl's later requests need a new one, which STRICT refuses.
    const late = after_(plainHttp, applied + 2000);
    assert.ok(late.length >= 5, show(plainHttp));
    assert.ok(
      late.every((l) => !l.startsWith('200')),
      `plaintext still answered 200 two seconds after STRICT: ${show(plainHttp)}`,
    );
    // The HTTP/2 session got GOAWAY: curl's later requests need a new connection, which STRICT refuses.
    const lateH2 = after_(plainH2, applied + 2000);
    assert.ok(lateH2.length >= 5, show(plainH2));
    assert.ok(
      lateH2.every((l) => !l.startsWith('200')),
      `plaintext HTTP/2 still answered 200 two seconds after STRICT: ${show(plainH2)}`,
    );
    // The plaintext TCP connection was closed (socat ends once its connection does).
    assert.ok(plainTcp.exitedAt !== undefined && plainTcp.exitedAt < applied + 3000, `plaintext TCP still open: ${show(plainTcp)}`);
    // mTLS connections were not drained: every request 200 on curl's first connection, the TCP echo goes on.
    assert.ok(
      meshHttp.lines.every((l, i) => l.line === (i === 0 ? '200 1' : '200 0')),
      show(meshHttp),
    );
    assert.ok(after_(meshTcp, applied + 2000).length >= 5, show(meshTcp));
    assert.equal(meshTcp.exitedAt, undefined, show(meshTcp));
  });

  test("an AuthorizationPolicy DENY closes the peer's open TCP connection and answers 403 on its open HTTP connection", async () => {
    const [, , meshHttp, meshTcp] = loops as [Watched, Watched, Watched, Watched];
    assert.equal(meshTcp.exitedAt, undefined, show(meshTcp));
    await f.apply(DENY_APP);
    await f.waitForConfig('h3', ['deny-app-tcp', 'deny-app-late']);
    const applied = Date.now();
    await sleep(4000);
    assert.ok(meshTcp.exitedAt !== undefined && meshTcp.exitedAt < applied + 3000, `denied TCP still open: ${show(meshTcp)}`);
    // HTTP RBAC is per request, under the policy in force now, on the connection curl already had.
    const late = after_(meshHttp, applied + 1000);
    assert.ok(late.length >= 5, show(meshHttp));
    assert.ok(
      late.every((l) => l === '403 0'),
      show(meshHttp),
    );
  });
});
