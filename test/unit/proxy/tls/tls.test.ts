import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { FileSecretStore } from '../../../../src/proxy/secret/file-store.js';
import { peerSpiffeId, TlsContexts, uriSans } from '../../../../src/proxy/tls/contexts.js';
import { parseClientHello, sniffTransport } from '../../../../src/proxy/tls/sniff.js';
import { closeServer, listen, makePki, spiffe, type TestPki } from '../l4-fixture.js';

/** The first bytes a real Node TLS client sends (its ClientHello). */
async function captureHello(opts: { servername?: string; ALPNProtocols?: string[] }): Promise<Buffer> {
  let resolveHello: (b: Buffer) => void = () => {};
  const got = new Promise<Buffer>((r) => {
    resolveHello = r;
  });
  const server = createServer((s) => {
    s.once('data', (d: Buffer) => {
      resolveHello(d);
      s.destroy();
    });
  });
  const port = await listen(server);
  const c = tlsConnect({ port, host: '127.0.0.1', rejectUnauthorized: false, ...opts });
  c.on('error', () => {});
  const hello = await got;
  c.destroy();
  await closeServer(server);
  return hello;
}

describe('ClientHello parsing', () => {
  test('reads SNI and ALPN from a real ClientHello', async () => {
    const hello = await captureHello({ servername: 'Reviews.Default.Mesh', ALPNProtocols: ['istio-peer-exchange', 'istio', 'h2'] });
    assert.deepEqual(parseClientHello(hello), {
      transport: 'tls',
      sni: 'reviews.default.mesh',
      alpn: ['istio-peer-exchange', 'istio', 'h2'],
    });
  });

  test('a ClientHello without SNI or ALPN is still TLS', async () => {
    const hello = await captureHello({});
    assert.deepEqual(parseClientHello(hello), { transport: 'tls', alpn: [] });
  });

  test('incomplete records ask for more; plaintext is raw_buffer at the first byte', async () => {
    const hello = await captureHello({ servername: 'a.example.com' });
    assert.equal(parseClientHello(hello.subarray(0, 1)).transport, 'incomplete');
    assert.equal(parseClientHello(hello.subarray(0, 40)).transport, 'incomplete');
    assert.equal(parseClientHello(Buffer.from('GET / HTTP/1.1\r\n')).transport, 'raw_buffer');
    assert.equal(parseClientHello(Buffer.from([0x16, 0x01, 0x00])).transport, 'raw_buffer');
  });

  test('a ClientHello split over two TLS records is reassembled', async () => {
    const hello = await captureHello({ servername: 'split.example.com', ALPNProtocols: ['h2'] });
    const body = hello.subarray(5, 5 + hello.readUInt16BE(3));
    const cut = 20;
    const rec = (frag: Buffer) => Buffer.concat([Buffer.from([0x16, 3, 1, frag.length >> 8, frag.length & 0xff]), frag]);
    const twoRecords = Buffer.concat([rec(body.subarray(0, cut)), rec(body.subarray(cut))]);
    assert.deepEqual(parseClientHello(twoRecords), { transport: 'tls', sni: 'split.example.com', alpn: ['h2'] });
    assert.equal(parseClientHello(twoRecords.subarray(0, 30)).transport, 'incomplete');
  });

  test('a ClientHello larger than the bound is TLS without names', async () => {
    const hello = await captureHello({ servername: 'big.example.com' });
    assert.deepEqual(parseClientHello(hello, 64), { transport: 'tls', alpn: [] });
  });
});

describe('sniffTransport on a socket', () => {
  let server: Server;
  let port: number;
  const accepted: Socket[] = [];
  before(async () => {
    server = createServer((s) => {
      accepted.push(s);
    });
    port = await listen(server);
  });
  after(() => closeServer(server));

  async function nextAccepted(n: number): Promise<Socket> {
    const until = Date.now() + 2000;
    while (accepted.length < n && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
    const s = accepted[n - 1];
    assert.ok(s, 'server accepted');
    return s;
  }

  test('bytes peeked are read again by the next consumer', async () => {
    const c = netConnect({ port, host: '127.0.0.1' });
    const s = await nextAccepted(1);
    c.write('hello, ');
    const r = await sniffTransport(s, { firstByteTimeoutMs: 1000 });
    assert.equal(r.transport, 'raw_buffer');
    c.write('world');
    const got = await new Promise<string>((resolve) => {
      let text = '';
      s.on('data', (d: Buffer) => {
        text += d.toString();
        if (text.length >= 12) resolve(text);
      });
      s.resume();
    });
    assert.equal(got, 'hello, world');
    c.destroy();
  });

  test('a server-first protocol (client silent) continues as raw_buffer after the first-byte timeout', async () => {
    const c = netConnect({ port, host: '127.0.0.1' });
    const s = await nextAccepted(2);
    const t0 = Date.now();
    const r = await sniffTransport(s, { firstByteTimeoutMs: 80 });
    assert.equal(r.transport, 'raw_buffer');
    assert.ok(Date.now() - t0 >= 70 && Date.now() - t0 < 1000);
    c.destroy();
  });

  test('a client that closes during inspection is reported closed', async () => {
    const c = netConnect({ port, host: '127.0.0.1' });
    const s = await nextAccepted(3);
    c.end(Buffer.from([0x16, 0x03]));
    const r = await sniffTransport(s, { firstByteTimeoutMs: 1000, helloTimeoutMs: 1000 });
    assert.equal(r.closed, true);
  });
});

describe('secret store and TLS contexts', () => {
  let pki: TestPki;
  let dir: string;
  before(async () => {
    pki = await makePki();
    dir = await mkdtemp(join(tmpdir(), 'vmesh-secrets-'));
  });
  after(async () => {
    await pki.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  test('contexts are cached per secret pair and rebuilt when secrets change', async () => {
    const a = pki.issue(spiffe('a'));
    await writeFile(join(dir, 'cert.pem'), a.certPem);
    await writeFile(join(dir, 'key.pem'), a.keyPem);
    await writeFile(join(dir, 'ca.pem'), pki.caPem);
    const store = await FileSecretStore.fromFiles({
      certificates: { default: { certFile: join(dir, 'cert.pem'), keyFile: join(dir, 'key.pem') } },
      trustedCas: { ROOTCA: join(dir, 'ca.pem') },
    });
    assert.equal(store.tlsCertificate('default')?.certPem, a.certPem);
    const contexts = new TlsContexts(store);
    const cfg = { certSecret: 'default', caSecret: 'ROOTCA', requireClientCert: true, alpn: [] };
    const first = contexts.server(cfg);
    assert.ok(first.ok);
    assert.equal(contexts.server(cfg), first, 'cached');
    let changes = 0;
    store.onChange(() => changes++);
    await store.reload();
    assert.equal(changes, 0, 'unchanged files do not notify');
    const b = pki.issue(spiffe('b'));
    await writeFile(join(dir, 'cert.pem'), b.certPem);
    await writeFile(join(dir, 'key.pem'), b.keyPem);
    await store.reload();
    assert.equal(changes, 1);
    const second = contexts.server(cfg);
    assert.ok(second.ok);
    assert.notEqual(second, first, 'rebuilt after rotation');
    const missing = contexts.server({ ...cfg, certSecret: 'nope' });
    assert.ok(!missing.ok);
    assert.match(missing.error, /"nope"/);
    contexts.close();
  });

  test('peer SPIFFE id comes from the URI SAN', () => {
    const cert = { subjectaltname: 'DNS:x.example.com, URI:spiffe://cluster.local/ns/default/sa/x, URI:https://other' };
    assert.deepEqual(uriSans(cert as never), ['spiffe://cluster.local/ns/default/sa/x', 'https://other']);
    assert.equal(peerSpiffeId(cert as never), 'spiffe://cluster.local/ns/default/sa/x');
    assert.equal(peerSpiffeId(undefined), undefined);
  });
});
