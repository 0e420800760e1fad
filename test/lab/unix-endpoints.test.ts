import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { APP, type FeatureLab, startFeatureLab } from './features-lab.js';
import { requireLabTools } from './lab.js';

// Istio's unix domain socket endpoints with real capture: an app on h2 calls a ServiceEntry's name, DNS answers
// its VIP, capture hands the connection to h2's proxy, and the proxy connects to a server on a unix socket of h2
// (a path, and an abstract socket, which only h2's network namespace has). Bytes are compared with the direct path.
const ABSTRACT = `vmesh-lab-${process.pid}`;

function config(dir: string): string {
  const se = (name: string, port: number, protocol: string, address: string) => `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ${name}}
spec:
  hosts: [${name}.unix.local]
  location: MESH_EXTERNAL
  ports: [{number: ${port}, name: ${protocol.toLowerCase()}, protocol: ${protocol}}]
  resolution: STATIC
  endpoints: [{address: "${address}"}]
`;
  return [
    se('uds-path', 8001, 'HTTP', `unix://${dir}/http.sock`),
    se('uds-abstract', 8002, 'HTTP', `unix://@${ABSTRACT}-http`),
    se('uds-echo', 9001, 'TCP', `unix://${dir}/echo.sock`),
  ].join('---\n');
}

// Sends 1 MiB, half-closes, and prints the sha256 of what was sent and of what came back.
const TCP_CLIENT = `
const { connect } = require('node:net');
const { createHash, randomBytes } = require('node:crypto');
const [host, port] = process.argv.slice(1);
const data = randomBytes(1 << 20);
const h = createHash('sha256');
let n = 0;
const s = connect({ host, port: Number(port), allowHalfOpen: true }, () => s.end(data));
s.on('data', (d) => { h.update(d); n += d.length; });
s.on('end', () => { console.log(JSON.stringify({ sent: createHash('sha256').update(data).digest('hex'), got: h.digest('hex'), n })); s.end(); });
s.on('error', (e) => { console.log(JSON.stringify({ error: e.code || e.message })); process.exit(1); });
setTimeout(() => { console.log(JSON.stringify({ error: 'timeout', n })); process.exit(1); }, 20000).unref();
`;

describe('unix domain socket endpoints through capture and the proxy', { timeout: 300_000 }, () => {
  let f: FeatureLab;
  let dir: string;
  const curl = (args: string[]) => f.h2.execOk('curl', ['-sS', '--http1.1', '--max-time', '10', ...args], { ...APP, timeoutMs: 30_000 });

  before(async () => {
    requireLabTools(['curl', 'socat']);
    dir = mkdtempSync(join(tmpdir(), 'vmesh-lab-uds-'));
    // The app's uid connects to the sockets directly too, for the comparison.
    chmodSync(dir, 0o755);
    f = await startFeatureLab({ servers: [], services: [] });
    const servers = f.h2.spawn(process.execPath, [join(import.meta.dirname, 'fixtures', 'uds-servers.mjs'), dir]);
    await servers.waitForLine(/^ready$/, 30_000);
    for (const s of ['http.sock', 'echo.sock']) chmodSync(join(dir, s), 0o777);
    // In h2's network namespace: abstract names belong to it, so only h2's agent (and apps) reach this one.
    f.h2.spawn('socat', [`ABSTRACT-LISTEN:${ABSTRACT}-http,fork`, `UNIX-CONNECT:${join(dir, 'http-abstract.sock')}`]);
    await f.apply(config(dir));
    await f.waitForConfig('h2', ['outbound|8001||uds-path.unix.local', 'outbound|8002||uds-abstract.unix.local', `@${ABSTRACT}-http`]);
  });
  after(async () => {
    await f?.teardown();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('HTTP by name to a socket path answers as the socket does directly', async () => {
    const proxied = await curl(['http://uds-path.unix.local:8001/hello?x=1']);
    const direct = await curl(['--unix-socket', join(dir, 'http.sock'), 'http://uds-path.unix.local:8001/hello?x=1']);
    assert.equal(proxied, 'uds-path GET /hello?x=1 host=uds-path.unix.local:8001 body=0\n');
    assert.equal(proxied, direct);
  });

  test('HTTP by name to an abstract socket of the client host answers as it does directly', async () => {
    const file = join(dir, 'body.bin');
    writeFileSync(file, 'x'.repeat(100_000));
    chmodSync(file, 0o644);
    const args = ['-X', 'POST', '--data-binary', `@${file}`];
    const proxied = await curl([...args, 'http://uds-abstract.unix.local:8002/post']);
    const direct = await curl([...args, '--abstract-unix-socket', `${ABSTRACT}-http`, 'http://uds-abstract.unix.local:8002/post']);
    assert.equal(proxied, 'uds-abstract POST /post host=uds-abstract.unix.local:8002 body=100000\n');
    assert.equal(proxied, direct);
  });

  test('a raw TCP stream to the echo socket comes back intact through the proxy', async () => {
    const out = await f.h2.execOk(process.execPath, ['-e', TCP_CLIENT, 'uds-echo.unix.local', '9001'], { ...APP, timeoutMs: 30_000 });
    const r = JSON.parse(out.trim().split('\n').pop() ?? '{}') as { sent?: string; got?: string; n?: number; error?: string };
    assert.equal(r.error, undefined, out);
    assert.equal(r.n, 1 << 20);
    assert.equal(r.got, r.sent);
  });
});
