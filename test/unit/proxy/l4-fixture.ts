import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CertificateAuthority } from '../../../src/ca/ca.js';
import { buildCsr, derToPem } from '../../../src/ca/x509.js';
import { createLogger } from '../../../src/lib/logger.js';
import type {
  CircuitBreaker,
  ClusterConfig,
  FilterChain,
  FilterChainMatch,
  HttpFilters,
  ListenerConfig,
  NetworkAction,
  ProxyConfig,
  UpstreamEndpoint,
} from '../../../src/proxy/proxy-config.js';
import type { ConnectionContext, HttpHandler, LiveHttpConnection } from '../../../src/proxy/runtime-types.js';

/**
 * Shared pieces of the L4 runtime tests: real certificates from the real CA, hand-written ProxyConfig
 * objects (proxy-config.ts types), loopback servers and a fake HttpHandler.
 */

export const logger = createLogger({ level: 'silent' });

export interface Identity {
  readonly certPem: string;
  readonly keyPem: string;
}

export interface TestPki {
  readonly ca: CertificateAuthority;
  readonly caPem: string;
  issue(spiffeId: string, opts?: { dnsNames?: string[] }): Identity;
  cleanup(): Promise<void>;
}

export async function makePki(trustDomain = 'cluster.local'): Promise<TestPki> {
  const dir = await mkdtemp(join(tmpdir(), 'vmesh-proxy-ca-'));
  const ca = await CertificateAuthority.loadOrCreate({ dir: join(dir, 'ca'), trustDomain, logger });
  return {
    ca,
    caPem: ca.trustBundlePem(),
    issue(spiffeId, opts = {}) {
      const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
      const csrPem = derToPem(buildCsr(privateKey, 'x'), 'CERTIFICATE REQUEST');
      const signed = ca.signCsr(csrPem, { uris: [spiffeId], dnsNames: opts.dnsNames ?? [], ttlSeconds: 3600, usage: 'both' });
      return { certPem: signed.certPem, keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() };
    },
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

export const spiffe = (sa: string, ns = 'default') => `spiffe://cluster.local/ns/${ns}/sa/${sa}`;

export const noBreaker: CircuitBreaker = {
  maxConnections: 1 << 30,
  maxPendingRequests: 1 << 30,
  maxRequests: 1 << 30,
  maxRetries: 1 << 30,
};

export function endpoint(port: number, extra: Partial<UpstreamEndpoint> = {}): UpstreamEndpoint {
  return { address: '127.0.0.1', port, weight: 1, healthy: true, locality: '', priority: 0, mtls: false, ...extra };
}

export function cluster(name: string, ports: readonly number[], extra: Partial<ClusterConfig> = {}): ClusterConfig {
  return {
    name,
    discovery: 'STATIC',
    endpoints: ports.map((p) => endpoint(p)),
    lb: 'ROUND_ROBIN',
    connectTimeoutMs: 1000,
    http2: false,
    circuitBreaker: noBreaker,
    blackhole: false,
    ...extra,
  };
}

export function tcpAction(
  clusters: ReadonlyArray<{ name: string; weight: number }> | string,
  extra: Partial<NetworkAction> = {},
): NetworkAction {
  const list = typeof clusters === 'string' ? [{ name: clusters, weight: 1 }] : clusters;
  return { kind: 'tcp', clusters: list, rbac: [], statPrefix: 'tcp', ...extra } as NetworkAction;
}

export const noHttpFilters: HttpFilters = { rbac: [], fault: false };

export function httpAction(routeConfig = 'r'): NetworkAction {
  return { kind: 'http', routeConfig, filters: noHttpFilters, statPrefix: 'http', forwardClientCert: false };
}

export function chain(
  name: string,
  action: NetworkAction,
  match: Partial<FilterChainMatch> = {},
  extra: Partial<FilterChain> = {},
): FilterChain {
  return { name, match: { serverNames: [], applicationProtocols: [], prefixRanges: [], ...match }, action, ...extra };
}

export function listener(name: string, port: number, chains: readonly FilterChain[], extra: Partial<ListenerConfig> = {}): ListenerConfig {
  return {
    name,
    address: '0.0.0.0',
    port,
    bindToPort: true,
    useOriginalDst: false,
    inspectTls: false,
    filterChains: chains,
    ...extra,
  };
}

export function proxyConfig(
  version: string,
  listeners: readonly ListenerConfig[],
  clusters: readonly ClusterConfig[],
  virtual: readonly ListenerConfig[] = [],
): ProxyConfig {
  return {
    version,
    listeners: new Map(listeners.map((l) => [l.name, l])),
    virtualByAddress: new Map(virtual.map((l) => [`${l.address}:${l.port}`, l])),
    clusters: new Map(clusters.map((c) => [c.name, c])),
    routes: new Map(),
  };
}

/** An HttpHandler that answers one fixed response per connection and records what it saw. */
export class FakeHttp implements HttpHandler {
  readonly seen: ConnectionContext[] = [];
  /** Nothing to drain or close later: the connection ends after its one response. */
  handle(conn: ConnectionContext): LiveHttpConnection | undefined {
    this.seen.push(conn);
    const body = JSON.stringify({ chain: conn.chain.name, peer: conn.peerIdentity ?? null, tls: conn.tls });
    conn.socket.once('data', () => {
      conn.socket.end(`HTTP/1.1 200 OK\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
    });
    conn.socket.resume();
    return undefined;
  }
  async drain(): Promise<void> {}
}

const connections = new WeakMap<Server, Set<Socket>>();

/** Remembers a server's connections so `closeServer` can end them (net.Server has no closeAllConnections). */
export function track(server: Server): void {
  if (connections.has(server)) return;
  const set = new Set<Socket>();
  connections.set(server, set);
  server.on('connection', (s: Socket) => {
    set.add(s);
    s.once('close', () => set.delete(s));
  });
}

export async function listen(server: Server): Promise<number> {
  track(server);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const a = server.address();
  if (!a || typeof a === 'string') throw new Error('no address');
  return a.port;
}

/** A TCP echo server (half-close aware) that tags its replies so tests can tell upstreams apart. */
export async function echoServer(tag = ''): Promise<{ server: Server; port: number; sockets: Set<Socket> }> {
  const sockets = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    if (tag) s.write(tag);
    s.pipe(s);
  });
  const port = await listen(server);
  return { server, port, sockets };
}

export async function closeServer(server: Server | undefined): Promise<void> {
  if (!server) return;
  for (const s of connections.get(server) ?? []) s.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

/** A port nothing listens on (bound then released). */
export async function deadPort(): Promise<number> {
  const s = createServer();
  const port = await listen(s);
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

export function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

export { randomBytes };

/** Resolves with everything the socket sends until it ends (bounded by `ms`). */
export function readAll(socket: Socket, ms = 5000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => reject(new Error(`readAll: no end within ${ms} ms`)), ms);
    socket.on('data', (d: Buffer) => chunks.push(d));
    // Half-open capable clients close their side once the peer closed its own.
    socket.on('end', () => socket.end());
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
  });
}

/** Waits until `cond` holds, polling every 10 ms, at most `ms`. */
export async function eventually(cond: () => boolean, ms = 3000, what = 'condition'): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A TLS echo server presenting `id`; with `ca` it asks for (and records) client certificates. */
export async function tlsEchoServer(
  id: Identity,
  opts: { ca?: string; alpn?: string[] } = {},
): Promise<{ server: import('node:tls').Server; port: number; peers: Array<string | undefined> }> {
  const { createServer: createTlsServer } = await import('node:tls');
  const peers: Array<string | undefined> = [];
  const server = createTlsServer(
    {
      cert: id.certPem,
      key: id.keyPem,
      ...(opts.ca ? { ca: opts.ca, requestCert: true, rejectUnauthorized: true } : {}),
      ...(opts.alpn ? { ALPNProtocols: opts.alpn } : {}),
    },
    (s) => {
      const san = s.getPeerCertificate()?.subjectaltname;
      peers.push(san ? san.replace(/^URI:/, '') : undefined);
      s.on('error', () => {});
      s.pipe(s);
    },
  );
  server.on('tlsClientError', () => {});
  track(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const a = server.address();
  if (!a || typeof a === 'string') throw new Error('no address');
  return { server, port: a.port, peers };
}

/** Writes `text` and resolves with the first reply chunk(s) up to `n` bytes. */
export function roundTrip(socket: Socket, text: string, n = text.length, ms = 3000): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    const timer = setTimeout(() => reject(new Error(`roundTrip: got "${got}" within ${ms} ms`)), ms);
    const onData = (d: Buffer) => {
      got += d.toString();
      if (got.length >= n) {
        clearTimeout(timer);
        socket.removeListener('data', onData);
        resolve(got);
      }
    };
    socket.on('data', onData);
    socket.write(text);
  });
}

export interface Stack {
  readonly lm: import('../../../src/proxy/listener/listener-manager.js').ListenerManager;
  readonly cm: import('../../../src/proxy/cluster/cluster-manager.js').ProxyClusterManager;
  readonly http: FakeHttp;
  readonly closed: import('../../../src/proxy/tcp/tcp-proxy.js').TcpConnectionStats[];
  port(listener: string): number;
  close(): void;
}

/** A ClusterManager and ListenerManager on 127.0.0.1 with every listener on a free port. */
export async function makeStack(
  secrets: import('../../../src/proxy/proxy-config.js').SecretStore,
  extra: Partial<import('../../../src/proxy/listener/listener-manager.js').ListenerManagerOptions> = {},
): Promise<Stack> {
  const { ListenerManager } = await import('../../../src/proxy/listener/listener-manager.js');
  const { ProxyClusterManager } = await import('../../../src/proxy/cluster/cluster-manager.js');
  // The loop guard protects the ports actually bound (the agent adds 15001/15006 to these).
  let lmRef: { listening(): Array<{ port: number }> } | undefined;
  const cm = new ProxyClusterManager({ secrets, logger, ownPorts: () => (lmRef?.listening() ?? []).map((l) => l.port) });
  const http = new FakeHttp();
  const closed: import('../../../src/proxy/tcp/tcp-proxy.js').TcpConnectionStats[] = [];
  const lm = new ListenerManager({
    clusters: cm,
    secrets,
    http,
    logger,
    bindHost: '127.0.0.1',
    portMap: () => 0,
    onConnectionClosed: (s) => closed.push(s),
    ...extra,
  });
  lmRef = lm;
  return {
    lm,
    cm,
    http,
    closed,
    port(name) {
      const l = lm.listening().find((x) => x.name === name);
      if (!l) throw new Error(`listener ${name} is not bound`);
      return l.port;
    },
    close() {
      lm.close();
      cm.close();
    },
  };
}

export function connectTo(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = netConnect({ port, host: '127.0.0.1', allowHalfOpen: true }, () => resolve(s));
    s.once('error', reject);
  });
}

export interface Answer {
  readonly chain: string;
  readonly peer: string | null;
  readonly tls: boolean;
  readonly alpn?: string | false;
}

/**
 * One request to a FakeHttp chain, plaintext or over TLS (trusting `ca`, optionally with a client
 * certificate); undefined when the proxy closed the connection without answering.
 */
export async function ask(
  port: number,
  opts: { tls?: { ca: string; servername?: string; alpn?: string[]; cert?: Identity } } = {},
): Promise<Answer | undefined> {
  const { connect: tlsConnect } = await import('node:tls');
  const t = opts.tls;
  const socket: Socket = t
    ? tlsConnect({
        port,
        host: '127.0.0.1',
        ca: t.ca,
        checkServerIdentity: () => undefined,
        ...(t.servername ? { servername: t.servername } : {}),
        ...(t.alpn ? { ALPNProtocols: t.alpn } : {}),
        ...(t.cert ? { cert: t.cert.certPem, key: t.cert.keyPem } : {}),
      })
    : netConnect({ port, host: '127.0.0.1' });
  // TLSSocket.alpnProtocol: null before the handshake, false when none was agreed.
  let alpn: string | false | null | undefined;
  socket.once(t ? 'secureConnect' : 'connect', () => {
    if (t) alpn = (socket as import('node:tls').TLSSocket).alpnProtocol;
    socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
  });
  const raw = (await readAll(socket)).toString();
  const body = raw.split('\r\n\r\n')[1];
  if (!body) return undefined;
  const parsed = JSON.parse(body) as Answer;
  return t ? { ...parsed, alpn: alpn ?? false } : parsed;
}
