import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { socketAddr, toOrigDst, toRemote } from '../../../../src/lib/addr.js';
import { type LiveConnection, recheckConnections } from '../../../../src/proxy/listener/drain.js';
import { makeCidr } from '../../../../src/proxy/match/cidr.js';
import type { CidrMatcher, DownstreamTls, NetworkAction, RbacConfig } from '../../../../src/proxy/proxy-config.js';
import type { LiveHttpConnection } from '../../../../src/proxy/runtime-types.js';
import { FileSecretStore } from '../../../../src/proxy/secret/file-store.js';
import {
  chain,
  closeServer,
  cluster,
  connectTo,
  echoServer,
  httpAction,
  listener,
  logger,
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

const loopback = makeCidr('127.0.0.1', 32) as CidrMatcher;
const denyLoopback: RbacConfig = {
  action: 'DENY',
  policies: [
    { name: 'ns[default]-policy[deny-local]-rule[0]', permissions: [{ kind: 'any' }], principals: [{ kind: 'source_ip', cidr: loopback }] },
  ],
};
const mtls: DownstreamTls = { certSecret: 'default', caSecret: 'ROOTCA', requireClientCert: true, alpn: ['http/1.1'] };

describe('config swaps drain the connections the new config no longer admits', { timeout: 30_000 }, () => {
  let pki: TestPki;
  let secrets: FileSecretStore;
  let echo: Awaited<ReturnType<typeof echoServer>>;
  const stacks: Stack[] = [];

  before(async () => {
    pki = await makePki();
    secrets = new FileSecretStore({ certificates: { default: pki.issue(spiffe('web')) }, trustedCas: { ROOTCA: pki.caPem } });
    echo = await echoServer('E');
  });
  after(async () => {
    for (const s of stacks) s.close();
    await closeServer(echo.server);
    await pki.cleanup();
  });

  const v = (version: string, inbound: NetworkAction, opts: { strict?: boolean; otherRbac?: RbacConfig[] } = {}) =>
    proxyConfig(
      version,
      [
        listener(
          'inbound',
          1,
          [
            chain('mtls', inbound, { transportProtocol: 'tls' }, { tls: mtls }),
            ...(opts.strict ? [] : [chain('plaintext', inbound, { transportProtocol: 'raw_buffer' })]),
          ],
          { inspectTls: true },
        ),
        listener('other', 2, [chain('other', tcpAction('up', { rbac: opts.otherRbac ?? [] }))]),
      ],
      [cluster('up', [echo.port])],
    );

  test('STRICT closes an open plaintext TCP connection; a connection on another listener is untouched', async () => {
    const st = await makeStack(secrets);
    stacks.push(st);
    await st.lm.apply(v('v1', tcpAction('up')));
    const plain = await connectTo(st.port('inbound'));
    const other = await connectTo(st.port('other'));
    assert.equal(await roundTrip(plain, 'a', 2), 'Ea');
    assert.equal(await roundTrip(other, 'b', 2), 'Eb');
    await st.lm.apply(v('v2', tcpAction('up'), { strict: true }));
    // Closed at once: the client reads its end.
    await readAll(plain, 2000);
    assert.equal(await roundTrip(other, 'still'), 'still');
    other.destroy();
  });

  test('a TCP RBAC that now denies the peer closes its connection; an unchanged policy keeps it', async () => {
    const st = await makeStack(secrets);
    stacks.push(st);
    await st.lm.apply(v('v1', tcpAction('up')));
    const conn = await connectTo(st.port('other'));
    assert.equal(await roundTrip(conn, 'x', 2), 'Ex');
    // A config where only the inbound listener changes: the connection on `other` keeps going.
    await st.lm.apply(v('v2', tcpAction('up'), { strict: true }));
    assert.equal(await roundTrip(conn, 'y'), 'y');
    await st.lm.apply(v('v3', tcpAction('up'), { strict: true, otherRbac: [denyLoopback] }));
    await readAll(conn, 2000);
    await eventuallyClosedStats(st, 'other');
  });

  test('HTTP: a connection still admitted runs later requests under the new action; a refused one is drained', () => {
    const calls: string[] = [];
    const fake = (name: string): LiveHttpConnection => ({
      rebind: (a) => calls.push(`${name} rebind ${a.kind === 'http' ? a.routeConfig : a.kind}`),
      drain: () => calls.push(`${name} drain`),
    });
    const socket = { destroy: () => calls.push('destroyed') } as unknown as Socket;
    const conn = (name: string, tls: boolean): LiveConnection => ({
      listener: 'inbound',
      inputs: { dst: toOrigDst(socketAddr('127.0.0.1', 1)), transport: tls ? 'tls' : 'raw_buffer', alpn: tls ? ['http/1.1'] : [] },
      tls,
      ...(tls ? { peerIdentity: spiffe('client') } : {}),
      remote: toRemote(socketAddr('127.0.0.1', 40000)),
      http: fake(name),
      socket,
      chain: chain(tls ? 'mtls' : 'plaintext', httpAction('r1')),
    });
    const live = [conn('plain', false), conn('mtls', true)];
    assert.equal(recheckConnections(live, v('v2', httpAction('r2')), logger), 0);
    assert.deepEqual(calls, ['plain rebind r2', 'mtls rebind r2']);
    calls.length = 0;
    assert.equal(recheckConnections(live, v('v3', httpAction('r3'), { strict: true }), logger), 1);
    assert.deepEqual(calls, ['plain drain', 'mtls rebind r3']);
    // A TCP chain where HTTP was: drained, whatever the transport.
    calls.length = 0;
    assert.equal(recheckConnections([conn('mtls', true)], v('v4', tcpAction('up')), logger), 1);
    assert.deepEqual(calls, ['mtls drain']);
  });
});

async function eventuallyClosedStats(st: Stack, chainName: string): Promise<void> {
  const end = Date.now() + 2000;
  while (!st.closed.some((s) => s.chain === chainName)) {
    if (Date.now() > end) throw new Error(`no close stats for chain ${chainName}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
