import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { SafeRegex } from '../../../../src/lib/safe-regex.js';
import type { ProxyConfig } from '../../../../src/proxy/proxy-config.js';
import {
  Agent,
  cluster,
  forward,
  NO_OPS,
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

/** Upstream answer: its tag and what it received, as JSON. */
function echo(tag: string) {
  return (req: IncomingMessage, res: ServerResponse, body: Buffer) => {
    res.setHeader('content-type', 'application/json');
    res.setHeader('x-upstream', tag);
    res.setHeader('x-hop', 'drop-me');
    res.setHeader('connection', 'x-hop');
    const out = JSON.stringify({ tag, method: req.method, url: req.url, headers: req.headers, body: body.toString() });
    res.setHeader('content-length', Buffer.byteLength(out));
    res.end(out);
  };
}

function json(body: string): { tag: string; url: string; headers: Record<string, string>; body: string } {
  return JSON.parse(body);
}

describe('HTTP routing and forwarding', () => {
  let a: Upstream;
  let b: Upstream;
  let c: Upstream;
  let p: ProxyHarness;

  function config(): ProxyConfig {
    const addHdr = { add: [{ name: 'x-added', value: 'yes', append: false }], remove: ['x-secret'] };
    const respHdr = { add: [{ name: 'x-resp', value: 'r1', append: true }], remove: ['x-upstream'] };
    return proxyConfig(
      [cluster('a', [a.port]), cluster('b', [b.port]), cluster('c', [c.port])],
      [
        table('r', [
          vhost(
            'reviews',
            ['reviews', 'reviews:9080'],
            [
              route(
                'hdr',
                prefix('/', {
                  headers: [{ name: 'end-user', match: { kind: 'exact', value: 'jason', ignoreCase: false }, invert: false }],
                }),
                forward('c'),
              ),
              route('default', prefix('/'), forward('b')),
            ],
          ),
          vhost('wild', ['*.example.com'], [route('w', prefix('/'), forward('c'))]),
          { ...vhost('secure', ['secure'], [route('s', prefix('/'), forward('a'))]), requireTls: true },
          vhost(
            'any',
            ['*'],
            [
              route('rewrite', prefix('/old/'), forward('a', { prefixRewrite: '/new/', hostRewrite: 'rewritten.host' })),
              route(
                'regex',
                { path: { kind: 'regex', regex: SafeRegex.compile('/re/(\\d+)') }, headers: [], query: [] },
                forward('a', { regexRewrite: { pattern: SafeRegex.compile('/re/(\\d+)'), substitution: ['/id/', 1] } }),
              ),
              route(
                'ops',
                prefix('/ops'),
                forward([{ name: 'a', weight: 1, headers: { add: [{ name: 'x-cluster', value: 'A', append: false }], remove: [] } }]),
                {
                  requestHeaders: addHdr,
                  responseHeaders: respHdr,
                },
              ),
              route('redir', prefix('/redir'), {
                kind: 'redirect',
                status: 301,
                scheme: 'https',
                host: 'new.example',
                prefixRewrite: '/moved',
              }),
              route('redir2', prefix('/r2'), { kind: 'redirect', status: 302, port: 8443, path: '/p' }),
              route('direct', prefix('/direct'), { kind: 'direct_response', status: 418, body: 'teapot' }),
              route('nocluster', prefix('/gone'), forward('missing')),
              route('exact', { path: { kind: 'exact', value: '/exact', caseSensitive: true }, headers: [], query: [] }, forward('b')),
              route('main', prefix('/'), forward('a')),
            ],
          ),
        ]),
      ],
    );
  }

  before(async () => {
    a = await upstream('A', echo('A'));
    b = await upstream('B', echo('B'));
    c = await upstream('C', echo('C'));
    p = await startProxy(config());
  });
  after(async () => {
    await p.close();
    await Promise.all([a.close(), b.close(), c.close()]);
  });

  test('by host, port-stripped host, wildcard host and path', async () => {
    assert.equal(json((await send(p.port, { host: 'reviews' })).body).tag, 'B');
    assert.equal(json((await send(p.port, { host: 'reviews:9080' })).body).tag, 'B');
    assert.equal(json((await send(p.port, { host: 'x.example.com' })).body).tag, 'C');
    assert.equal(json((await send(p.port, { host: 'other', path: '/exact' })).body).tag, 'B');
    assert.equal(json((await send(p.port, { host: 'other', path: '/exactly' })).body).tag, 'A');
  });

  test('by header', async () => {
    assert.equal(json((await send(p.port, { host: 'reviews', headers: { 'end-user': 'jason' } })).body).tag, 'C');
    assert.equal(json((await send(p.port, { host: 'reviews', headers: { 'end-user': 'bob' } })).body).tag, 'B');
  });

  test('proxy headers: x-forwarded-proto, x-request-id (kept or made), attempt count; hop-by-hop dropped both ways', async () => {
    const r = await send(p.port, {
      headers: { connection: 'keep-alive, x-private', 'x-private': 'p', 'keep-alive': 'timeout=5', te: 'gzip' },
    });
    const seen = json(r.body).headers;
    assert.equal(seen['x-forwarded-proto'], 'http');
    assert.match(seen['x-request-id'] ?? '', /^[0-9a-f-]{36}$/);
    assert.equal(seen['x-envoy-attempt-count'], '1');
    assert.equal(seen['x-private'], undefined);
    assert.equal(seen['keep-alive'], undefined);
    assert.equal(seen.te, undefined);
    assert.equal(r.headers['x-hop'], undefined, 'a response field nominated by Connection is dropped');
    const kept = json((await send(p.port, { headers: { 'x-request-id': 'abc' } })).body).headers;
    assert.equal(kept['x-request-id'], 'abc');
    const st = p.stats.at(-1);
    assert.equal(st?.requestId, 'abc');
    assert.equal(st?.routeName, 'main');
    assert.equal(st?.cluster, 'a');
    assert.equal(st?.status, 200);
    assert.equal(st?.upstreamHost, `127.0.0.1:${a.port}`);
  });

  test('prefix rewrite + host rewrite; regex rewrite keeps the query', async () => {
    const r = json((await send(p.port, { path: '/old/x?y=1' })).body);
    assert.equal(r.url, '/new/x?y=1');
    assert.equal(r.headers.host, 'rewritten.host');
    assert.equal(json((await send(p.port, { path: '/re/42?z' })).body).url, '/id/42?z');
  });

  test('header operations: cluster and route request ops, response ops', async () => {
    const r = await send(p.port, { path: '/ops', headers: { 'x-secret': 's', 'x-added': 'old' } });
    const seen = json(r.body).headers;
    assert.equal(seen['x-added'], 'yes');
    assert.equal(seen['x-secret'], undefined);
    assert.equal(seen['x-cluster'], 'A');
    assert.equal(r.headers['x-resp'], 'r1');
    assert.equal(r.headers['x-upstream'], undefined);
  });

  test('redirects and direct responses', async () => {
    const r = await send(p.port, { host: 'h:8080', path: '/redir/a?q=1' });
    assert.equal(r.status, 301);
    assert.equal(r.headers.location, 'https://new.example/moved/a?q=1');
    const r2 = await send(p.port, { host: 'h:8080', path: '/r2/x?q=2' });
    assert.equal(r2.status, 302);
    assert.equal(r2.headers.location, 'http://h:8443/p?q=2');
    const tls = await send(p.port, { host: 'secure', path: '/x?y' });
    assert.equal(tls.status, 301);
    assert.equal(tls.headers.location, 'https://secure/x?y');
    const d = await send(p.port, { path: '/direct' });
    assert.equal(d.status, 418);
    assert.equal(d.body, 'teapot');
  });

  test('no route: 404 NR; unknown cluster: 503 NC; HEAD gets no body', async () => {
    p.setConfig(
      proxyConfig(
        [cluster('a', [a.port])],
        [
          table('r', [
            vhost('only', ['only'], [route('x', prefix('/x'), forward('a')), route('gone', prefix('/gone'), forward('missing'))]),
          ]),
        ],
      ),
    );
    try {
      const r = await send(p.port, { host: 'only', path: '/y' });
      assert.equal(r.status, 404);
      assert.equal(p.stats.at(-1)?.responseFlags, 'NR');
      assert.equal((await send(p.port, { host: 'nohost' })).status, 404);
      const g = await send(p.port, { host: 'only', path: '/gone' });
      assert.equal(g.status, 503);
      assert.equal(p.stats.at(-1)?.responseFlags, 'NC');
      const h = await rawExchange(p.port, 'HEAD /x HTTP/1.1\r\nHost: only\r\nConnection: close\r\n\r\n');
      assert.match(h, /^HTTP\/1\.1 200 OK\r\n/);
      assert.match(h, /content-length: \d+\r\n/);
      assert.ok(h.endsWith('\r\n\r\n'), 'HEAD response has no body');
    } finally {
      p.setConfig(config());
    }
  });

  test('keep-alive: one upstream connection serves sequential requests from several clients', async () => {
    const before = a.connections;
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      for (let i = 0; i < 20; i++) assert.equal(json((await send(p.port, { path: `/k${i}`, agent })).body).tag, 'A');
      for (let i = 0; i < 10; i++) assert.equal(json((await send(p.port, { path: `/n${i}` })).body).tag, 'A');
    } finally {
      agent.destroy();
    }
    assert.ok(a.connections - before <= 1, `upstream connections opened: ${a.connections - before}`);
  });

  test('pipelined requests are answered in order', async () => {
    const reqs = ['/p1', '/ops', '/direct', '/p2'].map((u) => `GET ${u} HTTP/1.1\r\nHost: any\r\n\r\n`).join('');
    const out = await rawExchange(p.port, `${reqs}GET /last HTTP/1.1\r\nHost: any\r\nConnection: close\r\n\r\n`);
    const order = [...out.matchAll(/"url":"([^"]+)"|teapot/g)].map((m) => m[1] ?? 'teapot');
    assert.deepEqual(order, ['/p1', '/ops', 'teapot', '/p2', '/last']);
  });

  test('weighted split 90/10 within tolerance', async () => {
    p.setConfig(
      proxyConfig(
        [cluster('a', [a.port]), cluster('b', [b.port])],
        [
          table('r', [
            vhost(
              'any',
              ['*'],
              [
                route(
                  'w',
                  prefix('/'),
                  forward([
                    { name: 'a', weight: 90 },
                    { name: 'b', weight: 10 },
                  ]),
                ),
              ],
            ),
          ]),
        ],
      ),
    );
    const agent = new Agent({ keepAlive: true, maxSockets: 20 });
    try {
      const counts: Record<string, number> = { A: 0, B: 0 };
      const n = 2000;
      let next = 0;
      await Promise.all(
        Array.from({ length: 20 }, async () => {
          while (next < n) {
            next++;
            const tag = json((await send(p.port, { agent })).body).tag;
            counts[tag] = (counts[tag] ?? 0) + 1;
          }
        }),
      );
      const fracB = (counts.B ?? 0) / n;
      // Binomial sd for p=0.1, n=2000 is 0.0067: 0.1 ± 0.035 is > 5 sd.
      assert.ok(fracB > 0.065 && fracB < 0.135, `B got ${fracB}`);
    } finally {
      agent.destroy();
      p.setConfig(config());
    }
  });

  test('chunked request bodies are re-framed for the upstream', async () => {
    const out = await rawExchange(
      p.port,
      'POST /ops HTTP/1.1\r\nHost: any\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n',
    );
    const body = out.slice(out.indexOf('\r\n\r\n') + 4);
    const jsonText = body.includes('{') ? body.slice(body.indexOf('{'), body.lastIndexOf('}') + 1) : body;
    const seen = json(jsonText);
    assert.equal(seen.body, 'abcde');
    assert.equal(seen.headers['transfer-encoding'], 'chunked');
  });

  test('response header ops do not break unrelated routes; config swaps apply to open connections', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      assert.equal(json((await send(p.port, { agent, path: '/x' })).body).tag, 'A');
      p.setConfig(
        proxyConfig(
          [cluster('a', [b.port])],
          [table('r', [vhost('any', ['*'], [route('m', prefix('/'), forward('a'), { responseHeaders: NO_OPS })])])],
        ),
      );
      assert.equal(json((await send(p.port, { agent, path: '/x' })).body).tag, 'B');
    } finally {
      agent.destroy();
      p.setConfig(config());
    }
  });
});
