import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { HttpFilters, NetworkAction, ProxyConfig, RouteRateLimit } from '../../../../src/proxy/proxy-config.js';
import { compiledFor, fixtureWith } from '../translated.js';
import {
  cluster,
  forward,
  httpAction,
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

// Istio's EnvoyFilter samples, unmodified but for the namespace (vmesh's root namespace) and, for the local rate
// limit, the port (bookinfo's productpage listens on 9080 in the fixture): translated, patched, encoded, decoded
// and compiled as the agent applies them, then served by the proxy.

const CORPUS = join(import.meta.dirname, '../../api/istio-corpus/files');
const sample = (file: string) => readFileSync(join(CORPUS, file), 'utf8').replaceAll('namespace: istio-system', 'namespace: vmesh-system');

type HttpAction = Extract<NetworkAction, { kind: 'http' }>;

function inbound(cfg: ProxyConfig): { filters: HttpFilters; rateLimit: RouteRateLimit | undefined } {
  const l = cfg.listeners.get('virtualInbound');
  const a = l?.filterChains.find((c) => c.match.destinationPort === 9080)?.action;
  assert.ok(a && a.kind === 'http', 'an HTTP chain on inbound 9080');
  const rl = cfg.routes.get('inbound|9080||')?.virtualHosts[0]?.routes[0]?.rateLimit;
  return { filters: (a as HttpAction).filters, rateLimit: rl };
}

describe('EnvoyFilter samples served by the proxy', () => {
  let u: Upstream;
  let limited: ProxyHarness;
  let extProc: ProxyHarness;
  let rls: ProxyHarness;

  const serve = (filters: HttpFilters, rateLimit?: RouteRateLimit) =>
    startProxy(
      proxyConfig(
        [cluster('u', [u.port])],
        [table('r', [vhost('pp', ['*'], [route('all', prefix('/'), forward('u'), rateLimit ? { rateLimit } : {})])])],
      ),
      httpAction('r', filters),
    );

  before(async () => {
    u = await upstream('productpage');
    const local = inbound(
      compiledFor(fixtureWith(sample('samples_ratelimit_local-rate-limit-service.yaml').replace('inbound|http|8000', 'inbound|http|9080'))),
    );
    assert.ok(local.filters.routeRateLimits, 'the local_ratelimit filter is in the chain');
    assert.ok(local.rateLimit, 'the route carries the per-route config');
    limited = await serve(local.filters, local.rateLimit);
    extProc = await serve(inbound(compiledFor(fixtureWith(sample('crds_envoyfilter-valid.yaml')))).filters);
    // The global rate limit sample with failure_mode_deny unset: requests pass when the service cannot be reached.
    const open = sample('samples_bookinfo_policy_productpage_envoy_ratelimit.yaml').replace(
      'failure_mode_deny: true',
      'failure_mode_deny: false',
    );
    rls = await serve(
      inbound(
        compiledFor(
          fixtureWith(open.replace('istio: ingressgateway', 'app: productpage').replaceAll('context: GATEWAY', 'context: SIDECAR_INBOUND')),
        ),
      ).filters,
    );
  });
  after(async () => {
    await limited?.close();
    await extProc?.close();
    await rls?.close();
    await u?.close();
  });

  test('local rate limit by path: 10 /productpage per minute pass, the 11th gets 429 with the sample header; other paths pass', async () => {
    const seen = u.requests.length;
    for (let i = 0; i < 10; i++)
      assert.equal((await send(limited.port, { host: 'productpage', path: '/productpage' })).status, 200, `request ${i + 1}`);
    const r = await send(limited.port, { host: 'productpage', path: '/ProductPage?x=1' });
    assert.equal(r.status, 429, 'ignore_case prefix match');
    assert.equal(r.headers['x-local-rate-limit'], 'true');
    assert.equal(r.body, 'local_rate_limited');
    assert.equal(
      (await send(limited.port, { host: 'productpage', path: '/reviews' })).status,
      200,
      'the default bucket (100) still has tokens',
    );
    assert.equal(u.requests.length, seen + 11);
  });

  test('ext_proc with failure_mode_allow false: every request is answered 500 and none reaches the workload', async () => {
    const seen = u.requests.length;
    for (const path of ['/', '/productpage']) assert.equal((await send(extProc.port, { host: 'productpage', path })).status, 500, path);
    assert.equal(u.requests.length, seen);
    assert.equal(extProc.stats.at(-1)?.status, 500);
  });

  test('the global rate limit filter failing open: requests reach the workload', async () => {
    const seen = u.requests.length;
    assert.equal((await send(rls.port, { host: 'productpage', path: '/productpage' })).status, 200);
    assert.equal(u.requests.length, seen + 1);
  });

  test("the sample as written (failure_mode_deny: true) answers 500 with Envoy's RLSE flag", async () => {
    const closed = sample('samples_bookinfo_policy_productpage_envoy_ratelimit.yaml')
      .replace('istio: ingressgateway', 'app: productpage')
      .replaceAll('context: GATEWAY', 'context: SIDECAR_INBOUND');
    const p = await serve(inbound(compiledFor(fixtureWith(closed))).filters);
    try {
      const seen = u.requests.length;
      assert.equal((await send(p.port, { host: 'productpage', path: '/productpage' })).status, 500);
      assert.equal(p.stats.at(-1)?.responseFlags, 'RLSE');
      assert.equal(u.requests.length, seen);
    } finally {
      await p.close();
    }
  });
});
