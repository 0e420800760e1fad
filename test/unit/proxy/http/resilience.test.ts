import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { after, before, describe, test } from 'node:test';
import type { RbacConfig, RetryPolicy } from '../../../../src/proxy/proxy-config.js';
import {
  Agent,
  cluster,
  forward,
  httpAction,
  noBreaker,
  noFilters,
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

function retry(on: string[], numRetries: number, extra: Partial<RetryPolicy> = {}): RetryPolicy {
  return { on: new Set(on), retriableStatusCodes: [], numRetries, backoffBaseMs: 1, backoffMaxMs: 5, ...extra };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Fails the first `n` requests (per test, reset with `fails = n`) in the given way, then answers 200. */
class Flaky {
  fails = 0;
  seen = 0;
  mode: 'status' | 'reset' | 'slow' | 'conflict' = 'status';
  handle = (_req: IncomingMessage, res: ServerResponse) => {
    this.seen++;
    if (this.fails > 0) {
      this.fails--;
      if (this.mode === 'reset') {
        res.socket?.destroy();
        return;
      }
      if (this.mode === 'slow') {
        setTimeout(() => {
          if (!res.destroyed) res.end('slow');
        }, 600);
        return;
      }
      res.statusCode = this.mode === 'conflict' ? 409 : 503;
      res.end('fail');
      return;
    }
    res.end(`ok after ${this.seen}`);
  };
}

describe('HTTP resilience and policy', () => {
  const flaky = new Flaky();
  let f: Upstream;
  let slow: Upstream;
  let mirror: Upstream;
  let main: Upstream;
  let p: ProxyHarness;

  before(async () => {
    f = await upstream('F', flaky.handle);
    slow = await upstream('S', (_req, res) => setTimeout(() => res.end('late'), 2000));
    main = await upstream('M');
    mirror = await upstream('MIRROR');
    p = await startProxy(
      proxyConfig(
        [cluster('f', [f.port]), cluster('slow', [slow.port]), cluster('main', [main.port]), cluster('mirror', [mirror.port])],
        [
          table('r', [
            vhost(
              'any',
              ['*'],
              [
                route('r5xx', prefix('/5xx'), forward('f', { retry: retry(['5xx'], 3) })),
                route('rreset', prefix('/reset'), forward('f', { retry: retry(['reset'], 2) })),
                route('r409', prefix('/409'), forward('f', { retry: retry(['retriable-4xx'], 1) })),
                route(
                  'rcodes',
                  prefix('/codes'),
                  forward('f', { retry: retry(['retriable-status-codes'], 2, { retriableStatusCodes: [503] }) }),
                ),
                route('none', prefix('/noretry'), forward('f')),
                route('pertry', prefix('/pertry'), forward('f', { retry: retry(['5xx'], 2, { perTryTimeoutMs: 150 }) })),
                route('timeout', prefix('/timeout'), forward('slow', { timeoutMs: 200 })),
                route('mirrored', prefix('/mirror'), forward('main', { mirrors: [{ cluster: 'mirror', fraction: 1 }] })),
                route('main', prefix('/'), forward('main')),
              ],
            ),
          ]),
        ],
      ),
    );
  });
  after(async () => {
    await p.close();
    await Promise.all([f.close(), slow.close(), main.close(), mirror.close()]);
  });

  test('retries recover from an upstream failing fewer times than the attempts', async () => {
    flaky.mode = 'status';
    flaky.fails = 2;
    flaky.seen = 0;
    const r = await send(p.port, { path: '/5xx' });
    assert.equal(r.status, 200);
    assert.equal(flaky.seen, 3);
    assert.equal(f.requests.at(-1)?.headers['x-envoy-attempt-count'], '3');
    assert.equal(p.stats.at(-1)?.attempts, 3);
    assert.equal(p.stats.at(-1)?.responseFlags, '-');
  });

  test('and give up after the attempts, with URX', async () => {
    flaky.fails = 10;
    flaky.seen = 0;
    const r = await send(p.port, { path: '/5xx' });
    assert.equal(r.status, 503);
    assert.equal(flaky.seen, 4);
    assert.equal(p.stats.at(-1)?.responseFlags, 'URX');
    flaky.fails = 0;
  });

  test('no retry policy: the first failure is the answer', async () => {
    flaky.fails = 1;
    flaky.seen = 0;
    assert.equal((await send(p.port, { path: '/noretry' })).status, 503);
    assert.equal(flaky.seen, 1);
  });

  test('retry on reset, retriable-4xx (409) and retriable status codes', async () => {
    flaky.mode = 'reset';
    flaky.fails = 2;
    assert.equal((await send(p.port, { path: '/reset' })).status, 200);
    flaky.fails = 1;
    const r = await send(p.port, { path: '/noretry', method: 'POST', body: 'x' });
    assert.equal(r.status, 503);
    assert.match(r.body, /connection termination/);
    assert.equal(p.stats.at(-1)?.responseFlags, 'UC');
    // An idempotent request that meets a closing reused keep-alive connection is sent once more, policy or not.
    assert.equal((await send(p.port, { path: '/noretry' })).status, 200);
    flaky.fails = 1;
    assert.equal((await send(p.port, { path: '/noretry' })).status, 200);
    flaky.mode = 'conflict';
    flaky.fails = 1;
    assert.equal((await send(p.port, { path: '/409' })).status, 200);
    flaky.mode = 'status';
    flaky.fails = 2;
    assert.equal((await send(p.port, { path: '/codes' })).status, 200);
  });

  test('a POST body is replayed on retry', async () => {
    flaky.mode = 'status';
    flaky.fails = 1;
    const body = 'x'.repeat(10_000);
    assert.equal((await send(p.port, { path: '/5xx', method: 'POST', body })).status, 200);
    const last = f.requests.slice(-2);
    assert.equal(last.length, 2);
    for (const r of last) assert.equal(r.body.toString(), body);
  });

  test('bodies over 64 KiB are not retried', async () => {
    flaky.fails = 1;
    flaky.seen = 0;
    const r = await send(p.port, { path: '/5xx', method: 'POST', body: Buffer.alloc(100_000, 1) });
    assert.equal(r.status, 503);
    assert.equal(flaky.seen, 1);
  });

  test('per-try timeout retries a slow attempt; route timeout answers 504', async () => {
    flaky.mode = 'slow';
    flaky.fails = 1;
    flaky.seen = 0;
    const t0 = Date.now();
    const r = await send(p.port, { path: '/pertry' });
    assert.equal(r.status, 200);
    assert.equal(flaky.seen, 2);
    assert.ok(Date.now() - t0 < 550, 'the slow attempt was abandoned');
    flaky.fails = 5;
    const r2 = await send(p.port, { path: '/pertry' });
    assert.equal(r2.status, 504);
    assert.equal(r2.body, 'upstream request timeout');
    assert.equal(p.stats.at(-1)?.responseFlags, 'URX,UT');
    flaky.fails = 0;
    flaky.mode = 'status';
    const t1 = Date.now();
    const r3 = await send(p.port, { path: '/timeout' });
    assert.equal(r3.status, 504);
    assert.ok(Date.now() - t1 < 1500);
    assert.equal(p.stats.at(-1)?.responseFlags, 'UT');
  });

  test('mirrors: a copy with -shadow host, the body included, the response unaffected', async () => {
    const before = mirror.requests.length;
    const r = await send(p.port, { path: '/mirror/x', host: 'svc:8080', method: 'POST', body: 'mirrored body' });
    assert.equal(r.status, 200);
    assert.match(r.body, /^M POST/);
    for (let i = 0; i < 100 && mirror.requests.length === before; i++) await sleep(10);
    const m = mirror.requests.at(-1);
    assert.equal(m?.headers.host, 'svc-shadow:8080');
    assert.equal(m?.body.toString(), 'mirrored body');
    assert.equal(m?.url, '/mirror/x');
  });

  test('connect failure: retried onto another host (previous hosts), else 503 UF', async () => {
    const dead = await upstream('dead');
    const deadPort = dead.port;
    await dead.close();
    p.setConfig(
      proxyConfig(
        [cluster('two', [deadPort, main.port]), cluster('dead', [deadPort])],
        [
          table('r', [
            vhost(
              'any',
              ['*'],
              [
                route('dead', prefix('/dead'), forward('dead')),
                route('two', prefix('/'), forward('two', { retry: retry(['connect-failure'], 2) })),
              ],
            ),
          ]),
        ],
      ),
    );
    for (let i = 0; i < 6; i++) assert.equal((await send(p.port, { path: `/x${i}` })).status, 200);
    const r = await send(p.port, { path: '/dead' });
    assert.equal(r.status, 503);
    assert.match(r.body, /connection failure/);
    assert.equal(p.stats.at(-1)?.responseFlags, 'UF');
  });

  test('circuit breaker: requests over max_requests get 503 UO with x-envoy-overloaded', async () => {
    p.setConfig(
      proxyConfig(
        [cluster('slow', [slow.port], { circuitBreaker: { ...noBreaker, maxRequests: 2 } })],
        [table('r', [vhost('any', ['*'], [route('s', prefix('/'), forward('slow'))])])],
      ),
    );
    const results = await Promise.all(Array.from({ length: 6 }, () => send(p.port)));
    const ok = results.filter((r) => r.status === 200);
    const over = results.filter((r) => r.status === 503);
    assert.equal(ok.length, 2);
    assert.equal(over.length, 4);
    for (const r of over) assert.equal(r.headers['x-envoy-overloaded'], 'true');
    assert.ok(p.stats.some((s) => s.responseFlags === 'UO'));
  });

  test('max_connections overflow is UO too', async () => {
    p.setConfig(
      proxyConfig(
        [cluster('slow2', [slow.port], { circuitBreaker: { ...noBreaker, maxConnections: 1 } })],
        [table('r', [vhost('any', ['*'], [route('s', prefix('/'), forward('slow2'))])])],
      ),
    );
    const results = await Promise.all(Array.from({ length: 3 }, () => send(p.port)));
    assert.deepEqual(results.map((r) => r.status).sort(), [200, 503, 503]);
  });
});

describe('HTTP filters: RBAC, local rate limit, fault injection', () => {
  let u: Upstream;
  let p: ProxyHarness;
  const deny: RbacConfig = {
    action: 'DENY',
    policies: [
      {
        name: 'no-admin',
        permissions: [{ kind: 'path', match: { kind: 'prefix', value: '/admin', ignoreCase: false } }],
        principals: [{ kind: 'any' }],
      },
    ],
  };

  before(async () => {
    u = await upstream('U');
    const routes = [
      table('r', [
        vhost(
          'any',
          ['*'],
          [
            route('delay', prefix('/delay'), forward('u'), { fault: { delay: { ms: 80, fraction: 0.5 } } }),
            route('abort', prefix('/abort'), forward('u'), { fault: { abort: { httpStatus: 503, fraction: 0.3 } } }),
            route('grpc', prefix('/grpc'), forward('u'), { fault: { abort: { grpcStatus: 14, fraction: 1 } } }),
            route('all', prefix('/'), forward('u')),
          ],
        ),
      ]),
    ];
    // A low-discrepancy sequence instead of Math.random: any run of n draws holds each fraction to within a few
    // draws, so the fraction checks below test the proxy's arithmetic, not luck (Math.random failed CI once).
    let x = 0.5;
    const random = () => {
      x = (x + 0.6180339887498949) % 1;
      return x;
    };
    p = await startProxy(proxyConfig([cluster('u', [u.port])], routes), httpAction('r', { rbac: [deny], fault: true }), { random });
  });
  after(async () => {
    await p.close();
    await u.close();
  });

  test('RBAC deny: 403 RBAC: access denied, never forwarded', async () => {
    const before = u.requests.length;
    const r = await send(p.port, { path: '/admin/x' });
    assert.equal(r.status, 403);
    assert.equal(r.body, 'RBAC: access denied');
    assert.equal(u.requests.length, before);
    assert.equal((await send(p.port, { path: '/public' })).status, 200);
  });

  test('RBAC denies a POST with its body unread and keeps the connection usable', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      assert.equal((await send(p.port, { path: '/admin', method: 'POST', body: 'x'.repeat(1000), agent })).status, 403);
      assert.equal((await send(p.port, { path: '/ok', agent })).status, 200);
    } finally {
      agent.destroy();
    }
  });

  test('fault delay and abort fractions within tolerance', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 50 });
    try {
      const n = 200;
      const from = p.stats.length;
      await Promise.all(Array.from({ length: n }, () => send(p.port, { path: '/delay', agent })));
      const seen = p.stats.slice(from).filter((s) => s.path === '/delay');
      assert.equal(seen.length, n);
      const delayed = seen.filter((s) => s.responseFlags === 'DI');
      assert.ok(Math.abs(delayed.length / n - 0.5) < 0.05, `delayed fraction ${delayed.length / n}`);
      for (const s of delayed) assert.ok(s.durationMs >= 75, `a delayed request took ${s.durationMs} ms`);
      const m = 400;
      const statuses = await Promise.all(Array.from({ length: m }, () => send(p.port, { path: '/abort', agent }).then((r) => r.status)));
      const aborted = statuses.filter((s) => s === 503).length / m;
      assert.ok(Math.abs(aborted - 0.3) < 0.05, `aborted fraction ${aborted}`);
      assert.ok(p.stats.some((s) => s.responseFlags === 'FI'));
      assert.ok(p.stats.some((s) => s.responseFlags === 'DI'));
    } finally {
      agent.destroy();
    }
  });

  test('fault abort with a gRPC status answers gRPC-style', async () => {
    const r = await send(p.port, { path: '/grpc', headers: { 'content-type': 'application/grpc' } });
    assert.equal(r.status, 200);
    assert.equal(r.headers['grpc-status'], '14');
    assert.equal(r.headers['content-type'], 'application/grpc');
  });

  test('fault config is ignored without the fault filter', async () => {
    p.setAction(httpAction('r', noFilters));
    try {
      for (let i = 0; i < 20; i++) assert.equal((await send(p.port, { path: '/grpc' })).status, 200);
    } finally {
      p.setAction(httpAction('r', { rbac: [deny], fault: true }));
    }
  });

  test('local rate limit: 429 with x-envoy-ratelimited once the bucket is empty', async () => {
    p.setAction(
      httpAction('r', { rbac: [], fault: false, rateLimit: { maxTokens: 5, tokensPerFill: 5, fillIntervalMs: 60_000, status: 429 } }),
    );
    try {
      const statuses: number[] = [];
      let limited: Awaited<ReturnType<typeof send>> | undefined;
      for (let i = 0; i < 8; i++) {
        const r = await send(p.port, { path: '/x' });
        statuses.push(r.status);
        if (r.status === 429) limited = r;
      }
      assert.deepEqual(statuses, [200, 200, 200, 200, 200, 429, 429, 429]);
      assert.equal(limited?.headers['x-envoy-ratelimited'], 'true');
      assert.equal(limited?.body, 'local_rate_limited');
      assert.equal(p.stats.at(-1)?.responseFlags, 'RL');
    } finally {
      p.setAction(httpAction('r', { rbac: [deny], fault: true }));
    }
  });
});
