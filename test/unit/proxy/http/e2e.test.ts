import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { socketAddr, toOrigDst } from '../../../../src/lib/addr.js';
import { ProxyClusterManager } from '../../../../src/proxy/cluster/cluster-manager.js';
import { compileProxyConfig } from '../../../../src/proxy/compile/index.js';
import { createHttpHandler, type ProxyHttpHandler, type RequestStats } from '../../../../src/proxy/http/index.js';
import { ListenerManager } from '../../../../src/proxy/listener/listener-manager.js';
import type { ClusterConfig, ProxyConfig } from '../../../../src/proxy/proxy-config.js';
import type { AppliedConfig } from '../../../../src/xds/agent-sync.js';
import { decodeAnyDeep } from '../../../../src/xds/decode-deep.js';
import { makeSnapshot } from '../../../../src/xds/snapshot.js';
import { translateNode } from '../../../../src/xds/translate/index.js';
import { CDS, EDS, LDS, RDS } from '../../../../src/xds/type-urls.js';
import { bookinfoInput } from '../../xds/translate/fixture.js';
import { Agent, logger, noSecrets, send, type Upstream, upstream } from './http-fixture.js';

/**
 * End to end on one host: the controller's translation of the bookinfo mesh for host h1, through encode/decode
 * and compileProxyConfig, served by the real listener manager (15001 original-destination hand-off to the
 * reviews VIP listener) and cluster manager, with this HTTP layer routing per the reviews VirtualService.
 * Only the endpoints are swapped for loopback upstreams (reviews v1 and v2 run on another host in the fixture).
 */

function appliedFor(node: 'h1'): AppliedConfig {
  const snap = makeSnapshot('v1', translateNode(bookinfoInput(node)));
  const resources: Record<string, Record<string, unknown>> = {};
  for (const t of [CDS, EDS, LDS, RDS]) {
    resources[t] = Object.fromEntries([...(snap.resources.get(t) ?? new Map())].map(([name, r]) => [name, decodeAnyDeep(r.any)]));
  }
  return { versions: { [CDS]: 'c1', [EDS]: 'e1', [LDS]: 'l1', [RDS]: 'r1' }, resources, updatedAt: new Date(0).toISOString() };
}

function toLoopback(c: ClusterConfig, port: number): ClusterConfig {
  const { meshTls: _m, tls: _t, ...rest } = c;
  return { ...rest, endpoints: [{ address: '127.0.0.1', port, weight: 1, healthy: true, locality: '', priority: 0, mtls: false }] };
}

describe('HTTP end to end: translated xDS, compiled, served through the listener manager', () => {
  let v1: Upstream;
  let v2: Upstream;
  let cm: ProxyClusterManager;
  let handler: ProxyHttpHandler;
  let lm: ListenerManager;
  let port = 0;
  const stats: RequestStats[] = [];

  before(async () => {
    v1 = await upstream('reviews-v1');
    v2 = await upstream('reviews-v2');
    const compiled = compileProxyConfig(appliedFor('h1'));
    if (!compiled.ok) assert.fail(compiled.error);
    const base = compiled.value;
    const clusters = new Map(base.clusters);
    for (const [name, c] of base.clusters) {
      if (name === 'outbound|9080|v1|reviews.default.mesh') clusters.set(name, toLoopback(c, v1.port));
      if (name === 'outbound|9080|v2|reviews.default.mesh') clusters.set(name, toLoopback(c, v2.port));
    }
    const config: ProxyConfig = { ...base, clusters };
    const vip = bookinfoInput('h1').model.services.get('reviews.default.mesh')?.vip;
    assert.ok(vip);
    cm = new ProxyClusterManager({ secrets: noSecrets, logger, ownPorts: () => [] });
    cm.update(config);
    handler = createHttpHandler({ clusters: cm, config: () => config, logger, onRequestDone: (s) => stats.push(s) });
    lm = new ListenerManager({
      clusters: cm,
      secrets: noSecrets,
      http: handler,
      logger,
      bindHost: '127.0.0.1',
      portMap: () => 0,
      // Every connection "was going to" reviews' virtual IP, as nftables' REDIRECT would report.
      originalDst: () => toOrigDst(socketAddr(vip, 9080)),
    });
    await lm.apply(config);
    port = lm.listening().find((l) => l.name === 'virtualOutbound')?.port ?? 0;
    assert.ok(port > 0);
  });
  after(async () => {
    await lm.drain(1000);
    lm.close();
    handler.close();
    cm.close();
    await v1.close();
    await v2.close();
  });

  test('the jason route goes to v2; the canary split sends ~10% to v2 with x-canary set', async () => {
    const j = await send(port, { host: 'reviews:9080', path: '/reviews/1', headers: { 'end-user': 'jason' } });
    assert.equal(j.status, 200);
    assert.match(j.body, /^reviews-v2 GET \/reviews\/1$/);
    assert.equal(stats.at(-1)?.routeName, 'jason');
    assert.equal(stats.at(-1)?.cluster, 'outbound|9080|v2|reviews.default.mesh');
    const agent = new Agent({ keepAlive: true, maxSockets: 10 });
    try {
      const n = 600;
      const tags = await Promise.all(
        Array.from({ length: n }, () => send(port, { host: 'reviews', path: '/reviews/2', agent }).then((r) => r.body.split(' ')[0])),
      );
      const toV2 = tags.filter((t) => t === 'reviews-v2').length / n;
      assert.ok(toV2 > 0.04 && toV2 < 0.18, `v2 share ${toV2}`);
      assert.ok(v2.requests.filter((r) => r.url === '/reviews/2').every((r) => r.headers['x-canary'] === 'true'));
      assert.ok(v1.requests.every((r) => r.headers['x-canary'] === undefined));
    } finally {
      agent.destroy();
    }
  });

  test('an unknown Host on the reviews listener still reaches reviews: the address chose it (ALLOW_ANY)', async () => {
    const r = await send(port, { host: 'nobody.example', path: '/' });
    assert.equal(r.status, 200);
    assert.match(stats.at(-1)?.cluster ?? '', /\|reviews\.default\.mesh$/);
  });
});
