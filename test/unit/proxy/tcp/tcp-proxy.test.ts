import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { parseCidrText } from '../../../../src/proxy/match/cidr.js';
import type { CidrMatcher, RbacConfig } from '../../../../src/proxy/proxy-config.js';
import { FileSecretStore } from '../../../../src/proxy/secret/file-store.js';
import {
  chain,
  closeServer,
  cluster,
  connectTo,
  echoServer,
  endpoint,
  eventually,
  listen,
  listener,
  makePki,
  makeStack,
  proxyConfig,
  randomBytes,
  readAll,
  roundTrip,
  type Stack,
  sha256,
  spiffe,
  type TestPki,
  tcpAction,
  tlsEchoServer,
} from '../l4-fixture.js';

const MB = 1024 * 1024;

/** Writes `data` in 64 KiB chunks, honouring backpressure; resolves with the bytes handed over so far on the way. */
function writeAll(socket: Socket, data: Buffer, progress: { sent: number }): Promise<void> {
  return new Promise((resolve, reject) => {
    let off = 0;
    const step = () => {
      while (off < data.length) {
        const chunk = data.subarray(off, off + 64 * 1024);
        off += chunk.length;
        progress.sent = off;
        if (!socket.write(chunk)) return void socket.once('drain', step);
      }
      socket.end();
      resolve();
    };
    socket.once('error', reject);
    step();
  });
}

const net = (text: string): CidrMatcher => parseCidrText(text) as CidrMatcher;

describe('tcp_proxy', { timeout: 90_000 }, () => {
  const secrets = new FileSecretStore();
  let stack: Stack;
  let echo: Awaited<ReturnType<typeof echoServer>>;
  const servers: Server[] = [];

  before(async () => {
    stack = await makeStack(secrets);
    echo = await echoServer();
  });
  after(async () => {
    stack.close();
    for (const s of [echo.server, ...servers]) await closeServer(s);
  });

  async function serve(name: string, upstreamPort: number, extra: Parameters<typeof tcpAction>[1] = {}) {
    await stack.lm.apply(proxyConfig(name, [listener(name, 1, [chain(name, tcpAction('up', extra))])], [cluster('up', [upstreamPort])]));
    return stack.port(name);
  }

  test('50 MB each way arrive intact (sha256), and a slow reader pushes back on the upstream', async () => {
    const toUpstream = randomBytes(50 * MB);
    const toClient = randomBytes(50 * MB);
    const upstreamSent = { sent: 0 };
    let upstreamGot = '';
    let upstreamEnded: () => void = () => {};
    const upstreamDone = new Promise<void>((resolve) => {
      upstreamEnded = resolve;
    });
    const srv = createServer({ allowHalfOpen: true }, (s) => {
      const h = createHash('sha256');
      s.on('data', (d: Buffer) => h.update(d));
      s.on('end', () => {
        upstreamGot = h.digest('hex');
        upstreamEnded();
      });
      void writeAll(s, toClient, upstreamSent);
    });
    servers.push(srv);
    const client = await connectTo(await serve('bulk', await listen(srv)));
    client.pause();
    const clientSent = { sent: 0 };
    const sending = writeAll(client, toUpstream, clientSent);
    await new Promise((r) => setTimeout(r, 400));
    // Nobody reads on the client: the proxy must stop reading upstream once the socket buffers are full.
    assert.ok(upstreamSent.sent < 30 * MB, `upstream pushed ${upstreamSent.sent} bytes into a stalled path`);
    const h = createHash('sha256');
    const received = new Promise<void>((resolve) => {
      client.on('data', (d: Buffer) => h.update(d));
      client.on('end', resolve);
    });
    client.resume();
    await Promise.all([sending, received, upstreamDone]);
    assert.equal(h.digest('hex'), sha256(toClient));
    assert.equal(upstreamGot, sha256(toUpstream));
    await new Promise((r) => client.once('close', r));
    await eventually(() => stack.closed.some((s) => s.chain === 'bulk'), 2000, 'stats');
    const stats = stack.closed.find((s) => s.chain === 'bulk');
    assert.equal(stats?.bytesReceived, 50 * MB);
    assert.equal(stats?.bytesSent, 50 * MB);
    assert.equal(stats?.flags, '-');
    assert.equal(stats?.cluster, 'up');
  });

  test('half-close passes through both ways', async () => {
    // The upstream says its piece and closes its side first, then still reads what the client sends.
    let upstreamGot = '';
    const srv = createServer({ allowHalfOpen: true }, (s) => {
      s.end('bye');
      s.on('data', (d: Buffer) => {
        upstreamGot += d.toString();
      });
    });
    servers.push(srv);
    const port = await serve('half', await listen(srv));
    const client = await connectTo(port);
    const got = await new Promise<string>((resolve) => {
      let text = '';
      client.on('data', (d: Buffer) => {
        text += d.toString();
      });
      client.on('end', () => resolve(text));
    });
    assert.equal(got, 'bye');
    client.end('still here');
    await new Promise((r) => client.once('close', r));
    await eventually(() => upstreamGot === 'still here', 2000, 'upstream reads after its own FIN');

    // Client closes its side first; the echo upstream answers and closes.
    const c2 = await connectTo(await serve('half2', echo.port));
    c2.end('abc');
    assert.equal((await readAll(c2)).toString(), 'abc');
  });

  test('resets propagate: upstream RST resets the client, client RST resets the upstream', async () => {
    let upstreamError = '';
    let accepted = 0;
    const srv = createServer((s) => {
      accepted++;
      s.on('error', (e: NodeJS.ErrnoException) => {
        upstreamError = e.code ?? e.message;
      });
      s.on('data', (d: Buffer) => {
        if (d.toString() === 'reset please') s.resetAndDestroy();
      });
    });
    servers.push(srv);
    const port = await serve('rst', await listen(srv));
    const a = await connectTo(port);
    const aErr = new Promise<string>((resolve) => a.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? '')));
    a.write('reset please');
    assert.equal(await aErr, 'ECONNRESET');

    const b = await connectTo(port);
    b.write('hello');
    await eventually(() => accepted === 2, 2000, 'upstream connection');
    await new Promise((r) => setTimeout(r, 20));
    b.resetAndDestroy();
    await eventually(() => upstreamError === 'ECONNRESET', 2000, 'upstream sees the reset');
  });

  test('idle timeout closes a quiet connection', async () => {
    const port = await serve('idle', echo.port, { idleTimeoutMs: 150 });
    const c = await connectTo(port);
    assert.equal(await roundTrip(c, 'x'), 'x');
    const t0 = Date.now();
    await readAll(c, 3000);
    const waited = Date.now() - t0;
    assert.ok(waited >= 100 && waited < 2000, `closed after ${waited} ms`);
    await eventually(() => stack.closed.some((s) => s.chain === 'idle'), 2000, 'stats');
    assert.equal(stack.closed.find((s) => s.chain === 'idle')?.detail, 'idle_timeout');
  });

  test('weighted clusters split connections within tolerance', async () => {
    const tagServer = async (tag: string) => {
      const srv = createServer((s) => s.end(tag));
      servers.push(srv);
      return listen(srv);
    };
    const [pa, pb] = await Promise.all([tagServer('A'), tagServer('B')]);
    const action = tcpAction([
      { name: 'a', weight: 80 },
      { name: 'b', weight: 20 },
    ]);
    await stack.lm.apply(
      proxyConfig('w', [listener('weighted', 1, [chain('weighted', action)])], [cluster('a', [pa]), cluster('b', [pb])]),
    );
    const port = stack.port('weighted');
    const counts = { A: 0, B: 0 };
    const total = 300;
    for (let i = 0; i < total; i += 30) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(30, total - i) }, async () => {
          const c = await connectTo(port);
          c.end();
          return (await readAll(c)).toString();
        }),
      );
      for (const tag of batch) counts[tag as 'A' | 'B']++;
    }
    assert.equal(counts.A + counts.B, total);
    const share = counts.A / total;
    assert.ok(share > 0.7 && share < 0.9, `A got ${counts.A}/${total}`);
  });

  test('network RBAC denies by source and closes at once; allowed traffic flows', async () => {
    const deny: RbacConfig = {
      action: 'DENY',
      policies: [
        {
          name: 'ns[default]-policy[deny-local]-rule[0]',
          permissions: [{ kind: 'any' }],
          principals: [{ kind: 'direct_remote_ip', cidr: net('127.0.0.1/32') }],
        },
      ],
    };
    const port = await serve('rbac', echo.port, { rbac: [deny] });
    const c = await connectTo(port);
    c.write('let me in');
    assert.equal((await readAll(c, 2000)).length, 0);
    await eventually(() => stack.closed.some((s) => s.chain === 'rbac'), 2000, 'stats');
    const stats = stack.closed.find((s) => s.chain === 'rbac');
    assert.equal(stats?.detail, 'rbac_access_denied_matched_policy[ns[default]-policy[deny-local]-rule[0]]');
    assert.equal(stats?.cluster, undefined);

    const other = {
      ...deny,
      policies: [
        {
          ...deny.policies[0],
          principals: [{ kind: 'direct_remote_ip', cidr: net('10.0.0.0/8') }],
        },
      ],
    };
    const open = await serve('rbac-open', echo.port, { rbac: [other as RbacConfig] });
    const d = await connectTo(open);
    assert.equal(await roundTrip(d, 'welcome'), 'welcome');
    d.destroy();
  });
});

describe('tcp_proxy between two proxies (mesh mTLS, PERMISSIVE inbound)', { timeout: 30_000 }, () => {
  let pki: TestPki;
  let client: Stack;
  let server: Stack;
  let echo: Awaited<ReturnType<typeof echoServer>>;
  let plainApp: Awaited<ReturnType<typeof echoServer>>;
  let tlsApp: Awaited<ReturnType<typeof tlsEchoServer>>;
  let inboundPort: number;

  before(async () => {
    pki = await makePki();
    echo = await echoServer();
    plainApp = await echoServer('P');
    tlsApp = await tlsEchoServer(pki.issue(spiffe('app'), { dnsNames: ['app.example.com'] }));
    const serverSecrets = new FileSecretStore({
      certificates: { default: pki.issue(spiffe('reviews')) },
      trustedCas: { ROOTCA: pki.caPem },
    });
    const clientSecrets = new FileSecretStore({
      certificates: { default: pki.issue(spiffe('productpage')), sleep: pki.issue(spiffe('sleep')) },
      trustedCas: { ROOTCA: pki.caPem },
    });
    server = await makeStack(serverSecrets);
    client = await makeStack(clientSecrets);
    const allowProductpage: RbacConfig = {
      action: 'ALLOW',
      policies: [
        {
          name: 'ns[default]-policy[reviews]-rule[0]',
          permissions: [{ kind: 'any' }],
          principals: [{ kind: 'authenticated', match: { kind: 'exact', value: spiffe('productpage'), ignoreCase: false } }],
        },
      ],
    };
    const mtls = { certSecret: 'default', caSecret: 'ROOTCA', requireClientCert: true, alpn: ['h2', 'http/1.1'] };
    const inbound = listener(
      'virtualInbound',
      15006,
      [
        chain(
          'inbound|9080|mtls',
          tcpAction('inbound|9080||', { rbac: [allowProductpage] }),
          { transportProtocol: 'tls', applicationProtocols: ['istio-peer-exchange', 'istio'] },
          { tls: mtls },
        ),
        chain('inbound|9080|plaintext', tcpAction('plain-app'), { transportProtocol: 'raw_buffer' }),
        chain('inbound|9080|tls-passthrough', tcpAction('tls-app'), { transportProtocol: 'tls' }),
      ],
      { inspectTls: true },
    );
    await server.lm.apply(
      proxyConfig(
        's1',
        [inbound],
        [
          cluster('inbound|9080||', [echo.port], { bindAddress: '127.0.0.6' }),
          cluster('plain-app', [plainApp.port]),
          cluster('tls-app', [tlsApp.port]),
        ],
      ),
    );
    inboundPort = server.port('virtualInbound');
    const meshTls = (certSecret: string) => ({
      sni: 'outbound_.9080_._.reviews.default.mesh',
      certSecret,
      caSecret: 'ROOTCA',
      peerSans: [spiffe('reviews')],
      alpn: ['istio-peer-exchange', 'istio'],
    });
    const reviews = (name: string, certSecret: string) =>
      cluster(name, [], { meshTls: meshTls(certSecret), endpoints: [endpoint(inboundPort, { mtls: true })] });
    await client.lm.apply(
      proxyConfig(
        'c1',
        [
          listener('reviews', 9080, [chain('to-reviews', tcpAction('outbound|9080||reviews'))]),
          listener('as-sleep', 9081, [chain('as-sleep', tcpAction('sleep'))]),
        ],
        [reviews('outbound|9080||reviews', 'default'), reviews('sleep', 'sleep')],
      ),
    );
  });
  after(async () => {
    client.close();
    server.close();
    for (const s of [echo.server, plainApp.server, tlsApp.server]) await closeServer(s as Server);
    await pki.cleanup();
  });

  test('bytes cross both proxies intact; each side learns the other identity', async () => {
    const data = randomBytes(5 * MB);
    const c = await connectTo(client.port('reviews'));
    const got = readAll(c, 10_000);
    await writeAll(c, data, { sent: 0 });
    assert.equal(sha256(await got), sha256(data));
    await eventually(() => client.closed.length > 0 && server.closed.length > 0, 3000, 'stats on both sides');
    const out = client.closed.find((s) => s.chain === 'to-reviews');
    const inb = server.closed.find((s) => s.chain === 'inbound|9080|mtls');
    assert.equal(out?.upstreamPeerIdentity, spiffe('reviews'));
    assert.equal(inb?.peerIdentity, spiffe('productpage'));
    assert.equal(inb?.bytesReceived, 5 * MB);
    assert.equal(out?.bytesSent, 5 * MB);
  });

  test('the inbound RBAC refuses another mesh identity', async () => {
    const c = await connectTo(client.port('as-sleep'));
    c.write('hello');
    assert.equal((await readAll(c, 3000)).length, 0);
    await eventually(() => server.closed.some((s) => s.detail?.startsWith('rbac_access_denied') ?? false), 3000, 'deny stats');
    assert.equal(server.closed.find((s) => s.detail?.startsWith('rbac') ?? false)?.peerIdentity, spiffe('sleep'));
  });

  test('PERMISSIVE: plaintext and the app own TLS (passed through untouched) reach the app', async () => {
    const p = await connectTo(inboundPort);
    p.end('plain');
    assert.equal((await readAll(p)).toString(), 'Pplain');
    const { connect: tlsConnect } = await import('node:tls');
    const t = tlsConnect({ port: inboundPort, host: '127.0.0.1', ca: pki.caPem, servername: 'app.example.com', ALPNProtocols: ['h2'] });
    await new Promise((resolve, reject) => {
      t.once('secureConnect', resolve);
      t.once('error', reject);
    });
    assert.equal(t.getPeerCertificate().subjectaltname?.includes(spiffe('app')), true, 'the app presented its own certificate');
    assert.equal(await roundTrip(t, 'end-to-end TLS'), 'end-to-end TLS');
    t.destroy();
  });
});
