import assert from 'node:assert/strict';
import { Agent, request } from 'node:https';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { Limits } from '../../../src/lib/limits.js';
import { eventLoopProbe, fuzzCases, fuzzSeed, MAX_BLOCK_MS, pool, type Rng, rng } from '../../support/abuse.js';
import { startTestController, type TestController } from '../../support/controller-harness.js';

/*
 * The HTTPS API (15014) with and without the admin token: generated request targets (bad percent-encoding, `//`,
 * long paths), bodies (oversized, deeply nested YAML and JSON, document floods, alias bombs, truncated config) must
 * each get a 4xx with a VMESH_ERR code (never a 500, never a crash), write nothing, and keep /v1/health answering
 * with the event loop never blocked for long.
 */

const CASES = fuzzCases(400);
const SEED = fuzzSeed();

interface Answer {
  status: number;
  code?: string;
  text: string;
}

const VALID = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespace: default
spec:
  hosts: [reviews]
  http:
    - route:
        - destination:
            host: reviews
`;

function deepYaml(r: Rng, depth: number): string {
  switch (r.int(0, 4)) {
    case 0:
      return `a: ${'['.repeat(depth)}${']'.repeat(depth)}\n`;
    case 1:
      return `a: ${'{a: '.repeat(depth)}1${'}'.repeat(depth)}\n`;
    case 2:
      return `${'- '.repeat(depth)}x\n`;
    case 3:
      // Block nesting: one more space per level (kept to 2000 levels: the text grows with the square).
      return Array.from({ length: Math.min(depth, 2000) }, (_, i) => `${' '.repeat(i)}k${i}:`).join('\n');
    default:
      return `a: ${'['.repeat(depth)}\n`; // never closed
  }
}

function body(r: Rng): { text: string; contentType: string; expect: RegExp } {
  const k = r.int(0, 19);
  const limitOrInvalid = /^VMESH_ERR_(LIMIT_EXCEEDED|INVALID_RESOURCE|UNSUPPORTED_FIELD|USAGE)$/;
  if (k <= 5) {
    // Deep: always over the limit (the limit is the subject), sometimes hugely (100k levels, the V8 abort).
    const depth = r.next() < 0.1 ? 100_000 : r.int(Limits.configDepth + 1, 5000);
    return { text: deepYaml(r, depth), contentType: 'application/yaml', expect: /^VMESH_ERR_LIMIT_EXCEEDED$/ };
  }
  if (k === 6)
    return {
      text: 'a: 1\n---\n'.repeat(Limits.configDocuments + r.int(1, 100)),
      contentType: 'application/yaml',
      expect: /^VMESH_ERR_LIMIT_EXCEEDED$/,
    };
  if (k <= 8) {
    // A billion-laughs alias bomb.
    const lines = ['a0: &a0 [x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i < 10; i++)
      lines.push(
        `a${i}: &a${i} [${Array(9)
          .fill(`*a${i - 1}`)
          .join(', ')}]`,
      );
    return { text: lines.join('\n'), contentType: 'application/yaml', expect: limitOrInvalid };
  }
  if (k <= 11) {
    const depth = r.pick([Limits.configDepth + 1, 10_000, 200_000]);
    return { text: `${'['.repeat(depth)}${']'.repeat(depth)}`, contentType: 'application/json', expect: /^VMESH_ERR_LIMIT_EXCEEDED$/ };
  }
  if (k <= 14) return { text: VALID.slice(0, r.int(1, VALID.length - 20)), contentType: 'application/yaml', expect: limitOrInvalid };
  // Garbage made of YAML's indicators: kept to 16 KiB here, where the timing is asserted (see the large-input test).
  if (k <= 17) return { text: r.text(r.int(0, 16 * 1024)), contentType: 'application/yaml', expect: limitOrInvalid };
  if (k === 18) return { text: r.text(r.int(64 * 1024, 512 * 1024), 'abc: \n-'), contentType: 'application/yaml', expect: limitOrInvalid };
  // Valid but extreme: within the depth limit, wide.
  return {
    text: `${VALID}  extra: ${'['.repeat(Limits.configDepth - 5)}${']'.repeat(Limits.configDepth - 5)}\n`,
    contentType: 'application/yaml',
    expect: limitOrInvalid,
  };
}

describe(`HTTPS API under abuse (${CASES} cases, VMESH_FUZZ_SEED=${SEED})`, () => {
  let ctl: TestController;
  let agent: Agent;
  before(async () => {
    ctl = await startTestController();
    agent = new Agent({ keepAlive: true, maxSockets: 8, ca: ctl.caPem });
  });
  after(async () => {
    agent?.destroy();
    await ctl?.stop();
  });

  /** A request with the target exactly as given (no URL normalisation), so `//` and `%zz` reach the server. */
  const send = (method: string, path: string, opts: { token?: boolean; body?: string; contentType?: string } = {}): Promise<Answer> =>
    new Promise((resolve, reject) => {
      const url = new URL(ctl.apiUrl);
      const headers: Record<string, string> = {};
      if (opts.token) headers.authorization = `Bearer ${ctl.adminToken}`;
      if (opts.body !== undefined) {
        headers['content-type'] = opts.contentType ?? 'application/yaml';
        headers['content-length'] = String(Buffer.byteLength(opts.body));
      }
      const req = request({ host: url.hostname, port: url.port, method, path, headers, agent, timeout: 30_000 }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let code: string | undefined;
          try {
            code = JSON.parse(text)?.error?.code;
          } catch {}
          resolve({ status: res.statusCode ?? 0, ...(code ? { code } : {}), text: text.slice(0, 300) });
        });
      });
      req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer within 30 s`)));
      // The server may answer (413-style) and close before reading a huge body.
      req.on('error', (e) => (/EPIPE|ECONNRESET/.test(String(e)) ? resolve({ status: 0, text: String(e) }) : reject(e)));
      req.end(opts.body);
    });

  test('a peer that opens a TLS connection and never finishes the handshake is closed after the limit, on 15012 and 15014', async () => {
    const silent = (address: string, hello: boolean) =>
      new Promise<number>((resolve, reject) => {
        const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
        const started = Date.now();
        const sock = connect({ host, port }, () => {
          // A TLS record header announcing a ClientHello that never comes, or nothing at all.
          if (hello) sock.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]));
        });
        sock.on('error', () => {});
        sock.on('close', () => resolve(Date.now() - started));
        setTimeout(() => {
          sock.destroy();
          reject(new Error(`${address}: still open after ${Limits.tlsHandshakeMs + 10_000} ms`));
        }, Limits.tlsHandshakeMs + 10_000).unref();
      });
    const api = new URL(ctl.apiUrl);
    const held = Promise.all([
      silent(ctl.grpcAddress, false),
      silent(ctl.grpcAddress, true),
      silent(`${api.hostname}:${api.port}`, false),
      silent(`${api.hostname}:${api.port}`, true),
    ]);
    // Served meanwhile.
    assert.equal((await ctl.api('GET', '/v1/config')).status, 200);
    for (const ms of await held) assert.ok(ms >= Limits.tlsHandshakeMs - 500, `closed after ${ms} ms, before the limit`);
  });

  test('request targets: bad percent-encoding, `//`, long and odd paths get 4xx with a code, with or without a token', async () => {
    const r = rng(SEED);
    const targets = ['/ui/%zz', '/ui/%', '/ui/%E0%A4%A', '//', '//[', '/v1/hosts/%ff%fe', `/ui/${'%'.repeat(5000)}`, '/v1/config/%c0/a/b'];
    const probe = eventLoopProbe();
    await pool(Math.max(targets.length * 2, Math.floor(CASES / 3)), 8, async (i) => {
      const path =
        i < targets.length * 2
          ? (targets[i % targets.length] as string)
          : `/${r.pick(['ui', 'v1/hosts', 'v1/config/vs/default', 'x'])}/${r.text(r.int(0, 200), 'ab%zZ09/.[]')}`;
      const token = i % 2 === 0;
      const a = await send(r.pick(['GET', 'DELETE', 'POST', 'PUT']), path, { token });
      assert.ok(a.status >= 400 && a.status < 500, `${path} (token ${token}): ${a.status} ${a.text}`);
      assert.match(a.code ?? '', /^VMESH_ERR_/, `${path}: ${a.text}`);
    });
    const loop = probe.stop();
    assert.ok(loop.maxMs < MAX_BLOCK_MS, `the event loop blocked for ${loop.maxMs.toFixed(0)} ms`);
    assert.equal((await send('GET', '/v1/health')).status, 200);
  });

  test('POST /v1/config bodies: deep, flooded, bombed, truncated, oversized: 4xx naming the limit, nothing written, health served', async () => {
    const r = rng(SEED + 1);
    const before = await ctl.api('GET', '/v1/config');
    const probe = eventLoopProbe();
    let healthOk = 0;
    let worst = { ms: 0, what: '' };
    const started = Date.now();
    await pool(CASES, 4, async (i) => {
      if (i % 25 === 0) {
        const h = await send('GET', '/v1/health');
        assert.equal(h.status, 200, 'health answers during the abuse');
        healthOk++;
      }
      const b = body(r);
      const t0 = Date.now();
      const a = await send('POST', '/v1/config', { token: true, body: b.text, contentType: b.contentType });
      const ms = Date.now() - t0;
      if (ms > worst.ms) worst = { ms, what: `${b.contentType} ${b.text.length} bytes: ${b.text.slice(0, 40)}` };
      if (a.status === 0) return; // connection reset while the oversized body was still being sent
      assert.ok(a.status === 400, `case ${i} (${b.text.slice(0, 60)}...): ${a.status} ${a.text}`);
      assert.match(a.code ?? '', b.expect, `case ${i} (${b.text.slice(0, 60)}...): ${a.text}`);
    });
    const loop = probe.stop();
    console.log(
      `abuse-api: ${CASES} config bodies in ${Date.now() - started} ms; event loop max ${loop.maxMs.toFixed(1)} ms (late by up to ${loop.rawMaxMs.toFixed(0)} ms), p99 ${loop.p99Ms.toFixed(1)} ms; slowest answer ${worst.ms} ms (${worst.what})`,
    );
    assert.ok(healthOk > 0);
    // The YAML thread of this same process competes for the machine's 2 cores: measured 46 ms max on a quiet
    // machine, 250-300 ms at load 10-20, where the delay is the scheduler's, not a blocking call (a CPU profile
    // shows none); the bound is twice the suite's.
    assert.ok(loop.maxMs < 2 * MAX_BLOCK_MS, `the event loop blocked for ${loop.maxMs.toFixed(0)} ms`);
    assert.deepEqual((await ctl.api('GET', '/v1/config')).body, before.body, 'nothing was written');
  });

  test('large garbage YAML (64 KiB; up to 1 MiB in a long run) is refused, not crashed on; the worst block is reported, not asserted', async () => {
    const r = rng(SEED + 2);
    const probe = eventLoopProbe();
    const started = Date.now();
    // 64 KiB by default; a long run (VMESH_FUZZ_CASES set) adds 256 KiB and 1 MiB, ~10 s each on a busy machine.
    for (const n of process.env.VMESH_FUZZ_CASES ? [64 * 1024, 256 * 1024, 1024 * 1024] : [64 * 1024]) {
      const a = await send('POST', '/v1/config', { token: true, body: r.text(n, 'ab[]{}:,-# \n') });
      assert.equal(a.status, 400, a.text);
      assert.match(a.code ?? '', /^VMESH_ERR_(LIMIT_EXCEEDED|INVALID_RESOURCE)$/);
    }
    const loop = probe.stop();
    // The yaml package composes one document in one call, at ~0.1-1 MB/s on such input: see the report.
    console.log(
      `abuse-api: garbage YAML answered in ${Date.now() - started} ms; event loop max ${loop.maxMs.toFixed(1)} ms (late by up to ${loop.rawMaxMs.toFixed(0)} ms)`,
    );
    assert.equal((await send('GET', '/v1/health')).status, 200);
  });

  test('a body over the size cap is refused with VMESH_ERR_LIMIT_EXCEEDED (kept out of the timed loop: 4 MiB strings make GC pauses in this process)', async () => {
    for (let i = 0; i < 3; i++) {
      // /v1/config takes a whole config set (16 MiB, as `vmesh config validate` does); every other route 4 MiB.
      const a = await send('POST', '/v1/workloads', { token: true, body: 'a'.repeat(Limits.apiBodyBytes + 1) });
      if (a.status === 0) continue; // reset while still sending: the server stopped reading
      assert.equal(a.status, 400, a.text);
      assert.equal(a.code, 'VMESH_ERR_LIMIT_EXCEEDED');
      assert.match(a.text, /request body over the 4194304-byte limit/);
    }
    assert.equal((await send('GET', '/v1/health')).status, 200);
  });

  test('a YAML list nested 100k deep (200 KB) is refused with VMESH_ERR_LIMIT_EXCEEDED naming the limit, five times over', async () => {
    for (let i = 0; i < 5; i++) {
      const a = await send('POST', '/v1/config', { token: true, body: `a: ${'['.repeat(100_000)}${']'.repeat(100_000)}\n` });
      assert.equal(a.status, 400, a.text);
      assert.equal(a.code, 'VMESH_ERR_LIMIT_EXCEEDED');
      assert.match(a.text, /nesting deeper than 100 levels/);
    }
    assert.equal((await send('GET', '/v1/health')).status, 200);
  });
});
