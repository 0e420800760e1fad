import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { TracingConfig } from '../../../../src/proxy/proxy-config.js';
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
} from '../http/http-fixture.js';

// Istio's useRequestIdForTraceSampling (Envoy's UUID request id extension): a request that carries no sampling
// decision is sampled by its x-request-id, so every proxy on its path decides alike; turned off, at random.

const rid = (head: string) => `${head}-1b2c-4d5e-8f90-123456789abc`;
const tracing = (useRequestId: boolean): TracingConfig => ({
  sampling: 0.5,
  useRequestId,
  spanKind: 'CLIENT',
  maxTagLength: 256,
  tags: [],
});

describe('trace sampling by x-request-id through the proxy', () => {
  let u: Upstream;
  const proxies: ProxyHarness[] = [];
  const start = async (useRequestId: boolean) => {
    const p = await startProxy(
      proxyConfig([cluster('u', [u.port])], [table('r', [vhost('any', ['*'], [route('all', prefix('/'), forward('u'))])])]),
      httpAction('r', noFilters, { tracing: tracing(useRequestId) }),
    );
    proxies.push(p);
    return p;
  };
  /** The sampled flag of the traceparent the upstream saw, and the x-request-id it got. */
  const through = async (p: ProxyHarness, headers: Record<string, string>) => {
    const from = u.requests.length;
    const r = await send(p.port, { headers });
    assert.equal(r.status, 200);
    const seen = u.requests[from]?.headers ?? {};
    return { flag: String(seen.traceparent).slice(-2), id: seen['x-request-id'] };
  };

  before(async () => {
    u = await upstream('u');
  });
  after(async () => {
    for (const p of proxies) await p.close();
    await u.close();
  });

  test('the id decides (0x1387 % 10000 = 4999 < 5000 sampled, 5000 not), the same on every try', async () => {
    const p = await start(true);
    for (let i = 0; i < 5; i++) {
      assert.deepEqual(await through(p, { 'x-request-id': rid('00001387') }), { flag: '01', id: rid('00001387') });
      assert.deepEqual(await through(p, { 'x-request-id': rid('00001388') }), { flag: '00', id: rid('00001388') });
    }
    // a caller's decision still wins over the id
    const caller = `00-${'4bf92f3577b34da6a3ce929d0e0e4736'}-${'00f067aa0ba902b7'}-00`;
    assert.equal((await through(p, { 'x-request-id': rid('00001387'), traceparent: caller })).flag, '00');
    // without an id the proxy makes one, and the decision the upstream sees is the one that id gives
    for (let i = 0; i < 20; i++) {
      const { flag, id } = await through(p, {});
      assert.equal(typeof id, 'string');
      assert.equal(flag, Number.parseInt(String(id).slice(0, 8), 16) % 10000 < 5000 ? '01' : '00', String(id));
    }
  });

  test('turned off, one id gets both decisions over many requests', async () => {
    const p = await start(false);
    const flags = new Set<string>();
    for (let i = 0; i < 60 && flags.size < 2; i++) flags.add((await through(p, { 'x-request-id': rid('00001387') })).flag);
    assert.deepEqual([...flags].sort(), ['00', '01']);
  });
});
