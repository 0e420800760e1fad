import assert from 'node:assert/strict';
import { type Http2Server, connect as h2connect, createServer as h2server, type IncomingHttpHeaders } from 'node:http2';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { makePki, spiffe, type TestPki } from '../l4-fixture.js';
import {
  cluster,
  forward,
  type ProxyHarness,
  prefix,
  proxyConfig,
  route,
  send,
  startProxy,
  table,
  type Upstream,
  upstream,
  vhost,
} from './http-fixture.js';

const identity = (x: Buffer) => x;
const echoService = {
  say: {
    path: '/test.Echo/Say',
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
} as const;
const EchoClient = grpc.makeGenericClientConstructor(echoService, 'Echo');

interface H2Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** One HTTP/2 request (prior knowledge, or TLS with ALPN h2 when `ca` is given). */
function h2request(
  port: number,
  path: string,
  opts: { ca?: string; method?: string; body?: string; authority?: string } = {},
): Promise<H2Reply> {
  return new Promise((resolve, reject) => {
    const session = opts.ca
      ? h2connect(`https://localhost:${port}`, { ca: opts.ca, servername: 'localhost' })
      : h2connect(`http://127.0.0.1:${port}`);
    session.on('error', reject);
    const req = session.request({ ':method': opts.method ?? 'GET', ':path': path, ':authority': opts.authority ?? 'svc' });
    const chunks: Buffer[] = [];
    let headers: IncomingHttpHeaders = {};
    req.on('response', (h) => {
      headers = h;
    });
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      session.close();
      resolve({ status: Number(headers[':status']), headers, body: Buffer.concat(chunks).toString() });
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

function unary(client: grpc.Client, payload: string): Promise<{ err: grpc.ServiceError | null; value?: string }> {
  return new Promise((resolve) => {
    (client as unknown as { say: (b: Buffer, cb: (e: grpc.ServiceError | null, v?: Buffer) => void) => void }).say(
      Buffer.from(payload),
      (err, v) => resolve({ err, ...(v ? { value: v.toString() } : {}) }),
    );
  });
}

describe('HTTP/2 and gRPC through the proxy', () => {
  let h1: Upstream;
  let h2u: Http2Server;
  let h2Port = 0;
  let h2Sessions = 0;
  let grpcServer: grpc.Server;
  let grpcPort = 0;
  let p: ProxyHarness;
  let pki: TestPki;
  let tlsProxy: ProxyHarness;

  before(async () => {
    h1 = await upstream('H1');
    h2u = h2server();
    h2u.on('session', () => h2Sessions++);
    h2u.on('stream', (stream, headers) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        stream.respond({ ':status': 200, 'x-upstream': 'H2', 'x-saw-authority': String(headers[':authority']) });
        stream.end(`h2 ${headers[':method']} ${headers[':path']} ${Buffer.concat(chunks).toString()}`);
      });
    });
    h2Port = await new Promise<number>((resolve) => h2u.listen(0, '127.0.0.1', () => resolve((h2u.address() as { port: number }).port)));
    grpcServer = new grpc.Server();
    grpcServer.addService(echoService as unknown as grpc.ServiceDefinition, {
      say: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
        const text = call.request.toString();
        if (text === 'missing') return cb({ code: grpc.status.NOT_FOUND, details: 'no such thing' });
        const md = new grpc.Metadata();
        md.set('x-trailer', 'bye');
        cb(null, Buffer.from(`echo:${text}:${call.metadata.get('x-client')[0] ?? ''}`), md);
      },
    });
    grpcPort = await new Promise<number>((resolve, reject) =>
      grpcServer.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, port) => (e ? reject(e) : resolve(port))),
    );
    const cfg = proxyConfig(
      [cluster('h1', [h1.port]), cluster('h2', [h2Port], { http2: true }), cluster('grpc', [grpcPort], { http2: true })],
      [
        table('r', [
          vhost(
            'any',
            ['*'],
            [
              route('grpc', prefix('/test.Echo/'), forward('grpc')),
              route('to-h2', prefix('/h2'), forward('h2')),
              route('to-h1', prefix('/'), forward('h1')),
            ],
          ),
        ]),
      ],
    );
    p = await startProxy(cfg);
    pki = await makePki();
    const id = pki.issue(spiffe('proxy'), { dnsNames: ['localhost'] });
    tlsProxy = await startProxy(cfg, undefined, { tls: { key: id.keyPem, cert: id.certPem } });
  });
  after(async () => {
    await p.close();
    await tlsProxy.close();
    await h1.close();
    await new Promise<void>((r) => h2u.close(() => r()));
    grpcServer.forceShutdown();
    await pki.cleanup();
  });

  test('downstream h2 (prior knowledge) to an HTTP/1.1 upstream', async () => {
    const r = await h2request(p.port, '/hello', { method: 'POST', body: 'data' });
    assert.equal(r.status, 200);
    assert.equal(r.body, 'H1 POST /hello');
    assert.equal(h1.requests.at(-1)?.body.toString(), 'data');
    assert.equal(h1.requests.at(-1)?.headers.host, 'svc');
    assert.equal(p.stats.at(-1)?.protocol, 'HTTP/2');
  });

  test('h2 pseudo-headers that could not form a valid HTTP/1.1 request line are refused (stream reset)', async () => {
    const before = h1.requests.length;
    for (const [method, path] of [
      ['GET', '/a b'],
      ['GET', '/a\x01'],
      ['FOO', '/x'],
      ['GET', '*'],
    ] as const) {
      await assert.rejects(h2request(p.port, path, { method }), /RST_STREAM|PROTOCOL_ERROR|stream/i, `${method} ${path}`);
    }
    assert.equal(h1.requests.length, before);
    assert.equal((await h2request(p.port, '/still-fine')).status, 200);
  });

  test('h2 to an h2 upstream, and HTTP/1.1 to the same h2 upstream over one shared session', async () => {
    const before = h2Sessions;
    const r = await h2request(p.port, '/h2/x', { method: 'PUT', body: 'b' });
    assert.equal(r.status, 200);
    assert.equal(r.body, 'h2 PUT /h2/x b');
    assert.equal(r.headers['x-saw-authority'], 'svc');
    const r2 = await send(p.port, { path: '/h2/y', method: 'POST', body: 'from h1' });
    assert.equal(r2.body, 'h2 POST /h2/y from h1');
    const many = await Promise.all(Array.from({ length: 20 }, (_, i) => send(p.port, { path: `/h2/${i}` })));
    for (const m of many) assert.equal(m.status, 200);
    assert.equal(h2Sessions - before, 1, 'one upstream session multiplexes every request');
  });

  test('gRPC unary through the proxy: payload, metadata, trailers and error statuses', async () => {
    const client = new EchoClient(`127.0.0.1:${p.port}`, grpc.credentials.createInsecure());
    try {
      const md = new grpc.Metadata();
      md.set('x-client', 'c1');
      const ok = await new Promise<{ value: string; trailer: string }>((resolve, reject) => {
        let trailer = '';
        const call = (
          client as unknown as {
            say: (b: Buffer, m: grpc.Metadata, cb: (e: grpc.ServiceError | null, v?: Buffer) => void) => grpc.ClientUnaryCall;
          }
        ).say(Buffer.from('hi'), md, (e, v) => (e ? reject(e) : setImmediate(() => resolve({ value: v?.toString() ?? '', trailer }))));
        call.on('status', (s: grpc.StatusObject) => {
          trailer = String(s.metadata.get('x-trailer')[0] ?? '');
        });
      });
      assert.equal(ok.value, 'echo:hi:c1');
      assert.equal(ok.trailer, 'bye');
      const missing = await unary(client, 'missing');
      assert.equal(missing.err?.code, grpc.status.NOT_FOUND);
      assert.equal(missing.err?.details, 'no such thing');
    } finally {
      client.close();
    }
  });

  test('gRPC local replies carry a gRPC status (no route: UNIMPLEMENTED)', async () => {
    p.setConfig(
      proxyConfig(
        [cluster('grpc', [grpcPort], { http2: true })],
        [table('r', [vhost('any', ['*'], [route('x', prefix('/other/'), forward('grpc'))])])],
      ),
    );
    const client = new EchoClient(`127.0.0.1:${p.port}`, grpc.credentials.createInsecure());
    try {
      const r = await unary(client, 'hi');
      assert.equal(r.err?.code, grpc.status.UNIMPLEMENTED);
    } finally {
      client.close();
    }
  });

  test('h2 over TLS (ALPN h2) and HTTP/1.1 over TLS; x-forwarded-proto https', async () => {
    const r = await h2request(tlsProxy.port, '/tls', { ca: pki.caPem });
    assert.equal(r.status, 200);
    assert.equal(r.body, 'H1 GET /tls');
    assert.equal(h1.requests.at(-1)?.headers['x-forwarded-proto'], 'https');
    assert.equal(tlsProxy.stats.at(-1)?.protocol, 'HTTP/2');
    const { request } = await import('node:https');
    const body = await new Promise<string>((resolve, reject) => {
      const req = request(
        { host: '127.0.0.1', port: tlsProxy.port, path: '/tls1', ca: pki.caPem, servername: 'localhost', headers: { host: 'svc' } },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve(Buffer.concat(chunks).toString()));
        },
      );
      req.on('error', reject);
      req.end();
    });
    assert.equal(body, 'H1 GET /tls1');
    assert.equal(tlsProxy.stats.at(-1)?.protocol, 'HTTP/1.1');
  });
});
