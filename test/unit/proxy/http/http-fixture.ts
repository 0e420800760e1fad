import {
  Agent,
  createServer,
  request as httpRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { type Server as NetServer, connect as netConnect, createServer as netCreateServer, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { socketAddr, toLocal, toOrigDst, toRemote } from '../../../../src/lib/addr.js';
import { createLogger } from '../../../../src/lib/logger.js';
import { ProxyClusterManager } from '../../../../src/proxy/cluster/cluster-manager.js';
import { createHttpHandler, type ProxyHttpHandler, type RequestStats } from '../../../../src/proxy/http/index.js';
import type {
  CircuitBreaker,
  ClusterConfig,
  FilterChain,
  HeaderOps,
  HttpFilters,
  ListenerConfig,
  NetworkAction,
  ProxyConfig,
  Route,
  RouteAction,
  RouteMatch,
  RouteTable,
  SecretStore,
  VirtualHost,
} from '../../../../src/proxy/proxy-config.js';
import type { ClusterManager, ConnectionContext } from '../../../../src/proxy/runtime-types.js';

/**
 * Shared pieces of the HTTP layer tests: hand-written ProxyConfig objects, the real cluster manager, a stand-in
 * for the listener manager (a loopback server handing connections to the handler) and small upstream servers.
 */

export const logger = createLogger({ level: 'silent' });

export const NO_OPS: HeaderOps = { add: [], remove: [] };
export const noBreaker: CircuitBreaker = {
  maxConnections: 1 << 30,
  maxPendingRequests: 1 << 30,
  maxRequests: 1 << 30,
  maxRetries: 1 << 30,
};

export function cluster(name: string, ports: readonly number[], extra: Partial<ClusterConfig> = {}): ClusterConfig {
  return {
    name,
    discovery: 'STATIC',
    endpoints: ports.map((port) => ({ address: '127.0.0.1', port, weight: 1, healthy: true, locality: '', priority: 0, mtls: false })),
    lb: 'ROUND_ROBIN',
    connectTimeoutMs: 1000,
    http2: false,
    circuitBreaker: noBreaker,
    blackhole: false,
    ...extra,
  };
}

export function prefix(value: string, extra: Partial<RouteMatch> = {}): RouteMatch {
  return { path: { kind: 'prefix', value, caseSensitive: true }, headers: [], query: [], ...extra };
}

export function forward(
  clusterName: string | ReadonlyArray<{ name: string; weight: number; headers?: HeaderOps }>,
  extra: Partial<Extract<RouteAction, { kind: 'forward' }>> = {},
): RouteAction {
  const list = typeof clusterName === 'string' ? [{ name: clusterName, weight: 1 }] : clusterName;
  const clusters = list.map((c) => ({ name: c.name, weight: c.weight, headers: c.headers ?? NO_OPS }));
  return {
    kind: 'forward',
    clusters,
    totalWeight: clusters.reduce((a, c) => a + c.weight, 0),
    timeoutMs: 15_000,
    mirrors: [],
    hashPolicy: [],
    ...extra,
  };
}

export function route(name: string, match: RouteMatch, action: RouteAction, extra: Partial<Route> = {}): Route {
  return { name, match, action, requestHeaders: NO_OPS, responseHeaders: NO_OPS, ...extra };
}

export function vhost(name: string, domains: readonly string[], routes: readonly Route[]): VirtualHost {
  const exact = domains.filter((d) => !d.startsWith('*'));
  const wild = domains.filter((d) => d.startsWith('*') && d !== '*').map((d) => d.slice(1));
  return { name, domains: new Set(exact), wildcardSuffixes: wild, matchAll: domains.includes('*'), routes, requireTls: false };
}

export function table(name: string, vhosts: readonly VirtualHost[]): RouteTable {
  return { name, virtualHosts: vhosts };
}

export const noFilters: HttpFilters = { rbac: [], fault: false };

export function httpAction(
  routeConfig = 'r',
  filters: HttpFilters = noFilters,
  extra: Partial<NetworkAction> = {},
): Extract<NetworkAction, { kind: 'http' }> {
  return { kind: 'http', routeConfig, filters, statPrefix: 'http', forwardClientCert: false, ...extra } as Extract<
    NetworkAction,
    { kind: 'http' }
  >;
}

export function proxyConfig(clusters: readonly ClusterConfig[], routes: readonly RouteTable[]): ProxyConfig {
  return {
    version: '1',
    listeners: new Map(),
    virtualByAddress: new Map(),
    clusters: new Map(clusters.map((c) => [c.name, c])),
    routes: new Map(routes.map((r) => [r.name, r])),
  };
}

export const noSecrets: SecretStore = {
  tlsCertificate: () => undefined,
  trustedCa: () => undefined,
  onChange: () => () => {},
};

const FAKE_LISTENER: ListenerConfig = {
  name: 'test',
  address: '127.0.0.1',
  port: 0,
  bindToPort: true,
  useOriginalDst: false,
  inspectTls: false,
  filterChains: [],
};

/** The handler under test behind a loopback listener, with the real cluster manager. */
export interface ProxyHarness {
  readonly port: number;
  readonly handler: ProxyHttpHandler;
  readonly clusters: ProxyClusterManager;
  readonly stats: RequestStats[];
  setConfig(c: ProxyConfig): void;
  setAction(a: Extract<NetworkAction, { kind: 'http' }>): void;
  close(): Promise<void>;
}

export async function startProxy(
  config: ProxyConfig,
  action: Extract<NetworkAction, { kind: 'http' }> = httpAction(),
  opts: { random?: () => number; clusters?: ClusterManager; peerIdentity?: string; tls?: { key: string; cert: string } } = {},
): Promise<ProxyHarness> {
  let cfg = config;
  let act = action;
  const clusters = new ProxyClusterManager({ secrets: noSecrets, logger, ownPorts: () => [] });
  clusters.update(cfg);
  const stats: RequestStats[] = [];
  const handler = createHttpHandler({
    clusters: opts.clusters ?? clusters,
    config: () => cfg,
    logger,
    onRequestDone: (s) => {
      if (stats.length < 100_000) stats.push(s);
    },
    ...(opts.random ? { random: opts.random } : {}),
  });
  const onSocket = (socket: Socket) => {
    const chain: FilterChain = { name: 'c', match: { serverNames: [], applicationProtocols: [], prefixRanges: [] }, action: act };
    const local = toLocal(socketAddr(socket.localAddress ?? '', socket.localPort ?? 0));
    const ctx: ConnectionContext = {
      socket,
      listener: FAKE_LISTENER,
      chain,
      remote: toRemote(socketAddr(socket.remoteAddress ?? '', socket.remotePort ?? 0)),
      local,
      originalDst: toOrigDst(local),
      ...(opts.peerIdentity ? { peerIdentity: opts.peerIdentity } : {}),
      tls: opts.tls !== undefined,
      config: cfg,
    };
    handler.handle(ctx, act);
  };
  // TLS stands in for the listener manager's termination: ALPN picks h2 or http/1.1 as it would.
  const server = opts.tls
    ? createTlsServer({ key: opts.tls.key, cert: opts.tls.cert, ALPNProtocols: ['h2', 'http/1.1'], allowHalfOpen: true }, onSocket)
    : netCreateServer({ allowHalfOpen: true, noDelay: true }, onSocket);
  const port = await listenNet(server);
  return {
    port,
    handler,
    clusters,
    stats,
    setConfig(c) {
      cfg = c;
      clusters.update(c);
    },
    setAction(a) {
      act = a;
    },
    async close() {
      handler.close();
      clusters.close();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

export function listenNet(server: NetServer | Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const a = server.address();
      if (!a || typeof a === 'string') reject(new Error('no address'));
      else resolve(a.port);
    });
  });
}

export interface Upstream {
  readonly port: number;
  readonly server: Server;
  /** TCP connections accepted so far. */
  connections: number;
  requests: Array<{ method: string; url: string; headers: IncomingHttpHeaders; body: Buffer }>;
  close(): Promise<void>;
}

/** An HTTP/1.1 upstream; the default handler answers `tag` and echoes what it saw as JSON headers. */
export async function upstream(
  tag: string,
  handle?: (req: IncomingMessage, res: ServerResponse, body: Buffer) => void,
  /** Sees each request before its body is read; returning true takes it over (streaming tests). */
  streaming?: (req: IncomingMessage, res: ServerResponse) => boolean,
): Promise<Upstream> {
  const sockets = new Set<Socket>();
  const u: Upstream = {
    port: 0,
    server: createServer(),
    connections: 0,
    requests: [],
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => u.server.close(() => r()));
    },
  };
  u.server.keepAliveTimeout = 30_000;
  u.server.on('connection', (s: Socket) => {
    u.connections++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  u.server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    if (streaming?.(req, res)) return;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      if (u.requests.length < 10_000) u.requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      if (handle) return handle(req, res, body);
      res.setHeader('x-upstream', tag);
      res.setHeader('content-type', 'text/plain');
      res.end(`${tag} ${req.method} ${req.url}`);
    });
  });
  (u as { port: number }).port = await listenNet(u.server);
  return u;
}

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** One request through the proxy with Node's client (keep-alive agent optional). */
export function send(
  port: number,
  opts: { method?: string; path?: string; host?: string; headers?: Record<string, string>; body?: string | Buffer; agent?: Agent } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: '127.0.0.1',
        port,
        method: opts.method ?? 'GET',
        path: opts.path ?? '/',
        headers: { host: opts.host ?? 'svc', ...opts.headers },
        agent: opts.agent ?? false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('client timeout')));
    req.end(opts.body);
  });
}

/** Sends raw bytes on a fresh connection and resolves with everything received until the proxy closes (or `ms`). */
export function rawExchange(port: number, data: Buffer | string, ms = 3000): Promise<string> {
  return new Promise((resolve) => {
    const s = netConnect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const done = () => {
      clearTimeout(timer);
      s.destroy();
      resolve(Buffer.concat(chunks).toString('latin1'));
    };
    const timer = setTimeout(done, ms);
    s.on('data', (d: Buffer) => chunks.push(d));
    s.on('error', done);
    s.on('close', done);
    s.write(data);
  });
}

export { Agent };
