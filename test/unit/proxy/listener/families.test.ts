import assert from 'node:assert/strict';
import { connect, createServer, type Server } from 'node:net';
import { test } from 'node:test';
import { listenFamilies } from '../../../../src/proxy/listener/families.js';

const make = () => createServer((s) => s.end(`${s.localAddress}\n`));
const closeAll = (servers: readonly Server[]) => Promise.all(servers.map((s) => new Promise((r) => s.close(r))));

function ask(host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = connect({ host, port });
    let out = '';
    c.on('data', (d) => {
      out += d;
    });
    c.on('end', () => resolve(out.trim()));
    c.on('error', reject);
  });
}

test('a wildcard IPv4 listener gets its own IPv6-only twin on the same port: neither sees mapped addresses', async () => {
  const l = await listenFamilies(make, '0.0.0.0', 0, { ipv6: true });
  try {
    assert.equal(l.ipv6, true);
    assert.equal(l.servers.length, 2);
    assert.equal(await ask('127.0.0.1', l.port), '127.0.0.1');
    assert.equal(await ask('::1', l.port), '::1');
  } finally {
    await closeAll(l.servers);
  }
});

test('a specific address, or ipv6 off, binds one socket', async () => {
  for (const [host, ipv6] of [
    ['127.0.0.1', true],
    ['0.0.0.0', false],
  ] as const) {
    const l = await listenFamilies(make, host, 0, { ipv6 });
    assert.equal(l.ipv6, false);
    assert.equal(l.servers.length, 1);
    await closeAll(l.servers);
  }
});

test('when [::] cannot be bound the listener serves IPv4 and says it has no IPv6', async () => {
  const squatter = createServer();
  await new Promise<void>((r) => squatter.listen({ host: '::', port: 0, ipv6Only: true }, r));
  const port = (squatter.address() as { port: number }).port;
  const errors: string[] = [];
  const l = await listenFamilies(make, '0.0.0.0', port, { ipv6: true, onIpv6Error: (e) => errors.push(e.code ?? '') });
  try {
    assert.equal(l.ipv6, false);
    assert.deepEqual(errors, ['EADDRINUSE']);
    assert.equal(await ask('127.0.0.1', port), '127.0.0.1');
  } finally {
    await closeAll([...l.servers, squatter]);
  }
});
