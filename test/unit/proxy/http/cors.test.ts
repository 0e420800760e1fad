import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import type { CorsPolicy, Route } from '../../../../src/proxy/proxy-config.js';
import { compiledFor, fixtureWith } from '../translated.js';
import {
  cluster,
  forward,
  httpAction,
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

const run = promisify(execFile);

// Istio's corsPolicy, through the real translation and the proxy's compiler, then served by the proxy.
const VS = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - corsPolicy:
      allowOrigins:
      - exact: https://shop.example.com
      - prefix: https://dev.
      - regex: "https://[a-z]+\\\\.partner\\\\.example"
      allowMethods: [GET, POST]
      allowHeaders: [x-token, content-type]
      exposeHeaders: [x-upstream]
      maxAge: 24h
      allowCredentials: true
    route:
    - destination: {host: reviews}
`;

/** The CORS policy the proxy compiles from the translation of VS for node h1, and whether the HCM runs the filter. */
function compiledPolicy(): { policy: CorsPolicy; filterOn: boolean } {
  const c = compiledFor(fixtureWith(VS));
  const routes: Route[] = [...c.routes.values()].flatMap((t) => t.virtualHosts.flatMap((v) => v.routes));
  const policy = routes.find((r) => r.cors)?.cors;
  assert.ok(policy, 'no compiled route carries the CORS policy');
  const filterOn = [...c.listeners.values()]
    .flatMap((l) => [...l.filterChains, ...(l.defaultChain ? [l.defaultChain] : [])])
    .some((ch) => ch.action.kind === 'http' && ch.action.filters.cors === true);
  return { policy, filterOn };
}

describe('CORS (Envoy CORS filter semantics)', () => {
  let u: Upstream;
  let p: ProxyHarness;
  let policy: CorsPolicy;

  before(async () => {
    const compiled = compiledPolicy();
    assert.equal(compiled.filterOn, true, 'the outbound HTTP filter chain runs the CORS filter');
    policy = compiled.policy;
    u = await upstream('u');
    p = await startProxy(
      proxyConfig(
        [cluster('u', [u.port])],
        [
          table('r', [
            vhost(
              'shop',
              ['shop'],
              [
                route('ignore', prefix('/ignore'), forward('u'), { cors: { ...policy, forwardNotMatchingPreflights: false } }),
                route('cors', prefix('/'), forward('u'), { cors: policy }),
              ],
            ),
          ]),
        ],
      ),
      httpAction('r', { ...noFilters, cors: true }),
    );
  });
  after(async () => {
    await p?.close();
    await u?.close();
  });

  test('the translation carries Istio corsPolicy as Envoy CorsPolicy', () => {
    assert.equal(policy.origins.length, 3);
    assert.equal(policy.allowMethods, 'GET,POST');
    assert.equal(policy.allowHeaders, 'x-token,content-type');
    assert.equal(policy.exposeHeaders, 'x-upstream');
    assert.equal(policy.maxAge, '86400');
    assert.equal(policy.allowCredentials, true);
    assert.equal(policy.forwardNotMatchingPreflights, true);
  });

  test('a preflight from an allowed origin is answered by the proxy (curl), never reaching the upstream', async () => {
    const before = u.requests.length;
    const { stdout } = await run(
      'curl',
      [
        '-s',
        '-i',
        '-X',
        'OPTIONS',
        '-H',
        'Host: shop',
        '-H',
        'Origin: https://shop.example.com',
        '-H',
        'Access-Control-Request-Method: POST',
        `http://127.0.0.1:${p.port}/cart`,
      ],
      { timeout: 10_000 },
    ).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') assert.fail('curl is not installed: this test needs it');
      throw e;
    });
    assert.match(stdout, /^HTTP\/1\.1 200 /);
    const head = stdout.toLowerCase();
    assert.match(head, /\r\naccess-control-allow-origin: https:\/\/shop\.example\.com\r\n/);
    assert.match(head, /\r\naccess-control-allow-methods: get,post\r\n/);
    assert.match(head, /\r\naccess-control-allow-headers: x-token,content-type\r\n/);
    assert.match(head, /\r\naccess-control-max-age: 86400\r\n/);
    assert.match(head, /\r\naccess-control-allow-credentials: true\r\n/);
    assert.equal(u.requests.length, before, 'the upstream saw no preflight');
  });

  test('actual requests from allowed origins (exact, prefix, regex) get the origin echoed, credentials and exposed headers', async () => {
    for (const origin of ['https://shop.example.com', 'https://dev.anything', 'https://acme.partner.example']) {
      const r = await send(p.port, { host: 'shop', path: '/cart', headers: { origin } });
      assert.equal(r.status, 200);
      assert.equal(r.body, 'u GET /cart');
      assert.equal(r.headers['access-control-allow-origin'], origin, origin);
      assert.equal(r.headers['access-control-allow-credentials'], 'true');
      assert.equal(r.headers['access-control-expose-headers'], 'x-upstream');
    }
  });

  test('other origins and requests without Origin pass untouched; their preflights go upstream by default', async () => {
    const cases: Record<string, string>[] = [{ origin: 'https://evil.example' }, {}, { origin: 'https://ACME.partner.example' }];
    for (const headers of cases) {
      const r = await send(p.port, { host: 'shop', path: '/cart', headers });
      assert.equal(r.status, 200);
      assert.equal(r.headers['access-control-allow-origin'], undefined, JSON.stringify(headers));
    }
    const before = u.requests.length;
    const r = await send(p.port, {
      method: 'OPTIONS',
      host: 'shop',
      path: '/cart',
      headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' },
    });
    assert.equal(r.body, 'u OPTIONS /cart');
    assert.equal(r.headers['access-control-allow-origin'], undefined);
    assert.equal(u.requests.length, before + 1);
  });

  test('unmatchedPreflights IGNORE: the proxy answers a foreign preflight itself, without CORS headers', async () => {
    const before = u.requests.length;
    const r = await send(p.port, {
      method: 'OPTIONS',
      host: 'shop',
      path: '/ignore',
      headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' },
    });
    assert.equal(r.status, 200);
    assert.equal(r.headers['access-control-allow-origin'], undefined);
    assert.equal(u.requests.length, before);
  });

  test('without the CORS filter in the chain, a route policy does nothing (as in Envoy)', async () => {
    p.setAction(httpAction('r', noFilters));
    try {
      const r = await send(p.port, { host: 'shop', path: '/cart', headers: { origin: 'https://shop.example.com' } });
      assert.equal(r.headers['access-control-allow-origin'], undefined);
    } finally {
      p.setAction(httpAction('r', { ...noFilters, cors: true }));
    }
  });
});
