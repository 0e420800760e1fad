import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { APP, type FeatureLab, startFeatureLab } from './features-lab.js';
import type { LabHost, LabProcess } from './lab.js';

// Unmodified servers on h3 (a Node server answering every response shape, python's http.server for static files,
// a Node h2c server) and unmodified clients on h2 (curl reusing its connections, h2load) calling them by service name
// through capture and both proxies. Each curl run is made twice, through the mesh and directly to the app port on
// h3 (as the proxy's group, which capture lets through), and the two are compared byte for byte.

const FIX = join(import.meta.dirname, 'fixtures');
const PYTHON = '/usr/bin/python3';
/** What the proxy may change (date, server, keep-alive, framing) is left out; these must come through as the app sent them. */
const KEPT_HEADERS = ['content-type', 'content-length', 'etag', 'last-modified', 'x-shape'];
const DIRECT = { uid: 0, gid: 1337 };

interface Transfer {
  readonly path: string;
  readonly args?: readonly string[];
  /** HEAD: curl writes the head where the body would go; only status and headers are compared. */
  readonly head?: boolean;
}
interface Result {
  readonly path: string;
  readonly status: number;
  readonly connects: number;
  readonly exit: number;
  readonly headers: Record<string, string[]>;
  readonly size: number;
  readonly sha: string;
}

let seq = 0;

/** One curl invocation (its connections reused from one URL to the next) running every transfer in order. */
async function curl(host: LabHost, base: string, transfers: readonly Transfer[], who: { uid: number; gid: number }): Promise<Result[]> {
  const dir = await mkdtemp(join(tmpdir(), `vmesh-curl-${seq++}-`));
  chmodSync(dir, 0o777);
  try {
    const args: string[] = [];
    transfers.forEach((t, i) => {
      if (i > 0) args.push('--next');
      args.push('-sS', '--http1.1', '--max-time', '10', '-o', join(dir, String(i)));
      args.push('-w', `~~BEGIN %{http_code} %{num_connects} %{exitcode}\\n%{header_json}\\n~~END\\n`);
      if (t.head) args.push('-I');
      args.push(...(t.args ?? []), `${base}${t.path}`);
    });
    const r = await host.exec('curl', args, { ...who, timeoutMs: 120_000 });
    const parts = r.stdout.split('~~BEGIN ').slice(1);
    assert.equal(parts.length, transfers.length, `curl ${base}: ${r.stdout}\n${r.stderr}`);
    return parts.map((p, i) => {
      const [line = '', ...rest] = p.split('\n');
      const [status, connects, exit] = line.split(' ').map(Number);
      const json = rest.join('\n').split('~~END')[0] ?? '{}';
      let body: Buffer = Buffer.alloc(0);
      try {
        body = readFileSync(join(dir, String(i)));
      } catch {}
      const headers = JSON.parse(json.trim() || '{}') as Record<string, string[]>;
      const kept: Record<string, string[]> = {};
      for (const k of KEPT_HEADERS) if (headers[k]) kept[k] = headers[k];
      return {
        path: (transfers[i] as Transfer).path,
        status: status ?? 0,
        connects: connects ?? 0,
        exit: exit ?? -1,
        headers: kept,
        size: transfers[i]?.head ? 0 : body.length,
        sha: transfers[i]?.head ? '' : createHash('sha256').update(body).digest('hex'),
      };
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Status, headers the app set, exit code and body bytes of each transfer, as the comparison wants them. */
const view = (rs: readonly Result[]) =>
  rs.map(({ path, status, exit, headers, size, sha }) => ({ path, status, exit, headers, size, sha }));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('real clients over reused connections: every response shape, byte for byte as the direct path', () => {
  let f: FeatureLab;
  const procs: LabProcess[] = [];
  let staticDir = '';
  let postFile = '';

  before(async () => {
    f = await startFeatureLab({
      servers: ['h2:web2:8092'],
      services: [
        { name: 'shapes', port: 8090, portName: 'http', endpoints: [{ name: 'shapes-1', port: 8090 }] },
        { name: 'static', port: 8091, portName: 'http', endpoints: [{ name: 'static-1', port: 8091 }] },
        { name: 'static10', port: 8093, portName: 'http', endpoints: [{ name: 'static10-1', port: 8093 }] },
        { name: 'web2', port: 8092, portName: 'http2', endpoints: [{ name: 'web2-1', port: 8092 }] },
      ],
    });
    staticDir = await mkdtemp(join(tmpdir(), 'vmesh-static-'));
    chmodSync(staticDir, 0o755);
    mkdirSync(join(staticDir, 'sub'));
    writeFileSync(join(staticDir, 'small.txt'), 'hello from python\n'.repeat(5));
    const big = Buffer.alloc(3 * 1024 * 1024);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7) % 256;
    writeFileSync(join(staticDir, 'big.bin'), big);
    writeFileSync(join(staticDir, 'mid.bin'), big.subarray(0, 40_000));
    writeFileSync(join(staticDir, 'sub', 'index.html'), '<p>index</p>\n');
    postFile = join(staticDir, 'post.bin');
    writeFileSync(postFile, big.subarray(0, 300_000));
    const shapes = f.h3.spawn(process.execPath, [join(FIX, 'http-shapes.mjs'), '8090'], APP);
    const py11 = f.h3.spawn(PYTHON, ['-u', '-m', 'http.server', '8091', '--protocol', 'HTTP/1.1', '--directory', staticDir]);
    const py10 = f.h3.spawn(PYTHON, ['-u', '-m', 'http.server', '8093', '--directory', staticDir]);
    procs.push(shapes, py11, py10);
    await Promise.all([
      shapes.waitForLine(/^ready$/, 30_000),
      py11.waitForLine(/Serving HTTP/, 30_000),
      py10.waitForLine(/Serving HTTP/, 30_000),
    ]);
    // The servers start after the lab applied their services, so the agent's first probes found them down and
    // the controller took them out of load balancing: wait for the next probe to bring them back.
    for (const [svc, port] of [
      ['shapes', 8090],
      ['static', 8091],
      ['static10', 8093],
    ] as const) {
      const url = `http://${svc}:${port}/${svc === 'shapes' ? 'empty' : 'small.txt'}`;
      let code = '';
      for (const until = Date.now() + 30_000; code !== '200' && Date.now() < until; await sleep(250)) {
        code = (await f.h2.exec('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '-m', '5', url], { ...APP, timeoutMs: 10_000 }))
          .stdout;
      }
      assert.equal(code, '200', `${url} never answered 200 through the mesh`);
    }
  });
  after(async () => {
    for (const p of procs) await p.stop();
    await f?.teardown();
    if (staticDir) rmSync(staticDir, { recursive: true, force: true });
  });

  const shapes = (): Transfer[] => [
    // The case: two writes 100 ms apart, then the next request on the same connections.
    { path: '/parts?n=32768&parts=2&gap=100' },
    { path: '/x' },
    { path: '/len?n=100' },
    { path: '/len?n=200000' },
    { path: '/parts?n=100000&parts=10&gap=20' },
    { path: '/chunked?n=50000&parts=5&gap=30' },
    { path: '/empty' },
    { path: '/len?n=5000', head: true },
    { path: '/chunked?n=5000', head: true },
    { path: '/status?code=204' },
    { path: '/status?code=304', args: ['-H', 'If-None-Match: "v1"'] },
    { path: '/echo', args: ['-H', 'Expect: 100-continue', '--data-binary', `@${postFile}`] },
    { path: '/big?mb=10' },
    { path: '/x?after=big' },
    { path: '/close?n=3000' },
    { path: '/x?after=close' },
    { path: '/cut?n=100000' },
    { path: '/x?after=cut' },
  ];

  /** Every shape through one curl invocation from h2 as the app, against the same from h3 directly. */
  const sameAsDirect = async (meshBase: string): Promise<void> => {
    const direct = await curl(f.h3, 'http://127.0.0.1:8090', shapes(), DIRECT);
    const mesh = await curl(f.h2, meshBase, shapes(), APP);
    // Everything but the cut body matches exactly; the cut one fails in both (curl sees the body end short).
    const cut = shapes().findIndex((t) => t.path.startsWith('/cut'));
    const d = view(direct);
    const m = view(mesh);
    for (const [i, r] of m.entries()) {
      if (i === cut) continue;
      assert.deepEqual(r, d[i], `${meshBase} vs direct, transfer ${i} ${r.path}`);
    }
    assert.equal(m[cut]?.status, 200);
    assert.notEqual(m[cut]?.exit, 0, JSON.stringify(m[cut]));
    assert.notEqual(d[cut]?.exit, 0, JSON.stringify(d[cut]));
    assert.ok((m[cut]?.size ?? 0) < 100_000, JSON.stringify(m[cut]));
    // curl kept its one connection to the proxy until the server closed (/close) or cut (/cut) its own.
    const connects = mesh.map((r) => r.connects);
    const closeAt = shapes().findIndex((t) => t.path.startsWith('/close'));
    assert.equal(connects[0], 1, JSON.stringify(connects));
    assert.ok(
      connects.slice(1, closeAt + 1).every((c) => c === 0),
      `keep-alive until the server's close: ${JSON.stringify(connects)}`,
    );
  };

  test('curl, one invocation, every shape in turn: same status, headers and bytes as direct, connections reused', async () => {
    await sameAsDirect('http://shapes:8090');
  });

  test("over IPv6: the server host's IPv6 address (passthrough out of h2, PERMISSIVE into h3's inbound) gives the same bytes", async () => {
    assert.ok(f.h3.ipv6, 'the lab gives h3 an IPv6 address');
    await sameAsDirect(`http://[${f.h3.ipv6}]:8090`);
  });

  test("curl, separate invocations: a multi-part or 10 MB response leaves the proxies' pooled connections readable", async () => {
    for (const first of ['/parts?n=32768&parts=2&gap=100', '/big?mb=10', '/chunked?n=40000&parts=4&gap=50']) {
      for (let k = 0; k < 2; k++) {
        const [a] = await curl(f.h2, 'http://shapes:8090', [{ path: first }], APP);
        assert.equal(a?.status, 200, first);
        const [b] = await curl(f.h2, 'http://shapes:8090', [{ path: '/x', args: ['--max-time', '5'] }], APP);
        assert.deepEqual(
          { status: b?.status, exit: b?.exit, size: b?.size },
          { status: 200, exit: 0, size: 'shapes GET /x\n'.length },
          `after ${first}`,
        );
      }
    }
  });

  test('concurrent curls, each reusing its connection, get the same bytes as direct', async () => {
    const set: Transfer[] = [
      { path: '/parts?n=40000&parts=4&gap=30' },
      { path: '/chunked?n=30000&parts=3&gap=30' },
      { path: '/x' },
      { path: '/len?n=70000' },
      { path: '/status?code=204' },
      { path: '/x' },
    ];
    const direct = view(await curl(f.h3, 'http://127.0.0.1:8090', set, DIRECT));
    const runs = await Promise.all(Array.from({ length: 6 }, () => curl(f.h2, 'http://shapes:8090', set, APP)));
    for (const [k, run] of runs.entries()) {
      assert.deepEqual(view(run), direct, `concurrent curl ${k}`);
      assert.deepEqual(
        run.map((r) => r.connects),
        [1, 0, 0, 0, 0, 0],
      );
    }
  });

  test('python http.server (HTTP/1.1 keep-alive and HTTP/1.0): static files, listings and 404 as direct', async () => {
    const files: Transfer[] = [
      { path: '/small.txt' },
      { path: '/mid.bin' },
      { path: '/big.bin' },
      { path: '/sub/' },
      { path: '/sub' },
      { path: '/missing' },
      { path: '/small.txt', head: true },
      { path: '/mid.bin' },
    ];
    for (const [name, port] of [
      ['static', 8091],
      ['static10', 8093],
    ] as const) {
      const direct = view(await curl(f.h3, `http://127.0.0.1:${port}`, files, DIRECT));
      const mesh = await curl(f.h2, `http://${name}:${port}`, files, APP);
      assert.deepEqual(view(mesh), direct, name);
      // The client's connection to its proxy is kept alive even when the server closes each of its own (HTTP/1.0).
      assert.deepEqual(
        mesh.map((r) => r.connects),
        [1, 0, 0, 0, 0, 0, 0, 0],
        name,
      );
    }
  });

  const h2load = async (args: string[]): Promise<string> => {
    const out = await f.h2.execOk('h2load', args, { ...APP, timeoutMs: 180_000 });
    const m = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(out);
    assert.ok(m, out);
    assert.deepEqual(m.slice(1).map(Number), [2000, 2000, 2000, 2000, 0, 0, 0], out);
    assert.match(out, /status codes: 2000 2xx/, out);
    return out;
  };

  test('h2load over HTTP/1.1 keep-alive: 2000 requests on 10 connections, none failed', async () => {
    await h2load(['--h1', '-n', '2000', '-c', '10', 'http://shapes:8090/parts?n=20000&parts=2&gap=1']);
  });

  test('h2load over h2c: 2000 requests on 10 connections, 10 streams each, none failed', async () => {
    await h2load(['-n', '2000', '-c', '10', '-m', '10', 'http://web2:8092/']);
  });
});
