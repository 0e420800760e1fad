import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { socketAddr, toOrigDst } from '../../../../src/lib/addr.js';
import { ProxyClusterManager } from '../../../../src/proxy/cluster/cluster-manager.js';
import type { ClusterConfig, UpstreamTls } from '../../../../src/proxy/proxy-config.js';
import type { ConnectResult } from '../../../../src/proxy/runtime-types.js';
import { FileSecretStore } from '../../../../src/proxy/secret/file-store.js';
import {
  closeServer,
  cluster,
  deadPort,
  echoServer,
  endpoint,
  eventually,
  listen,
  logger,
  makePki,
  proxyConfig,
  roundTrip,
  spiffe,
  type TestPki,
  tlsEchoServer,
} from '../l4-fixture.js';

function mustConnect(r: ConnectResult): Socket {
  if (!r.ok) assert.fail(`connect failed: ${r.reason}: ${r.detail}`);
  return r.socket;
}

describe('ProxyClusterManager', { timeout: 20_000 }, () => {
  let pki: TestPki;
  let otherPki: TestPki;
  let secrets: FileSecretStore;
  let echo: Awaited<ReturnType<typeof echoServer>>;
  let reviews: Awaited<ReturnType<typeof tlsEchoServer>>;
  let rogue: Awaited<ReturnType<typeof tlsEchoServer>>;
  let external: Awaited<ReturnType<typeof tlsEchoServer>>;
  let tmp: string;
  const managers: ProxyClusterManager[] = [];
  const servers: Server[] = [];

  const make = (clusters: ClusterConfig[], ownPorts?: number[]) => {
    const cm = new ProxyClusterManager({ secrets, logger, ...(ownPorts ? { ownPorts: () => ownPorts } : {}) });
    cm.update(proxyConfig('v1', [], clusters));
    managers.push(cm);
    return cm;
  };
  const meshTls = (peerSans: string[]): UpstreamTls => ({
    sni: 'outbound_.9080_._.reviews.default.mesh',
    certSecret: 'default',
    caSecret: 'ROOTCA',
    peerSans,
    alpn: ['istio-peer-exchange', 'istio'],
  });

  before(async () => {
    pki = await makePki();
    otherPki = await makePki();
    secrets = new FileSecretStore({ certificates: { default: pki.issue(spiffe('productpage')) }, trustedCas: { ROOTCA: pki.caPem } });
    echo = await echoServer();
    reviews = await tlsEchoServer(pki.issue(spiffe('reviews')), { ca: pki.caPem, alpn: ['h2', 'istio'] });
    rogue = await tlsEchoServer(otherPki.issue(spiffe('reviews')), { ca: pki.caPem });
    external = await tlsEchoServer(pki.issue('spiffe://x/ext', { dnsNames: ['api.example.com'] }));
    tmp = await mkdtemp(join(tmpdir(), 'vmesh-cm-'));
    await writeFile(join(tmp, 'ca.pem'), pki.caPem);
  });
  after(async () => {
    for (const m of managers) m.close();
    for (const s of [echo.server, reviews.server, rogue.server, external.server, ...servers]) await closeServer(s as Server);
    await pki.cleanup();
    await otherPki.cleanup();
    await rm(tmp, { recursive: true, force: true });
  });

  test('plaintext connect from the cluster bind address', async () => {
    let seenFrom = '';
    const srv = createServer((s) => {
      seenFrom = s.remoteAddress ?? '';
      s.end();
    });
    servers.push(srv);
    const port = await listen(srv);
    const cm = make([cluster('inbound|9080||', [port], { bindAddress: '127.0.0.6' })]);
    const host = cm.pick('inbound|9080||', {});
    assert.ok(host);
    assert.equal(host.key, `127.0.0.1:${port}`);
    const s = mustConnect(await cm.connect('inbound|9080||', host));
    // Upstream sockets are half-open capable: the caller ends its side when the peer's ends.
    s.on('end', () => s.end());
    s.resume();
    await new Promise((r) => s.once('close', r));
    assert.equal(seenFrom, '127.0.0.6');
  });

  test('mesh mTLS: client certificate presented, peer SPIFFE id verified, ALPN reported', async () => {
    const c = cluster('outbound|9080||reviews', [reviews.port], { meshTls: meshTls([spiffe('reviews')]) });
    const cm = make([{ ...c, endpoints: [endpoint(reviews.port, { mtls: true })] }]);
    const host = cm.pick(c.name, {});
    assert.ok(host);
    const r = await cm.connect(c.name, host, { alpn: ['h2'] });
    const s = mustConnect(r);
    assert.ok(r.ok);
    assert.equal(r.peerIdentity, spiffe('reviews'));
    assert.equal(r.alpn, 'h2');
    assert.equal(await roundTrip(s, 'ping'), 'ping');
    assert.equal(reviews.peers.at(-1), spiffe('productpage'));
    s.destroy();
  });

  test('mesh mTLS refuses a server whose SAN is not in peerSans', async () => {
    const c = cluster('outbound|9080||ratings', [], {
      meshTls: meshTls([spiffe('ratings')]),
      endpoints: [endpoint(reviews.port, { mtls: true })],
    });
    const cm = make([c]);
    const host = cm.pick(c.name, {});
    assert.ok(host);
    const r = await cm.connect(c.name, host);
    assert.equal(r.ok, false);
    assert.ok(!r.ok && r.reason === 'tls_error');
    assert.match(!r.ok ? r.detail : '', /sa\/reviews.*none of the expected.*sa\/ratings/);
  });

  test('mesh mTLS refuses a server certificate from another CA', async () => {
    const c = cluster('outbound|9080||rogue', [], { meshTls: meshTls([]), endpoints: [endpoint(rogue.port, { mtls: true })] });
    const cm = make([c]);
    const r = await cm.connect(c.name, cm.pick(c.name, {}) ?? assert.fail('no host'));
    assert.ok(!r.ok && r.reason === 'tls_error', JSON.stringify(r));
  });

  test('endpoints without an agent are reached in plaintext even when the cluster has mesh TLS', async () => {
    const c = cluster('outbound|7000||plain', [echo.port], { meshTls: meshTls([]) });
    const cm = make([c]);
    const s = mustConnect(await cm.connect(c.name, cm.pick(c.name, {}) ?? assert.fail('no host')));
    assert.equal(await roundTrip(s, 'plain'), 'plain');
    s.destroy();
  });

  test('DestinationRule TLS to an external host: CA file, SNI host name checked', async () => {
    const tls = { sni: 'api.example.com', caFile: join(tmp, 'ca.pem'), peerSans: [], alpn: [] };
    const cm = make([
      cluster('outbound|443||api.example.com', [external.port], { tls }),
      cluster('wrong-name', [external.port], { tls: { ...tls, sni: 'evil.example.org' } }),
    ]);
    const s = mustConnect(await cm.connect('outbound|443||api.example.com', cm.pick('outbound|443||api.example.com', {}) ?? assert.fail()));
    assert.equal(await roundTrip(s, 'tls'), 'tls');
    s.destroy();
    const bad = await cm.connect('wrong-name', cm.pick('wrong-name', {}) ?? assert.fail());
    assert.ok(!bad.ok && bad.reason === 'tls_error');
    assert.match(!bad.ok ? bad.detail : '', /evil\.example\.org/);
  });

  test('a TLS handshake the server never answers ends at the connect timeout', async () => {
    const silent = createServer((s) => s.resume());
    servers.push(silent);
    const port = await listen(silent);
    const cm = make([cluster('silent', [port], { connectTimeoutMs: 150, tls: { peerSans: [], alpn: [], caSecret: 'ROOTCA' } })]);
    const t0 = Date.now();
    const r = await cm.connect('silent', cm.pick('silent', {}) ?? assert.fail());
    assert.ok(!r.ok && r.reason === 'tls_error');
    assert.ok(Date.now() - t0 < 1000);
    silent.close();
  });

  test('connect failure, blackhole, original destination and DNS clusters', async () => {
    const dead = await deadPort();
    const cm = make([
      cluster('dead', [dead]),
      cluster('BlackHoleCluster', [], { blackhole: true }),
      cluster('PassthroughCluster', [], { discovery: 'ORIGINAL_DST' }),
      cluster('outbound|80||localhost', [], { discovery: 'DNS', dnsHost: { host: 'localhost', port: echo.port } }),
    ]);
    const r = await cm.connect('dead', cm.pick('dead', {}) ?? assert.fail());
    assert.ok(!r.ok && r.reason === 'connect_failure');
    assert.match(!r.ok ? r.detail : '', /ECONNREFUSED/);

    const t0 = Date.now();
    const bh = await cm.connect('BlackHoleCluster', cm.pick('BlackHoleCluster', {}) ?? assert.fail('blackhole has a stand-in host'));
    assert.ok(!bh.ok && bh.reason === 'blackhole');
    assert.ok(Date.now() - t0 < 50);

    assert.equal(cm.pick('PassthroughCluster', {}), undefined, 'no original destination: nothing to pick');
    const od = cm.pick('PassthroughCluster', { originalDst: toOrigDst(socketAddr('127.0.0.1', echo.port)) });
    assert.equal(od?.key, `127.0.0.1:${echo.port}`);
    const s = mustConnect(await cm.connect('PassthroughCluster', od ?? assert.fail()));
    assert.equal(await roundTrip(s, 'od'), 'od');
    s.destroy();

    const dnsHost = cm.pick('outbound|80||localhost', {});
    assert.equal(dnsHost?.key, `localhost:${echo.port}`);
    const d = mustConnect(await cm.connect('outbound|80||localhost', dnsHost ?? assert.fail()));
    assert.equal(await roundTrip(d, 'dns'), 'dns');
    d.destroy();
    assert.equal(await cm.connect('unknown', od).then((x) => x.ok), false);
  });

  test('loop guard: the proxy never connects to its own listener ports on this host', async () => {
    const cm = make([cluster('PassthroughCluster', [], { discovery: 'ORIGINAL_DST' })], [echo.port]);
    const host = cm.pick('PassthroughCluster', { originalDst: toOrigDst(socketAddr('127.0.0.1', echo.port)) });
    const r = await cm.connect('PassthroughCluster', host ?? assert.fail());
    assert.ok(!r.ok && r.reason === 'connect_failure');
    assert.match(!r.ok ? r.detail : '', /own listener.*loop/);
  });

  test('circuit breaker: connections over max_connections overflow until one closes', async () => {
    const c = cluster('cb', [echo.port], { circuitBreaker: { maxConnections: 2, maxPendingRequests: 1, maxRequests: 5, maxRetries: 0 } });
    const cm = make([c]);
    const host = cm.pick('cb', {}) ?? assert.fail();
    const a = mustConnect(await cm.connect('cb', host));
    const b = mustConnect(await cm.connect('cb', host));
    const over = await cm.connect('cb', host);
    assert.ok(!over.ok && over.reason === 'overflow');
    assert.match(!over.ok ? over.detail : '', /max_connections \(2\)/);
    assert.equal(cm.budgetInUse('cb', 'connection'), 2);
    a.destroy();
    await eventually(() => cm.budgetInUse('cb', 'connection') === 1, 2000, 'release on close');
    const again = mustConnect(await cm.connect('cb', host));
    again.destroy();
    b.destroy();
    const p = cm.acquire('cb', 'pending');
    assert.ok(p);
    assert.equal(cm.acquire('cb', 'pending'), undefined);
    p();
    p();
    assert.equal(cm.budgetInUse('cb', 'pending'), 0, 'release is idempotent');
    assert.equal(cm.acquire('cb', 'retry'), undefined, 'max_retries 0');
  });

  test('active TCP health check marks a dead host unavailable; picks avoid it', async () => {
    const dead = await deadPort();
    const hc = { intervalMs: 50, timeoutMs: 200, healthyThreshold: 1, unhealthyThreshold: 2 };
    const c = cluster('hc', [dead, echo.port], { healthCheck: hc });
    const cm = make([c]);
    await eventually(() => cm.hosts('hc').every((h) => h.health !== 'unknown'), 2000, 'first checks');
    const byKey = new Map(cm.hosts('hc').map((h) => [h.key, h]));
    assert.equal(byKey.get(`127.0.0.1:${dead}`)?.health, 'unhealthy');
    assert.equal(byKey.get(`127.0.0.1:${dead}`)?.available, false);
    assert.equal(byKey.get(`127.0.0.1:${echo.port}`)?.health, 'healthy');
    for (let i = 0; i < 10; i++) assert.equal(cm.pick('hc', {})?.key, `127.0.0.1:${echo.port}`);
    // Health checks stop with the cluster.
    cm.update(proxyConfig('v2', [], []));
    assert.deepEqual(cm.hosts('hc'), []);
  });

  test('HTTP health check: the status decides, and the host recovers after healthy_threshold passes', async () => {
    let status = 503;
    const http = createServer((s) => {
      s.on('error', () => {});
      s.once('data', () => s.end(`HTTP/1.1 ${status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`));
    });
    servers.push(http);
    const port = await listen(http);
    const hc = {
      intervalMs: 40,
      timeoutMs: 300,
      healthyThreshold: 2,
      unhealthyThreshold: 1,
      http: { path: '/healthz', expectedStatuses: [200] },
    };
    const cm = make([cluster('hhc', [port], { healthCheck: hc })]);
    await eventually(() => cm.hosts('hhc')[0]?.health === 'unhealthy', 2000, 'unhealthy on 503');
    assert.equal(cm.pick('hhc', {}), undefined);
    status = 200;
    await eventually(() => cm.hosts('hhc')[0]?.health === 'healthy', 2000, 'healthy on 200');
    assert.ok(cm.pick('hhc', {}));
  });

  test('host state survives config updates; EDS health and the exclude set are honoured', async () => {
    const outlier = { consecutive5xx: 1, consecutiveGatewayErrors: 0, intervalMs: 1000, baseEjectionMs: 10_000, maxEjectionPercent: 100 };
    const c1 = cluster('keep', [1001, 1002, 1003], { outlier });
    const cm = make([c1]);
    const h1 = cm.hosts('keep')[0];
    assert.ok(h1);
    cm.report('keep', { key: h1.key, endpoint: endpoint(1001) }, { kind: 'response', status: 500 });
    assert.equal(cm.hosts('keep')[0]?.ejected, true);
    const c2: ClusterConfig = { ...c1, endpoints: [endpoint(1001, { weight: 5 }), endpoint(1002, { healthy: false }), endpoint(1003)] };
    cm.update(proxyConfig('v2', [], [c2]));
    assert.equal(cm.hosts('keep')[0]?.ejected, true, 'ejection kept across the update');
    assert.equal(cm.hosts('keep')[1]?.available, false, 'EDS unhealthy');
    for (let i = 0; i < 5; i++) assert.equal(cm.pick('keep', {})?.key, '127.0.0.1:1003');
    assert.equal(cm.pick('keep', { exclude: new Set(['127.0.0.1:1003']) })?.key, '127.0.0.1:1003', 'all tried: pick anyway');
  });
});
