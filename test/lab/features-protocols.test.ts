import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { APP, type FeatureLab, startFeatureLab } from './features-lab.js';

// Real clients on h2 (uid 1500, services by name through DNS and capture) to servers behind the proxy on h3:
// curl over HTTP/1.1 keep-alive, a Node HTTP/2 client, a gRPC client, a WebSocket and raw TCP.
describe('protocols end to end: client host -> capture -> proxy -> proxy -> server host', () => {
  let f: FeatureLab;

  before(async () => {
    f = await startFeatureLab({
      servers: ['http:web:8080', 'h2:web2:8082', 'grpc:echo:8083', 'tcp:tcp:8084'],
      services: [
        { name: 'web', port: 8080, portName: 'http', endpoints: [{ name: 'web-1', port: 8080 }] },
        { name: 'web2', port: 8082, portName: 'http2', endpoints: [{ name: 'web2-1', port: 8082 }] },
        { name: 'echo', port: 8083, portName: 'grpc', endpoints: [{ name: 'echo-1', port: 8083 }] },
        { name: 'rawtcp', port: 8084, portName: 'tcp', endpoints: [{ name: 'rawtcp-1', port: 8084 }] },
      ],
    });
  });
  after(async () => {
    await f?.teardown();
  });

  test('curl: five requests on one keep-alive connection, each answered over one pooled upstream connection', async () => {
    const urls = Array.from({ length: 5 }, (_, i) => `http://web:8080/curl/${i}`);
    const out = await f.h2.execOk(
      'curl',
      ['-sS', '--http1.1', '--max-time', '20', '-w', 'status=%{http_code} connects=%{num_connects} version=%{http_version}\\n', ...urls],
      { ...APP, timeoutMs: 60_000 },
    );
    const lines = out.trim().split('\n');
    const stats = lines.filter((l) => l.startsWith('status='));
    const bodies = lines.filter((l) => l.startsWith('web '));
    assert.equal(stats.length, 5, out);
    assert.ok(
      stats.every((l) => l.includes('status=200') && l.includes('version=1.1')),
      out,
    );
    // curl opened one connection (to the VIP, caught by capture) and reused it for the other four.
    const connects = stats.map((l) => Number(/connects=(\d+)/.exec(l)?.[1]));
    assert.deepEqual(connects, [1, 0, 0, 0, 0], out);
    // Each request reached the server with its own path, all over the server-side proxy's one pooled connection.
    assert.deepEqual(
      bodies.map((b) => b.split(' ')[3]),
      urls.map((u) => new URL(u).pathname),
      out,
    );
    assert.equal(new Set(bodies.map((b) => b.split(' ')[1])).size, 1, out);
  });

  test('HTTP/2: concurrent streams on one session, bodies and trailers end to end', async () => {
    type H2 = { results: Array<{ i: number; status?: number; body: string; trailers?: Record<string, string>; error?: string }> };
    const out = await f.client<H2>('h2', { url: 'http://web2:8082', n: 8 });
    assert.equal(out.results.length, 8, JSON.stringify(out));
    for (const r of out.results) {
      assert.equal(r.error, undefined, JSON.stringify(r));
      assert.equal(r.status, 200, JSON.stringify(r));
      assert.equal(r.body, `web2 POST /h2/${r.i} ping-${r.i}`, JSON.stringify(r));
      assert.deepEqual(r.trailers, { 'x-body-length': String(`ping-${r.i}`.length), 'x-served-by': 'web2' }, JSON.stringify(r));
    }
  });

  test('gRPC: a reply with trailing metadata, and an error status with its message, end to end', async () => {
    type Grpc = {
      results: Array<{
        text: string;
        reply?: { text: string; server: string };
        error?: { code: number; details: string };
        status: { code: number; details: string; servedBy: string[] };
      }>;
    };
    const out = await f.client<Grpc>('grpc', { target: 'echo:8083', texts: ['hello', 'fail', 'again'] });
    const [hello, fail, again] = out.results;
    assert.deepEqual(hello?.reply, { text: 'hello', server: 'echo' }, JSON.stringify(out));
    assert.equal(hello?.status.code, 0, JSON.stringify(out));
    assert.deepEqual(hello?.status.servedBy, ['echo'], JSON.stringify(out));
    // grpc-status 5 and grpc-message come through in the trailers, with the server's trailing metadata.
    assert.deepEqual(fail?.error, { code: 5, details: 'no such text' }, JSON.stringify(out));
    assert.deepEqual(fail?.status.servedBy, ['echo'], JSON.stringify(out));
    assert.deepEqual(again?.reply, { text: 'again', server: 'echo' }, JSON.stringify(out));
  });

  test('WebSocket: the upgrade goes through, masked frames echo back, the close handshake completes', async () => {
    type Ws = { status?: number; acceptOk?: boolean; echoes?: string[]; closed?: boolean; error?: string };
    const out = await f.client<Ws>('ws', { host: 'web', port: 8080, messages: ['hello', 'through the mesh', 'bye'] });
    assert.deepEqual(out, { status: 101, acceptOk: true, echoes: ['web:hello', 'web:through the mesh', 'web:bye'], closed: true });
  });

  test('raw TCP: 1 MiB echoes back intact, half-close included', async () => {
    const out = await f.client('tcp', { host: 'rawtcp', port: 8084, bytes: 1024 * 1024 });
    assert.deepEqual(out, { sent: 1024 * 1024, received: 1024 * 1024, same: true });
  });
});
