import assert from 'node:assert/strict';
import { connect as netConnect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { type OrigDstAddr, socketAddr, toOrigDst } from '../../../../src/lib/addr.js';
import type { DownstreamTls } from '../../../../src/proxy/proxy-config.js';
import { FileSecretStore } from '../../../../src/proxy/secret/file-store.js';
import {
  type Answer,
  ask,
  chain,
  closeServer,
  cluster,
  connectTo,
  deadPort,
  echoServer,
  eventually,
  httpAction,
  listener,
  makePki,
  makeStack,
  proxyConfig,
  readAll,
  roundTrip,
  type Stack,
  spiffe,
  type TestPki,
  tcpAction,
} from '../l4-fixture.js';

/** What SO_ORIGINAL_DST would report for a redirected connection. */
const origDst = (address: string, port: number): OrigDstAddr => toOrigDst(socketAddr(address, port));

describe('ListenerManager', { timeout: 30_000 }, () => {
  let pki: TestPki;
  let otherPki: TestPki;
  let secrets: FileSecretStore;
  let echoA: Awaited<ReturnType<typeof echoServer>>;
  let echoB: Awaited<ReturnType<typeof echoServer>>;
  const stacks: Stack[] = [];
  const newStack = async (extra: Parameters<typeof makeStack>[1] = {}) => {
    const s = await makeStack(secrets, extra);
    stacks.push(s);
    return s;
  };
  const serverTls = (extra: Partial<DownstreamTls> = {}): DownstreamTls => ({
    certSecret: 'default',
    requireClientCert: false,
    alpn: ['h2', 'http/1.1'],
    ...extra,
  });

  before(async () => {
    pki = await makePki();
    otherPki = await makePki();
    secrets = new FileSecretStore({
      certificates: { default: pki.issue(spiffe('productpage'), { dnsNames: ['a.example.com'] }) },
      trustedCas: { ROOTCA: pki.caPem },
    });
    echoA = await echoServer('A');
    echoB = await echoServer('B');
  });
  after(async () => {
    for (const s of stacks) s.close();
    await closeServer(echoA.server);
    await closeServer(echoB.server);
    await pki.cleanup();
    await otherPki.cleanup();
  });

  test('config swaps keep open connections on their config; new ones take the new one', async () => {
    const st = await newStack();
    const v1 = proxyConfig('v1', [listener('main', 1, [chain('to-a', tcpAction('up'))])], [cluster('up', [echoA.port])]);
    await st.lm.apply(v1);
    const port = st.port('main');
    const long = await connectTo(port);
    assert.equal(await roundTrip(long, 'hi', 3), 'Ahi');

    const v2 = proxyConfig('v2', [listener('main', 1, [chain('to-b', tcpAction('up2'))])], [cluster('up2', [echoB.port])]);
    await st.lm.apply(v2);
    assert.equal(st.port('main'), port, 'same listener, same socket');
    assert.equal(await roundTrip(long, 'still'), 'still', 'old connection keeps working on v1');
    const fresh = await connectTo(port);
    assert.equal(await roundTrip(fresh, 'new', 4), 'Bnew');
    fresh.destroy();

    // Removing the listener stops accepting, the open connection lives on.
    await st.lm.apply(proxyConfig('v3', [], [cluster('up2', [echoB.port])]));
    assert.deepEqual(st.lm.listening(), []);
    await assert.rejects(connectTo(port), { code: 'ECONNREFUSED' });
    assert.equal(await roundTrip(long, 'alive'), 'alive');
    long.end();
    await readAll(long);
    await eventually(() => st.closed.some((s) => s.chain === 'to-a'), 2000, 'stats of the v1 connection');
    const stats = st.closed.find((s) => s.chain === 'to-a');
    assert.equal(stats?.bytesReceived, 'hi'.length + 'still'.length + 'alive'.length);
    assert.equal(stats?.bytesSent, 1 + 'hi'.length + 'still'.length + 'alive'.length);
  });

  test('HTTP chains get a context with the config they were accepted under', async () => {
    const st = await newStack();
    await st.lm.apply(proxyConfig('h1', [listener('web', 1, [chain('web', httpAction())])], []));
    const answer = await ask(st.port('web'));
    assert.deepEqual(answer, { chain: 'web', peer: null, tls: false });
    const ctx = st.http.seen[0];
    assert.equal(ctx?.config.version, 'h1');
    assert.equal(ctx?.listener.name, 'web');
    assert.equal(ctx?.remote.address, '127.0.0.1');
    assert.equal(ctx?.originalDst?.port, st.port('web'), 'not redirected: the listener itself');
  });

  test('a listener whose address changes is rebound', async () => {
    const st = await newStack({ bindHost: undefined });
    const at = (address: string) =>
      proxyConfig(address, [listener('moving', 1, [chain('c', tcpAction('up'))], { address })], [cluster('up', [echoA.port])]);
    await st.lm.apply(at('127.0.0.1'));
    const p1 = st.port('moving');
    await st.lm.apply(at('127.0.0.2'));
    const p2 = st.port('moving');
    await assert.rejects(connectTo(p1), { code: 'ECONNREFUSED' });
    const c = await new Promise<import('node:net').Socket>((resolve, reject) => {
      const s = netConnect({ port: p2, host: '127.0.0.2' }, () => resolve(s));
      s.once('error', reject);
    });
    assert.equal(await roundTrip(c, 'x', 2), 'Ax');
    c.destroy();
  });

  test('a listener that cannot bind is named in the error; the others are applied', async () => {
    const taken = await deadPort();
    const st = await newStack({ portMap: () => taken });
    const cfg = proxyConfig(
      'dup',
      [listener('one', 1, [chain('c', tcpAction('up'))]), listener('two', 2, [chain('c', tcpAction('up'))])],
      [cluster('up', [echoA.port])],
    );
    await assert.rejects(st.lm.apply(cfg), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'VMESH_ERR_UNAVAILABLE');
      assert.match(e.message, /(one|two) on 127\.0\.0\.1:\d+: EADDRINUSE/);
      return true;
    });
    assert.equal(st.lm.listening().length, 1);
  });

  test('filter chains are chosen by destination port, SNI, transport protocol and ALPN', async () => {
    let dst: OrigDstAddr | undefined;
    const st = await newStack({ originalDst: () => dst });
    const tls = serverTls();
    const chains = [
      chain('port-9999', httpAction(), { destinationPort: 9999 }),
      chain('sni-exact', httpAction(), { serverNames: ['a.example.com'], transportProtocol: 'tls' }, { tls }),
      chain('sni-wildcard', httpAction(), { serverNames: ['*.example.com'], transportProtocol: 'tls' }, { tls }),
      chain('alpn-istio', httpAction(), { transportProtocol: 'tls', applicationProtocols: ['istio-peer-exchange', 'istio'] }, { tls }),
      chain('tls-any', httpAction(), { transportProtocol: 'tls' }, { tls }),
      chain('plaintext', httpAction(), { transportProtocol: 'raw_buffer' }),
    ];
    await st.lm.apply(proxyConfig('fc', [listener('virtualInbound', 15006, chains, { inspectTls: true })], []));
    const port = st.port('virtualInbound');
    const ca = pki.caPem;
    const chainOf = async (a: Promise<Answer | undefined>) => (await a)?.chain;

    assert.equal(await chainOf(ask(port, { tls: { ca, servername: 'a.example.com' } })), 'sni-exact');
    assert.equal(await chainOf(ask(port, { tls: { ca, servername: 'b.c.example.com' } })), 'sni-wildcard');
    const istio = await ask(port, { tls: { ca, servername: 'other.org', alpn: ['istio-peer-exchange', 'istio', 'http/1.1'] } });
    assert.equal(istio?.chain, 'alpn-istio');
    assert.equal(istio?.alpn, 'http/1.1', 'the server selects a protocol both sides have');
    const onlyIstio = await ask(port, { tls: { ca, alpn: ['istio'] } });
    assert.equal(onlyIstio?.chain, 'alpn-istio');
    assert.equal(onlyIstio?.alpn, false, 'no common protocol: no ALPN, but no handshake failure either');
    assert.equal(await chainOf(ask(port, { tls: { ca, alpn: ['h2'] } })), 'tls-any');
    assert.equal(await chainOf(ask(port)), 'plaintext');
    dst = origDst('198.18.0.2', 9999);
    assert.equal(await chainOf(ask(port)), 'port-9999');
    const ctx = st.http.seen.at(-1);
    assert.deepEqual(ctx?.originalDst, dst);
  });

  test('STRICT (TLS-only chain) closes a plaintext client; mTLS exposes the client SPIFFE id', async () => {
    const st = await newStack();
    const tls = serverTls({ caSecret: 'ROOTCA', requireClientCert: true });
    const strict = [chain('inbound|9080|mtls', httpAction(), { transportProtocol: 'tls' }, { tls })];
    await st.lm.apply(proxyConfig('strict', [listener('strict', 15006, strict, { inspectTls: true })], []));
    const port = st.port('strict');
    const t0 = Date.now();
    assert.equal(await ask(port), undefined, 'plaintext refused');
    assert.ok(Date.now() - t0 < 1000);
    const sleep = pki.issue(spiffe('sleep', 'foo'));
    const answer = await ask(port, { tls: { ca: pki.caPem, cert: sleep, alpn: ['istio', 'http/1.1'] } });
    assert.deepEqual(answer, { chain: 'inbound|9080|mtls', peer: 'spiffe://cluster.local/ns/foo/sa/sleep', tls: true, alpn: 'http/1.1' });
    assert.equal(st.http.seen.at(-1)?.peerIdentity, 'spiffe://cluster.local/ns/foo/sa/sleep');

    const before = st.http.seen.length;
    assert.equal(await ask(port, { tls: { ca: pki.caPem, cert: otherPki.issue(spiffe('sleep', 'foo')) } }), undefined, 'foreign CA');
    assert.equal(await ask(port, { tls: { ca: pki.caPem } }), undefined, 'no client certificate');
    assert.equal(st.http.seen.length, before, 'refused clients never reach the HTTP layer');
  });

  test('optional client certificates: verified ones give an identity, foreign ones none', async () => {
    const st = await newStack();
    const tls = serverTls({ caSecret: 'ROOTCA', requireClientCert: false });
    await st.lm.apply(proxyConfig('opt', [listener('gw', 443, [chain('gw', httpAction(), {}, { tls })], { inspectTls: true })], []));
    const port = st.port('gw');
    assert.equal((await ask(port, { tls: { ca: pki.caPem, cert: pki.issue(spiffe('a')) } }))?.peer, spiffe('a'));
    assert.equal((await ask(port, { tls: { ca: pki.caPem, cert: otherPki.issue(spiffe('b')) } }))?.peer, null);
    assert.equal((await ask(port, { tls: { ca: pki.caPem } }))?.peer, null);
  });

  test('15001: hands off to the virtual listener of the original destination, else its own chains', async () => {
    let dst: OrigDstAddr | undefined;
    const st = await newStack({ originalDst: () => dst });
    const outbound = listener('virtualOutbound', 15001, [], {
      useOriginalDst: true,
      defaultChain: chain('PassthroughCluster', tcpAction('PassthroughCluster')),
    });
    const vip = listener('240.240.0.7_9080', 9080, [chain('reviews', tcpAction('outbound|9080||reviews'))], {
      address: '240.240.0.7',
      bindToPort: false,
    });
    const wildcard = listener('0.0.0.0_9080', 9080, [chain('any-9080', tcpAction('outbound|9080||ratings'))], { bindToPort: false });
    const cfg = proxyConfig(
      'od',
      [outbound, vip, wildcard],
      [
        cluster('PassthroughCluster', [], { discovery: 'ORIGINAL_DST' }),
        cluster('outbound|9080||reviews', [echoA.port]),
        cluster('outbound|9080||ratings', [echoB.port]),
      ],
      [vip, wildcard],
    );
    await st.lm.apply(cfg);
    assert.deepEqual(
      st.lm.listening().map((l) => l.name),
      ['virtualOutbound'],
      'virtual listeners are not bound',
    );
    const port = st.port('virtualOutbound');
    const tagOf = async () => {
      const c = await connectTo(port);
      c.end('.');
      return (await readAll(c)).toString();
    };
    dst = origDst('240.240.0.7', 9080);
    assert.equal(await tagOf(), 'A.');
    dst = origDst('240.240.0.9', 9080);
    assert.equal(await tagOf(), 'B.', 'no exact listener: the port wildcard one');
    dst = origDst('127.0.0.1', echoA.port);
    assert.equal(await tagOf(), 'A.', 'unknown destination: passthrough to it');
    // Not redirected (originalDst not ok): addressed to 15001 itself, so passthrough would loop; the loop guard refuses.
    dst = undefined;
    assert.equal(await tagOf(), '');
    await eventually(() => st.closed.some((s) => s.chain === 'PassthroughCluster' && s.flags === 'UF'), 2000, 'UF stats');
    assert.match(st.closed.find((s) => s.flags === 'UF')?.detail ?? '', /own listener.*loop/);
  });

  test('without an injected reader the native SO_ORIGINAL_DST is asked; a plain loopback connection is not redirected', async () => {
    const st = await newStack();
    const outbound = listener('virtualOutbound', 15001, [], { useOriginalDst: true, defaultChain: chain('default', tcpAction('up')) });
    await st.lm.apply(proxyConfig('native', [outbound], [cluster('up', [echoA.port])]));
    const c = await connectTo(st.port('virtualOutbound'));
    c.end('n');
    assert.equal((await readAll(c)).toString(), 'An');
  });

  test('BlackHoleCluster refuses at once', async () => {
    const st = await newStack();
    const cfg = proxyConfig(
      'bh',
      [listener('out', 15001, [], { defaultChain: chain('BlackHoleCluster', tcpAction('BlackHoleCluster')) })],
      [cluster('BlackHoleCluster', [], { blackhole: true })],
    );
    await st.lm.apply(cfg);
    const t0 = Date.now();
    const c = await connectTo(st.port('out'));
    c.write('anyone?');
    assert.equal((await readAll(c, 2000)).length, 0);
    assert.ok(Date.now() - t0 < 200, `took ${Date.now() - t0} ms`);
    await eventually(() => st.closed.length > 0, 2000, 'stats');
    assert.equal(st.closed[0]?.flags, 'UH');
    assert.match(st.closed[0]?.detail ?? '', /black hole/);
  });

  test('drain stops accepting and waits for TCP connections, bounded by its deadline', async () => {
    const st = await newStack();
    await st.lm.apply(proxyConfig('d', [listener('main', 1, [chain('c', tcpAction('up'))])], [cluster('up', [echoA.port])]));
    const port = st.port('main');
    const c = await connectTo(port);
    assert.equal(await roundTrip(c, 'x', 2), 'Ax');
    const t0 = Date.now();
    const draining = st.lm.drain(300);
    await new Promise((r) => setTimeout(r, 20));
    await assert.rejects(connectTo(port), { code: 'ECONNREFUSED' });
    assert.equal(await roundTrip(c, 'y'), 'y', 'open connections keep working while draining');
    await draining;
    assert.ok(Date.now() - t0 >= 250, 'waited for the open connection until the deadline');
    await assert.rejects(st.lm.apply(proxyConfig('late', [], [])), { code: 'VMESH_ERR_UNAVAILABLE' });
    c.destroy();
  });
});
