import { lookup } from 'node:dns/promises';
import { type IpcNetConnectOpts, isIP, connect as netConnect, type Socket, type TcpNetConnectOpts } from 'node:net';
import { networkInterfaces } from 'node:os';
import { checkServerIdentity, type PeerCertificate, connect as tlsConnect } from 'node:tls';
import { normalizeIp } from '../../lib/addr.js';
import { connectAbstractUnix } from '../../lib/native.js';
import { err, ok, type Result } from '../../lib/result.js';
import type { ClusterConfig, UpstreamTls } from '../proxy-config.js';
import type { ConnectResult, SourceIdentity, UpstreamFailure, UpstreamHost } from '../runtime-types.js';
import { dnsSans, linkRawSocket, peerSpiffeId, sniFor, type TlsContexts, uriSans } from '../tls/contexts.js';

/**
 * Opening one upstream connection: DNS when the address is a name, the loop guard, TCP with a connect
 * timeout and source address, then TLS per the cluster (DestinationRule TLS for every endpoint, else mesh
 * mTLS for endpoints that run an agent) with the peer's identity checked against the allowed SANs.
 */

export interface ConnectDeps {
  readonly contexts: TlsContexts;
  readonly dns: DnsCache;
  /** True for the proxy's own listeners on this host: connecting there would loop. */
  readonly isOwnListener: (address: string, port: number) => boolean;
}

export type Failure = Extract<ConnectResult, { ok: false }>;

export function failure(reason: UpstreamFailure, detail: string): Failure {
  return { ok: false, reason, detail };
}

const noop = () => {};

/** Bytes read per call into a reused buffer (HTTP/1.1 responses are mostly far smaller; bodies stream on). */
const READ_BUFFER_BYTES = 16 * 1024;

/** Who takes what a socket opened with a reused read buffer reads (see ReusedReads). */
export interface ReadSink {
  /** buf[0, n) was read. Views of it are valid until this returns, unless the sink called `reads.lend()`. */
  onRead(buf: Buffer, n: number): void;
}

/**
 * Reads into one buffer per connection, reused while nothing read is kept (Node's `onread`): no 64 KiB allocation,
 * ArrayBuffer and stream push per read. Until a sink is set the socket behaves as usual ('data' with copies), so
 * whoever ends up owning it (a tunnel after an upgrade) needs to know nothing of this.
 */
export class ReusedReads {
  sink: ReadSink | undefined;
  private buf = Buffer.allocUnsafe(READ_BUFFER_BYTES);
  private lent = false;
  socket: Socket | undefined;

  /** The bytes just read stay in use after onRead returned: the next read goes to a new buffer. */
  lend(): void {
    this.lent = true;
  }

  readonly next = (): Buffer => {
    if (this.lent) {
      this.lent = false;
      this.buf = Buffer.allocUnsafe(READ_BUFFER_BYTES);
    }
    return this.buf;
  };

  // Always true: backpressure is the owner's socket.pause(), as with 'data'.
  readonly onRead = (n: number, buf: Uint8Array): boolean => {
    const b = buf as Buffer;
    const sink = this.sink;
    if (sink) sink.onRead(b, n);
    else this.socket?.emit('data', Buffer.from(b.subarray(0, n)));
    return true;
  };
}

const reusedReads = new WeakMap<Socket, ReusedReads>();

/** The reused-buffer reader of an upstream socket, when it was opened with one (plaintext HTTP/1.1). */
export function reusedReadsOf(socket: Socket): ReusedReads | undefined {
  return reusedReads.get(socket);
}

export async function openUpstream(
  c: ClusterConfig,
  host: UpstreamHost,
  deps: ConnectDeps,
  alpn: readonly string[] | undefined,
  identity?: SourceIdentity,
): Promise<ConnectResult> {
  if (c.blackhole) return failure('blackhole', `cluster ${c.name} is a black hole: connections are refused by configuration`);
  if (host.endpoint.pipe) return openPipe(c, host, deps, alpn);
  const { port } = host.endpoint;
  let address = host.endpoint.address;
  if (isIP(address) === 0) {
    const r = await deps.dns.resolve(address);
    if (!r.ok) return failure('connect_failure', `cluster ${c.name}: ${r.error}`);
    address = r.value;
  }
  if (deps.isOwnListener(address, port)) {
    return failure(
      'connect_failure',
      `cluster ${c.name}: refusing to connect to ${address}:${port}, the proxy's own listener (traffic loop)`,
    );
  }
  // Mesh mTLS is for a peer proxy's inbound port. An endpoint on this host is the app itself, which local
  // connections reach directly (inbound capture only sees traffic from other hosts): no mesh TLS to it.
  let tlsCfg = c.tls ?? (host.endpoint.mtls && !isHostInterfaceAddress(address) ? c.meshTls : undefined);
  // Mesh mTLS presents the calling workload's own certificate; a caller with no mesh identity goes plaintext.
  if (c.tls === undefined && tlsCfg && identity !== undefined) tlsCfg = identity === null ? undefined : { ...tlsCfg, certSecret: identity };
  let context: ReturnType<TlsContexts['client']> | undefined;
  if (tlsCfg) {
    context = deps.contexts.client(tlsCfg);
    if (!context.ok) return failure('tls_error', `cluster ${c.name}: ${context.error}`);
  }
  // Plaintext HTTP/1.1 reads into a reused buffer; TLS, HTTP/2 and raw TCP keep Node's own reads.
  const reuse = !tlsCfg && alpn !== undefined && alpn.length === 1 && alpn[0] === 'http/1.1';
  const opts: TcpNetConnectOpts = { host: address, port, allowHalfOpen: true, noDelay: true };
  const source = bindSource(c, address);
  if (source) opts.localAddress = source;
  const tcp = await streamConnect(c, opts, `${address}:${port}`, reuse);
  if (!tcp.ok || !tlsCfg || !context?.ok) return tcp.ok ? { ok: true, socket: tcp.value, host } : tcp.error;
  return handshake(c, host, tcp.value, tlsCfg, context.value, c.tls === undefined, alpn);
}

/**
 * A unix domain socket endpoint (Envoy's Pipe) on this host: no DNS, loop guard, source address or mesh mTLS
 * (the socket is local, as in Envoy); a DestinationRule's TLS still applies. Only hosts where the socket exists
 * reach it, as in Istio.
 */
async function openPipe(
  c: ClusterConfig,
  host: UpstreamHost,
  deps: ConnectDeps,
  alpn: readonly string[] | undefined,
): Promise<ConnectResult> {
  const t = c.tls;
  const context = t ? deps.contexts.client(t) : undefined;
  if (context && !context.ok) return failure('tls_error', `cluster ${c.name}: ${context.error}`);
  const reuse = !t && alpn !== undefined && alpn.length === 1 && alpn[0] === 'http/1.1';
  const path = host.endpoint.address;
  const conn = path.startsWith('@') ? abstractConnect(c, path, reuse) : await streamConnect(c, { path, allowHalfOpen: true }, path, reuse);
  if (!conn.ok || !t || !context?.ok) return conn.ok ? { ok: true, socket: conn.value, host } : conn.error;
  return handshake(c, host, conn.value, t, context.value, false, alpn);
}

/** Linux's abstract namespace: connected at once (or refused) by the native addon, with the name's exact length. */
function abstractConnect(c: ClusterConfig, path: string, reuse: boolean): Result<Socket, Failure> {
  const reads = reuse ? new ReusedReads() : undefined;
  const r = connectAbstractUnix(path.slice(1), {
    allowHalfOpen: true,
    ...(reads ? { onread: { buffer: reads.next, callback: reads.onRead } } : {}),
  });
  if (!r.ok) return err(failure('connect_failure', `cluster ${c.name}: ${path}: ${r.error}`));
  if (reads) {
    reads.socket = r.value;
    reusedReads.set(r.value, reads);
  }
  r.value.on('error', noop);
  return ok(r.value);
}

function streamConnect(
  c: ClusterConfig,
  opts: TcpNetConnectOpts | IpcNetConnectOpts,
  address: string,
  reuse: boolean,
): Promise<Result<Socket, Failure>> {
  return new Promise((resolve) => {
    const reads = reuse ? new ReusedReads() : undefined;
    if (reads) opts.onread = { buffer: reads.next, callback: reads.onRead };
    const socket = netConnect(opts);
    if (reads) {
      reads.socket = socket;
      reusedReads.set(socket, reads);
    }
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(err(failure('connect_timeout', `cluster ${c.name}: ${address} did not accept within ${c.connectTimeoutMs} ms`)));
    }, c.connectTimeoutMs);
    const onError = (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve(err(failure('connect_failure', `cluster ${c.name}: ${address}: ${e.code ?? e.message}`)));
    };
    socket.once('error', onError);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeListener('error', onError);
      // Callers attach their own handlers; this one only keeps a late error on an idle pooled socket from crashing the process.
      socket.on('error', noop);
      resolve(ok(socket));
    });
  });
}

function handshake(
  c: ClusterConfig,
  host: UpstreamHost,
  raw: Socket,
  t: UpstreamTls,
  secureContext: import('node:tls').SecureContext,
  mesh: boolean,
  alpn: readonly string[] | undefined,
): Promise<ConnectResult> {
  // The HTTP layer's protocols come first; the cluster's (istio-peer-exchange, istio) stay so the peer's mTLS chain matches.
  const offered = alpn ? [...alpn, ...t.alpn.filter((p) => !alpn.includes(p))] : [...t.alpn];
  const name = t.sni ?? (mesh || host.endpoint.pipe ? undefined : host.endpoint.address);
  return new Promise((resolve) => {
    const secure = tlsConnect({
      socket: raw,
      secureContext,
      servername: sniFor(name),
      ALPNProtocols: offered.length > 0 ? offered : undefined,
      rejectUnauthorized: true,
      checkServerIdentity: (hostname: string, cert: PeerCertificate) => {
        if (t.peerSans.length > 0) {
          const sans = [...uriSans(cert), ...dnsSans(cert)];
          if (sans.some((s) => t.peerSans.includes(s))) return undefined;
          return new Error(`peer identity [${sans.join(', ')}] is none of the expected [${t.peerSans.join(', ')}]`);
        }
        // Mesh peers are proven by the mesh CA alone (any mesh identity); external servers by their host name.
        return mesh ? undefined : checkServerIdentity(name ?? hostname, cert);
      },
    });
    linkRawSocket(secure, raw);
    const where = `cluster ${c.name}: TLS to ${host.key}`;
    const timer = setTimeout(() => {
      secure.destroy();
      resolve(failure('tls_error', `${where}: handshake did not finish within ${c.connectTimeoutMs} ms`));
    }, c.connectTimeoutMs);
    const onError = (e: Error) => {
      clearTimeout(timer);
      secure.destroy();
      resolve(failure('tls_error', `${where}: ${e.message.split('\n')[0]}`));
    };
    secure.once('error', onError);
    secure.once('secureConnect', () => {
      clearTimeout(timer);
      secure.removeListener('error', onError);
      secure.on('error', noop);
      const peerIdentity = peerSpiffeId(secure.getPeerCertificate());
      const negotiated = secure.alpnProtocol || undefined;
      resolve({ ok: true, socket: secure, host, ...(peerIdentity ? { peerIdentity } : {}), ...(negotiated ? { alpn: negotiated } : {}) });
    });
  });
}

type LookupFn = (host: string) => Promise<ReadonlyArray<{ readonly address: string; readonly family: number }>>;

/** Name → address for DNS clusters (IPv4 preferred, as Istio's V4_PREFERRED), cached for a TTL; failures briefly. */
export class DnsCache {
  private readonly entries = new Map<string, { readonly expires: number; readonly value: Promise<Result<string, string>> }>();

  constructor(
    private readonly ttlMs = 30_000,
    private readonly lookupFn: LookupFn = (h) => lookup(h, { all: true }),
    private readonly failureTtlMs = 1000,
  ) {}

  resolve(host: string): Promise<Result<string, string>> {
    const now = Date.now();
    const hit = this.entries.get(host);
    if (hit && hit.expires > now) return hit.value;
    const value = this.lookupFn(host).then(
      (addrs) => {
        const pick = addrs.find((a) => a.family === 4) ?? addrs[0];
        return pick ? ok(pick.address) : err(`DNS: ${host} has no addresses`);
      },
      (e: NodeJS.ErrnoException) => err(`DNS: cannot resolve ${host}: ${e.code ?? e.message}`),
    );
    this.entries.set(host, { expires: now + this.ttlMs, value });
    void value.then((r) => {
      if (!r.ok) this.entries.set(host, { expires: Date.now() + this.failureTtlMs, value });
    });
    return value;
  }
}

/**
 * The cluster's source address of the destination's family (a v4 source cannot reach a v6 destination). An IPv6
 * one must be assigned here (the agent puts `::6` on lo with IPv6 capture): without it the default source is
 * better than a connection that cannot be made.
 */
export function bindSource(c: Pick<ClusterConfig, 'bindAddress' | 'extraBindAddresses'>, destination: string): string | undefined {
  const family = isIP(destination);
  for (const a of [c.bindAddress, ...(c.extraBindAddresses ?? [])]) {
    if (a && isIP(a) === family && (family === 4 || isLocalAddress(a))) return a;
  }
  return undefined;
}

let localCache: { readonly at: number; readonly set: ReadonlySet<string> } | undefined;

/** Loopback, unspecified, or one of this host's interface addresses (re-read at most every 10 s). */
/** One of this host's own interface addresses, not loopback: where the host's registered workloads listen. */
export function isHostInterfaceAddress(ip: string): boolean {
  const n = normalizeIp(ip);
  return !(n.startsWith('127.') || n === '::1' || n === '0.0.0.0' || n === '::') && isLocalAddress(n);
}

export function isLocalAddress(ip: string): boolean {
  const n = normalizeIp(ip);
  if (n.startsWith('127.') || n === '::1' || n === '0.0.0.0' || n === '::') return true;
  const now = Date.now();
  if (!localCache || now - localCache.at > 10_000) {
    const set = new Set<string>();
    for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) set.add(normalizeIp(a.address));
    localCache = { at: now, set };
  }
  return localCache.set.has(n);
}
