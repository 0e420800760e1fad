import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { connect, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import {
  cluster,
  forward,
  type ProxyHarness,
  prefix,
  proxyConfig,
  rawExchange,
  route,
  send,
  startProxy,
  table,
  type Upstream,
  upstream,
  vhost,
} from './http-fixture.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const tick = () => {
      if (cond()) return resolve();
      if (Date.now() - t0 > ms) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, 5);
    };
    tick();
  });
}

/** A raw client socket that accumulates what it receives. */
function client(port: number): Promise<{ s: Socket; text: () => string }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const s = connect(port, '127.0.0.1', () => resolve({ s, text: () => Buffer.concat(chunks).toString('latin1') }));
    s.on('data', (d: Buffer) => chunks.push(d));
    s.on('error', () => {});
  });
}

describe('HTTP streaming, upgrades and connection handling', () => {
  let u: Upstream;
  let p: ProxyHarness;
  /** Test-controlled gates for the streaming upstream handlers. */
  let releaseResponse: () => void = () => {};
  let uploadReq: IncomingMessage | undefined;
  let uploadBytes = 0;

  function handler(req: IncomingMessage, res: ServerResponse, body: Buffer): void {
    if (req.url === '/204') {
      res.statusCode = 204;
      return void res.end();
    }
    if (req.url === '/304') {
      res.statusCode = 304;
      res.setHeader('etag', '"x"');
      return void res.end();
    }
    if (req.url === '/chunked') {
      res.write('first,');
      return void res.end('second');
    }
    if (req.url === '/expect') return void res.end(`expect=${req.headers.expect ?? 'none'} body=${body.toString()}`);
    res.end(`${req.method} ${req.url} ${body.length}`);
  }

  before(async () => {
    u = await upstream('U', handler, (req, res) => {
      if (req.url === '/stream-response') {
        req.resume();
        res.setHeader('content-type', 'text/plain');
        res.write('part1;');
        releaseResponse = () => res.end('part2');
        return true;
      }
      if (!req.url?.startsWith('/upload')) return false;
      uploadReq = req;
      uploadBytes = 0;
      const hash = createHash('sha256');
      if (req.url === '/upload-paused') req.pause();
      req.on('data', (c: Buffer) => {
        uploadBytes += c.length;
        hash.update(c);
      });
      req.on('end', () => res.end(`${uploadBytes} ${hash.digest('hex')}`));
      return true;
    });
    u.server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
      const key = req.headers['sec-websocket-key'] ?? '';
      const accept = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
      socket.write(
        `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
      );
      if (head.length > 0) socket.write(head);
      socket.pipe(socket);
    });
    p = await startProxy(
      proxyConfig(
        [cluster('u', [u.port])],
        [table('r', [vhost('any', ['*'], [route('all', prefix('/'), forward('u', { timeoutMs: 0 }))])])],
      ),
    );
  });
  after(async () => {
    await p.close();
    await u.close();
  });

  test('a chunked response streams: the client sees the first part before the upstream finishes', async () => {
    const c = await client(p.port);
    c.s.write('GET /stream-response HTTP/1.1\r\nHost: a\r\n\r\n');
    await waitFor(() => c.text().includes('part1;'), 3000, 'the first part through the proxy');
    assert.ok(!c.text().includes('part2'));
    releaseResponse();
    await waitFor(() => c.text().endsWith('0\r\n\r\n'), 3000, 'the end of the chunked response');
    assert.match(c.text(), /transfer-encoding: chunked/);
    c.s.destroy();
  });

  test('a chunked request streams: the upstream sees the first chunk before the client sends the next', async () => {
    const c = await client(p.port);
    c.s.write('POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n');
    await waitFor(() => uploadBytes === 5, 3000, 'the first chunk upstream');
    c.s.write('6\r\n world\r\n0\r\n\r\n');
    await waitFor(() => c.text().includes('\r\n\r\n11 '), 3000, 'the response');
    c.s.destroy();
  });

  test('a 64 MB upload to a stalled upstream stays bounded in proxy memory, then completes intact', async () => {
    const total = 64 * 1024 * 1024;
    const piece = Buffer.alloc(64 * 1024, 0x61);
    const c = await client(p.port);
    c.s.write(`POST /upload-paused HTTP/1.1\r\nHost: a\r\nContent-Length: ${total}\r\n\r\n`);
    await waitFor(() => uploadReq !== undefined && uploadReq.url === '/upload-paused', 3000, 'the upload to start');
    global.gc?.();
    const base = process.memoryUsage().arrayBuffers;
    let written = 0;
    let stalled = false;
    while (written < total) {
      const ok = c.s.write(piece);
      written += piece.length;
      if (!ok) {
        const drained = await Promise.race([new Promise<boolean>((r) => c.s.once('drain', () => r(true))), sleep(400).then(() => false)]);
        if (!drained) {
          stalled = true;
          break;
        }
      }
    }
    const grown = process.memoryUsage().arrayBuffers - base;
    assert.ok(stalled, 'the client was held back (backpressure reached it)');
    assert.ok(written < total, `the client could not push everything into a stalled path (${written} bytes)`);
    assert.ok(grown < 16 * 1024 * 1024, `proxy-side buffers grew by ${grown} bytes`);
    uploadReq?.resume();
    while (written < total) {
      if (!c.s.write(piece)) await new Promise((r) => c.s.once('drain', r));
      written += piece.length;
    }
    await waitFor(() => c.text().includes('\r\n\r\n'), 20_000, 'the upload response');
    const expected = createHash('sha256');
    for (let i = 0; i < total / piece.length; i++) expected.update(piece);
    assert.match(c.text(), new RegExp(`${total} ${expected.digest('hex')}`));
    c.s.destroy();
  });

  test('Expect: 100-continue is answered by the proxy and not forwarded', async () => {
    const c = await client(p.port);
    c.s.write('POST /expect HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n');
    await waitFor(() => c.text().startsWith('HTTP/1.1 100 Continue\r\n\r\n'), 3000, '100 Continue');
    c.s.write('body');
    await waitFor(() => c.text().includes('expect=none body=body'), 3000, 'the final response');
    c.s.destroy();
  });

  test('204 and 304 have no body; the connection stays in sync', async () => {
    const out = await rawExchange(
      p.port,
      'GET /204 HTTP/1.1\r\nHost: a\r\n\r\nGET /304 HTTP/1.1\r\nHost: a\r\n\r\nGET /after HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n',
    );
    const statuses = [...out.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => m[1]);
    assert.deepEqual(statuses, ['204', '304', '200']);
    assert.match(out, /GET \/after 0$/);
    assert.doesNotMatch(out.slice(0, out.indexOf('HTTP/1.1 200')), /transfer-encoding/);
  });

  test('HTTP/1.0 client: unknown-length responses are close-delimited', async () => {
    const out = await rawExchange(p.port, 'GET /chunked HTTP/1.0\r\nHost: a\r\n\r\n');
    assert.match(out, /^HTTP\/1\.1 200 OK\r\n/);
    assert.doesNotMatch(out, /transfer-encoding/i);
    assert.match(out, /connection: close\r\n/);
    assert.ok(out.endsWith('\r\n\r\nfirst,second'));
  });

  test('WebSocket upgrade: 101, then bytes tunnel both ways', async () => {
    const c = await client(p.port);
    c.s.write(
      'GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
    );
    await waitFor(() => c.text().includes('\r\n\r\n'), 3000, '101');
    assert.match(c.text(), /^HTTP\/1\.1 101 Switching Protocols\r\n/);
    assert.match(c.text(), /sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=\r\n/);
    assert.match(c.text(), /upgrade: websocket\r\n/);
    const headLen = c.text().indexOf('\r\n\r\n') + 4;
    const frame = Buffer.from([0x81, 0x85, 1, 2, 3, 4, 0x69, 0x67, 0x6f, 0x68, 0x6e]);
    c.s.write(frame);
    await waitFor(() => c.text().length >= headLen + frame.length, 3000, 'the echo');
    assert.deepEqual(Buffer.from(c.text().slice(headLen), 'latin1'), frame);
    c.s.destroy();
    assert.equal(p.stats.at(-1)?.status, 101);
  });

  test('the client leaving mid-request aborts the upstream side', async () => {
    const c = await client(p.port);
    c.s.write('POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n12345');
    await waitFor(() => uploadBytes === 5, 3000, 'partial body upstream');
    const req = uploadReq;
    c.s.destroy();
    await waitFor(() => req?.destroyed === true || req?.socket?.destroyed === true, 3000, 'the upstream request to be torn down');
    await waitFor(() => p.stats.at(-1)?.responseFlags === 'DC', 3000, 'DC reported');
  });

  test('drain: idle connections close, an in-flight response ends with connection: close', async () => {
    const idle = await client(p.port);
    idle.s.write('GET /x HTTP/1.1\r\nHost: a\r\n\r\n');
    await waitFor(() => idle.text().includes('GET /x 0'), 3000, 'first response');
    const busy = await client(p.port);
    busy.s.write('GET /stream-response HTTP/1.1\r\nHost: a\r\n\r\n');
    await waitFor(() => busy.text().includes('part1;'), 3000, 'streaming started');
    const closed = new Promise((r) => idle.s.once('close', r));
    const drained = p.handler.drain(3000);
    await closed;
    await sleep(50);
    releaseResponse();
    await drained;
    assert.equal(p.handler.connections(), 0);
    assert.ok(busy.text().endsWith('part2\r\n0\r\n\r\n'));
    busy.s.destroy();
    assert.equal(p.handler.idleUpstreamConnections(), 0);
    const after = await send(p.port).catch(() => undefined);
    assert.ok(after === undefined || after.headers.connection === 'close', 'after a drain, responses close their connection');
  });
});
