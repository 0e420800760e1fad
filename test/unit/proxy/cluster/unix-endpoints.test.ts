import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer as createHttpServer, type Server as HttpServer, request as httpRequest } from 'node:http';
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connectAbstractUnix } from '../../../../src/lib/native.js';
import type { ClusterConfig, HealthCheck, ProxyConfig } from '../../../../src/proxy/proxy-config.js';
import { FileSecretStore } from '../../../../src/proxy/secret/file-store.js';
import { httpAction, type ProxyHarness, startProxy } from '../http/http-fixture.js';
import { chain, closeServer, connectTo, eventually, listener, makeStack, readAll, type Stack, tcpAction, track } from '../l4-fixture.js';
import { compiledFor, fixtureWith } from '../translated.js';

// Istio's unix domain socket endpoints end to end in the proxy: ServiceEntries translated and compiled as the agent
// does, then HTTP and raw TCP through the real proxy to servers on a socket path and on an abstract socket. The
// abstract names are bound by socat (forwarding to Node servers on paths): socat binds the exact name length, as
// Envoy and most programs do, while Node pads abstract names to the whole sun_path.
const ABSTRACT = `vmesh-test-${process.pid}`;

function serviceEntries(dir: string): string {
  const se = (name: string, port: number, protocol: string, address: string) => `---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ${name}, namespace: default}
spec:
  hosts: [${name}.unix.local]
  location: MESH_EXTERNAL
  ports: [{number: ${port}, name: ${protocol.toLowerCase()}, protocol: ${protocol}}]
  resolution: STATIC
  endpoints: [{address: "${address}"}]
`;
  return [
    se('http-path', 8001, 'HTTP', `unix://${dir}/http.sock`),
    se('http-abstract', 8001, 'HTTP', `unix://@${ABSTRACT}-http`),
    se('tcp-path', 9001, 'TCP', `unix://${dir}/echo.sock`),
    se('tcp-abstract', 9002, 'TCP', `unix://@${ABSTRACT}-echo`),
  ].join('');
}

/** A body that depends on the request, big enough to take several reads. */
function bodyFor(url: string): Buffer {
  const seed = createHash('sha256').update(url).digest();
  return Buffer.concat(Array.from({ length: 8192 }, (_, i) => Buffer.concat([seed, Buffer.from([i & 0xff])])));
}

function httpOnSocket(path: string): Promise<HttpServer> {
  const server = createHttpServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      res.setHeader('x-seen-host', req.headers.host ?? '');
      res.setHeader('x-request-sha', createHash('sha256').update(Buffer.concat(chunks)).digest('hex'));
      res.end(bodyFor(req.url ?? ''));
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve(server));
  });
}

function echoOnSocket(path: string): Promise<Server> {
  const server = createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => {});
    s.pipe(s);
  });
  track(server);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve(server));
  });
}

interface HttpAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

function get(target: { port: number } | { socketPath: string }, host: string, path: string, body: Buffer): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const where =
      'port' in target
        ? { host: '127.0.0.1', port: target.port, agent: false as const }
        : target.socketPath.startsWith('@')
          ? { createConnection: () => connectAbstractUnixOrThrow(target.socketPath) }
          : { socketPath: target.socketPath, agent: false as const };
    const req = httpRequest({ ...where, method: 'POST', path, headers: { host } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('client timeout')));
    req.end(body);
  });
}

function connectAbstractUnixOrThrow(path: string): Socket {
  const r = connectAbstractUnix(path.slice(1));
  if (!r.ok) throw new Error(`${path}: ${r.error}`);
  return r.value;
}

/** Sends `data`, half-closes, and resolves with every byte that comes back. */
async function stream(socket: Socket, data: Buffer): Promise<Buffer> {
  const got = readAll(socket, 10_000);
  socket.end(data);
  return got;
}

/** `socat` serving the abstract name `name` by forwarding each connection to the socket at `path`; resolves once it accepts. */
async function abstractForwarder(name: string, path: string): Promise<ChildProcess> {
  const child = spawn('socat', [`ABSTRACT-LISTEN:${name},fork`, `UNIX-CONNECT:${path}`], { stdio: 'ignore' });
  const spawned = await new Promise<Error | undefined>((resolve) => {
    child.once('spawn', () => resolve(undefined));
    child.once('error', resolve);
  });
  if (spawned) throw new Error(`this test needs socat to bind abstract unix sockets: ${spawned.message}`);
  const until = Date.now() + 5000;
  for (;;) {
    const s = connectAbstractUnix(name);
    if (s.ok) {
      s.value.destroy();
      return child;
    }
    if (Date.now() > until) throw new Error(`socat never listened on @${name}: ${s.error}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A connection to a path, or (with `@`) to an abstract name with its exact length. */
function connectPath(path: string): Promise<Socket> {
  if (path.startsWith('@')) {
    const r = connectAbstractUnix(path.slice(1), { allowHalfOpen: true });
    return r.ok ? Promise.resolve(r.value) : Promise.reject(new Error(`${path}: ${r.error}`));
  }
  return new Promise((resolve, reject) => {
    const s = netConnect({ path, allowHalfOpen: true }, () => resolve(s));
    s.once('error', reject);
  });
}

describe('unix domain socket endpoints through the proxy', { timeout: 60_000 }, () => {
  let dir: string;
  let compiled: ProxyConfig;
  let servers: Array<Server | HttpServer> = [];
  let forwarders: ChildProcess[] = [];
  let proxy: ProxyHarness;
  let abstractProxy: ProxyHarness;
  let stack: Stack;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vmesh-uds-'));
    compiled = compiledFor(fixtureWith(serviceEntries(dir)));
    servers = [
      await httpOnSocket(join(dir, 'http.sock')),
      await httpOnSocket(join(dir, 'http-abstract.sock')),
      await echoOnSocket(join(dir, 'echo.sock')),
      await echoOnSocket(join(dir, 'echo-abstract.sock')),
    ];
    forwarders = [
      await abstractForwarder(`${ABSTRACT}-http`, join(dir, 'http-abstract.sock')),
      await abstractForwarder(`${ABSTRACT}-echo`, join(dir, 'echo-abstract.sock')),
    ];
    // Each service's outbound route table on port 8001, as translated (the listener of its VIP names it).
    proxy = await startProxy(compiled, httpAction('http-path.unix.local:8001'));
    abstractProxy = await startProxy(compiled, httpAction('http-abstract.unix.local:8001'));
    stack = await makeStack(new FileSecretStore());
    const tcp = (name: string, cluster: string) => listener(name, 1, [chain(name, tcpAction(cluster))]);
    await stack.lm.apply({
      ...compiled,
      listeners: new Map([
        ['tcp-path', tcp('tcp-path', 'outbound|9001||tcp-path.unix.local')],
        ['tcp-abstract', tcp('tcp-abstract', 'outbound|9002||tcp-abstract.unix.local')],
      ]),
      virtualByAddress: new Map(),
    });
  });

  after(async () => {
    await proxy?.close();
    await abstractProxy?.close();
    stack?.close();
    for (const f of forwarders) f.kill('SIGKILL');
    for (const s of servers) {
      if ('closeAllConnections' in s) s.closeAllConnections();
      await closeServer(s as Server);
    }
    await rm(dir, { recursive: true, force: true });
  });

  test('the compiled clusters hold pipe endpoints: the path, and @name for the abstract socket', () => {
    const ep = (cluster: string) => compiled.clusters.get(cluster)?.endpoints.map((e) => [e.address, e.port, e.pipe, e.mtls]);
    assert.deepEqual(ep('outbound|8001||http-path.unix.local'), [[join(dir, 'http.sock'), 0, true, false]]);
    assert.deepEqual(ep('outbound|8001||http-abstract.unix.local'), [[`@${ABSTRACT}-http`, 0, true, false]]);
    assert.deepEqual(ep('outbound|9002||tcp-abstract.unix.local'), [[`@${ABSTRACT}-echo`, 0, true, false]]);
  });

  for (const [service, socket] of [
    ['http-path', () => join(dir, 'http.sock')],
    ['http-abstract', () => `@${ABSTRACT}-http`],
  ] as const) {
    test(`HTTP to ${service}: the proxy's answer is byte for byte the socket server's own`, async () => {
      const request = randomBytes(256 * 1024);
      const host = `${service}.unix.local:8001`;
      const direct = await get({ socketPath: socket() }, host, '/data?x=1', request);
      const through = service === 'http-path' ? proxy : abstractProxy;
      const proxied = await get({ port: through.port }, host, '/data?x=1', request);
      assert.equal(direct.status, 200);
      assert.equal(proxied.status, 200, proxied.body.toString().slice(0, 200));
      assert.ok(proxied.body.equals(direct.body), 'bodies differ');
      assert.equal(proxied.body.length, 8192 * 33);
      assert.equal(proxied.headers['x-request-sha'], createHash('sha256').update(request).digest('hex'));
      assert.equal(proxied.headers['x-seen-host'], host);
      const stat = through.stats.at(-1);
      assert.equal(stat?.upstreamHost, service === 'http-path' ? join(dir, 'http.sock') : `@${ABSTRACT}-http`);
    });
  }

  for (const [name, socket] of [
    ['tcp-path', () => join(dir, 'echo.sock')],
    ['tcp-abstract', () => `@${ABSTRACT}-echo`],
  ] as const) {
    test(`raw TCP to ${name}: 4 MiB come back through the proxy as they do directly`, async () => {
      const data = randomBytes(4 * 1024 * 1024);
      const direct = await stream(await connectPath(socket()), data);
      const proxied = await stream(await connectTo(stack.port(name)), data);
      assert.equal(direct.length, data.length);
      assert.ok(proxied.equals(direct), `proxied ${proxied.length} bytes differ from the direct ${direct.length}`);
    });
  }

  test('active HTTP health checks go over the socket: a live one is healthy, one nobody listens on unhealthy', async () => {
    const hc: HealthCheck = {
      intervalMs: 50,
      timeoutMs: 1000,
      healthyThreshold: 1,
      unhealthyThreshold: 1,
      http: { path: '/healthz', expectedStatuses: [200] },
    };
    const live = 'outbound|8001||http-path.unix.local';
    const dead = 'outbound|8001||http-abstract.unix.local';
    const checked = (name: string, c: ClusterConfig): ClusterConfig => {
      if (name === live) return { ...c, healthCheck: hc };
      if (name === dead) return { ...c, healthCheck: hc, endpoints: c.endpoints.map((e) => ({ ...e, address: `@${ABSTRACT}-nobody` })) };
      return c;
    };
    proxy.setConfig({ ...compiled, clusters: new Map([...compiled.clusters].map(([k, c]) => [k, checked(k, c)])) });
    try {
      await eventually(() => proxy.clusters.hosts(live)[0]?.health === 'healthy', 5000, 'the live socket checked healthy');
      await eventually(() => proxy.clusters.hosts(dead)[0]?.health === 'unhealthy', 5000, 'the dead socket checked unhealthy');
      assert.equal(proxy.clusters.hosts(dead)[0]?.key, `@${ABSTRACT}-nobody`);
    } finally {
      proxy.setConfig(compiled);
    }
  });

  test('a socket nobody listens on fails the request as a connect failure (503), naming the path', async () => {
    const gone = compiledFor(fixtureWith(serviceEntries(join(dir, 'missing'))));
    proxy.setConfig(gone);
    try {
      const r = await get({ port: proxy.port }, 'http-path.unix.local:8001', '/', Buffer.alloc(0));
      assert.equal(r.status, 503);
      assert.equal(proxy.stats.at(-1)?.upstreamHost, join(dir, 'missing', 'http.sock'));
    } finally {
      proxy.setConfig(compiled);
    }
  });
});
