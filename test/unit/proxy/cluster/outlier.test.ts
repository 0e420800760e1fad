import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { ProxyClusterManager } from '../../../../src/proxy/cluster/cluster-manager.js';
import type { OutlierDetection } from '../../../../src/proxy/proxy-config.js';
import { FileSecretStore } from '../../../../src/proxy/secret/file-store.js';
import { closeServer, cluster, deadPort, endpoint, listen, logger, proxyConfig } from '../l4-fixture.js';

/** An upstream answering every request with `status` (HTTP/1.1, one request per connection). */
async function statusServer(status: number): Promise<{ server: Server; port: number }> {
  const server = createServer((s) => {
    s.on('error', () => {});
    s.once('data', () => s.end(`HTTP/1.1 ${status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`));
  });
  return { server, port: await listen(server) };
}

/** What the HTTP layer does per request: pick, connect, exchange, report the outcome. */
async function request(cm: ProxyClusterManager, name: string): Promise<{ host: string; status: number }> {
  const host = cm.pick(name, {});
  assert.ok(host, 'a host to pick');
  const r = await cm.connect(name, host);
  if (!r.ok) return { host: host.key, status: 0 };
  const head = await new Promise<string>((resolve) => {
    let text = '';
    r.socket.on('data', (d: Buffer) => {
      text += d.toString();
    });
    r.socket.on('end', () => r.socket.end());
    r.socket.on('close', () => resolve(text));
    r.socket.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  });
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0);
  cm.report(name, host, { kind: 'response', status });
  return { host: host.key, status };
}

describe('outlier detection', { timeout: 20_000 }, () => {
  const secrets = new FileSecretStore();
  let good: Awaited<ReturnType<typeof statusServer>>;
  let bad: Awaited<ReturnType<typeof statusServer>>;
  const managers: ProxyClusterManager[] = [];
  const make = (outlier: OutlierDetection, ports: number[]) => {
    const cm = new ProxyClusterManager({ secrets, logger });
    cm.update(proxyConfig('v1', [], [cluster('svc', ports, { outlier })]));
    managers.push(cm);
    return cm;
  };

  before(async () => {
    good = await statusServer(200);
    bad = await statusServer(503);
  });
  after(async () => {
    for (const m of managers) m.close();
    await closeServer(good.server);
    await closeServer(bad.server);
  });

  test('a host answering 503s is ejected, traffic moves to the other, and it returns after the ejection time', async () => {
    const outlier = { consecutive5xx: 5, consecutiveGatewayErrors: 3, intervalMs: 100, baseEjectionMs: 300, maxEjectionPercent: 50 };
    const cm = make(outlier, [bad.port, good.port]);
    const badKey = `127.0.0.1:${bad.port}`;
    const goodKey = `127.0.0.1:${good.port}`;
    let badSeen = 0;
    for (let i = 0; i < 40 && badSeen < 3; i++) if ((await request(cm, 'svc')).host === badKey) badSeen++;
    assert.equal(badSeen, 3);
    const ejectedAt = Date.now();
    assert.equal(cm.hosts('svc').find((h) => h.key === badKey)?.ejected, true);
    for (let i = 0; i < 10; i++) assert.deepEqual(await request(cm, 'svc'), { host: goodKey, status: 200 });

    await new Promise((r) => setTimeout(r, Math.max(0, 350 - (Date.now() - ejectedAt))));
    assert.equal(cm.hosts('svc').find((h) => h.key === badKey)?.ejected, false, 'back after base_ejection_time');
    let back = false;
    for (let i = 0; i < 20 && !back; i++) back = (await request(cm, 'svc')).host === badKey;
    assert.ok(back, 'the host takes traffic again');

    // Ejected again: twice as long this time.
    for (let i = 0; i < 60 && !cm.hosts('svc').find((h) => h.key === badKey)?.ejected; i++) await request(cm, 'svc');
    const again = cm.hosts('svc').find((h) => h.key === badKey);
    assert.equal(again?.ejected, true);
    assert.equal(again?.timesEjected, 2);
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(cm.hosts('svc').find((h) => h.key === badKey)?.ejected, true, 'second ejection lasts 2 × base');
  });

  test('connect failures count as gateway errors', async () => {
    const dead = await deadPort();
    const cm = make({ consecutive5xx: 0, consecutiveGatewayErrors: 2, intervalMs: 100, baseEjectionMs: 10_000, maxEjectionPercent: 100 }, [
      dead,
    ]);
    const host = cm.pick('svc', {});
    assert.ok(host);
    assert.equal((await cm.connect('svc', host)).ok, false);
    assert.equal(cm.hosts('svc')[0]?.ejected, false);
    assert.equal((await cm.connect('svc', host)).ok, false);
    assert.equal(cm.hosts('svc')[0]?.ejected, true);
    assert.equal(cm.pick('svc', {}), undefined, 'nothing left to pick');
  });

  test('consecutive means in a row; 500 is a 5xx but not a gateway error', () => {
    const cm = make(
      { consecutive5xx: 3, consecutiveGatewayErrors: 2, intervalMs: 100, baseEjectionMs: 10_000, maxEjectionPercent: 100 },
      [1, 2],
    );
    const h = { key: '127.0.0.1:1', endpoint: endpoint(1) };
    const say = (status: number) => cm.report('svc', h, { kind: 'response', status });
    say(503);
    say(200);
    say(503);
    assert.equal(cm.hosts('svc')[0]?.ejected, false, 'a success in between resets the count');
    say(500);
    assert.equal(cm.hosts('svc')[0]?.ejected, false, '500 breaks the gateway-error run');
    say(500);
    assert.equal(cm.hosts('svc')[0]?.ejected, true, 'three 5xx in a row');
  });

  test('max_ejection_percent caps ejections, but one host may always go', () => {
    const cm = make(
      { consecutive5xx: 1, consecutiveGatewayErrors: 0, intervalMs: 100, baseEjectionMs: 10_000, maxEjectionPercent: 10 },
      [1, 2, 3],
    );
    for (const port of [1, 2, 3])
      cm.report('svc', { key: `127.0.0.1:${port}`, endpoint: endpoint(port) }, { kind: 'error', error: 'reset' });
    assert.deepEqual(
      cm.hosts('svc').map((h) => h.ejected),
      [true, false, false],
    );
  });
});
