import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Agent, request as httpRequest } from 'node:http';
import { connect as h2connect } from 'node:http2';
import { createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { cluster, forward, listenNet, type ProxyHarness, prefix, proxyConfig, route, startProxy, table, vhost } from './http-fixture.js';

/**
 * Large and oddly framed responses through the proxy, to clients that read slowly: the upstream connection reads
 * into a reused buffer, so every byte must still arrive intact and in order when the client pushes back, when
 * bodies come in many small chunks, when responses follow one another on the same connections, and when the
 * client side (HTTP/2) keeps what it was given queued for a while.
 */

const MiB = 1024 * 1024;

/** Deterministic bytes (xorshift), so both sides know the body without sending it twice. */
function body(size: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  let x = seed | 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Writes `data` in pieces of varying size, waiting for 'drain' when the socket asks. */
async function writeVaried(s: Socket, data: Buffer, sizes: readonly number[]): Promise<void> {
  for (let at = 0, k = 0; at < data.length; k++) {
    const n = Math.min(sizes[k % sizes.length] as number, data.length - at);
    const more = s.write(data.subarray(at, at + n));
    at += n;
    if (!more) await new Promise((r) => s.once('drain', r));
  }
}

function chunkedEncode(data: Buffer, sizes: readonly number[]): Buffer {
  const parts: Buffer[] = [];
  for (let at = 0, k = 0; at < data.length; k++) {
    const n = Math.min(sizes[k % sizes.length] as number, data.length - at);
    parts.push(Buffer.from(`${n.toString(16)}\r\n`, 'latin1'), data.subarray(at, at + n), Buffer.from('\r\n', 'latin1'));
    at += n;
  }
  parts.push(Buffer.from('0\r\n\r\n', 'latin1'));
  return Buffer.concat(parts);
}

describe('HTTP downloads through the proxy', () => {
  let up: Server;
  let p: ProxyHarness;
  const sockets = new Set<Socket>();
  const bodies = new Map<string, Buffer>([
    ['/big', body(24 * MiB, 7)],
    ['/chunked', body(6 * MiB, 11)],
    ['/small', body(1500, 13)],
  ]);

  before(async () => {
    // A raw upstream: keep-alive, responses written in pieces that straddle heads, chunk frames and reads.
    up = createServer({ allowHalfOpen: true }, (s) => {
      let pending = Buffer.alloc(0);
      let busy = Promise.resolve();
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {});
      s.on('end', () => s.end());
      s.on('data', (d: Buffer) => {
        pending = Buffer.concat([pending, d]);
        for (let end = pending.indexOf('\r\n\r\n'); end >= 0; end = pending.indexOf('\r\n\r\n')) {
          const path = /^GET (\S+)/.exec(pending.subarray(0, end).toString('latin1'))?.[1] ?? '';
          pending = pending.subarray(end + 4);
          busy = busy.then(async () => {
            const b = bodies.get(path) ?? Buffer.alloc(0);
            if (path === '/chunked') {
              const head = Buffer.from('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n', 'latin1');
              await writeVaried(s, Buffer.concat([head, chunkedEncode(b, [1, 7, 300, 5000, 17_000, 70_000, 2])]), [3, 999, 40_000, 123]);
            } else {
              const head = Buffer.from(`HTTP/1.1 200 OK\r\ncontent-length: ${b.length}\r\n\r\n`, 'latin1');
              await writeVaried(s, Buffer.concat([head, b]), [17, 65_536, 100_000, 4096, 33_333]);
            }
          });
        }
      });
    });
    const port = await listenNet(up);
    p = await startProxy(proxyConfig([cluster('c', [port])], [table('r', [vhost('v', ['*'], [route('all', prefix('/'), forward('c'))])])]));
  });
  after(async () => {
    await p.close();
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => up.close(() => r()));
  });

  /** GETs `path` with a client that stops reading every so often, and returns what arrived. */
  function slowGet(path: string, agent: Agent): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port: p.port, path, headers: { host: 'svc' }, agent }, (res) => {
        const parts: Buffer[] = [];
        let n = 0;
        res.on('data', (c: Buffer) => {
          parts.push(c);
          // Pause often enough that the proxy's writes to us fill up and it stops reading the upstream.
          if (++n % 16 === 0) {
            res.pause();
            setTimeout(() => res.resume(), 5);
          }
        });
        res.on('end', () => resolve(Buffer.concat(parts)));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.setTimeout(60_000, () => req.destroy(new Error('client timeout')));
      req.end();
    });
  }

  test('large, chunked and small bodies arrive intact to a slow reader, on reused connections', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 2 });
    try {
      const order = ['/small', '/big', '/small', '/chunked', '/small', '/big', '/chunked', '/small'];
      const got = await Promise.all(order.map((path) => slowGet(path, agent)));
      for (const [i, path] of order.entries()) {
        const want = bodies.get(path) as Buffer;
        const b = got[i] as Buffer;
        assert.equal(b.length, want.length, `${path} (#${i}) length`);
        assert.equal(sha(b), sha(want), `${path} (#${i}) content`);
      }
    } finally {
      agent.destroy();
    }
  });

  test('the same to an HTTP/2 client (prior knowledge), whose streams queue what they are given', async () => {
    const session = h2connect(`http://127.0.0.1:${p.port}`);
    try {
      const get = (path: string) =>
        new Promise<Buffer>((resolve, reject) => {
          const st = session.request({ ':path': path, ':authority': 'svc' });
          const parts: Buffer[] = [];
          let n = 0;
          st.on('data', (c: Buffer) => {
            parts.push(c);
            if (++n % 16 === 0) {
              st.pause();
              setTimeout(() => st.resume(), 5);
            }
          });
          st.on('end', () => resolve(Buffer.concat(parts)));
          st.on('error', reject);
        });
      const order = ['/big', '/chunked', '/small', '/big'];
      const got = await Promise.all(order.map(get));
      for (const [i, path] of order.entries()) {
        const want = bodies.get(path) as Buffer;
        const b = got[i] as Buffer;
        assert.equal(b.length, want.length, `${path} (#${i}) length`);
        assert.equal(sha(b), sha(want), `${path} (#${i}) content`);
      }
    } finally {
      session.close();
    }
  });
});
