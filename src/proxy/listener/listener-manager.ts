import { createServer, type Server, type Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import { type OrigDstAddr, type RemoteAddr, socketAddr, toLocal, toOrigDst, toRemote } from '../../lib/addr.js';
import { ErrorCode, isVmeshError, vmeshError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import { localSocketOwner, originalDst as nativeOriginalDst } from '../../lib/native.js';
import type { DownstreamTls, ListenerConfig, ProxyConfig, SecretStore } from '../proxy-config.js';
import { type ClusterManager, type ConnectionContext, type HttpHandler, type SourceIdentity, uidSecretName } from '../runtime-types.js';
import { proxyTcp, type TcpConnectionInfo, type TcpConnectionStats, type TcpProxyDeps } from '../tcp/tcp-proxy.js';
import { linkRawSocket, peerSpiffeId, peerVerified, TlsContexts } from '../tls/contexts.js';
import { type SniffOptions, type SniffResult, sniffTransport } from '../tls/sniff.js';
import { type ChainInputs, selectFilterChain } from './chains.js';
import { type LiveConnection, recheckConnections } from './drain.js';
import { hostHasIpv6, listenFamilies } from './families.js';

export interface ListenerManagerOptions {
  readonly clusters: ClusterManager;
  readonly secrets: SecretStore;
  readonly http: HttpHandler;
  readonly logger: Logger;
  /** Overrides every listener's address (tests: 127.0.0.1). */
  readonly bindHost?: string;
  /** Maps a configured port to the one bound (tests: 15001/15006 to free ports, 0 for any). */
  readonly portMap?: (port: number) => number;
  /** TLS inspection bounds (first byte 100 ms, whole ClientHello 5 s, 16 KiB). */
  readonly sniff?: SniffOptions;
  /** Downstream TLS handshakes that take longer are closed (default 10 s). */
  readonly tlsHandshakeTimeoutMs?: number;
  /** Where a redirected connection was going; defaults to SO_ORIGINAL_DST through the native addon. */
  readonly originalDst?: (socket: Socket) => OrigDstAddr | undefined;
  /** TCP proxy telemetry: a connection started / ended (bytes, duration, response flags). */
  readonly onConnectionOpened?: (info: TcpConnectionInfo) => void;
  readonly onConnectionClosed?: (stats: TcpConnectionStats) => void;
  readonly random?: () => number;
  /** A wildcard IPv4 listener also listens on `[::]` (default: when the host has an IPv6 address). */
  readonly ipv6?: boolean;
}

/** A bound listener as the agent sees it: capture redirects IPv6 only to a port that listens on IPv6. */
export interface ListeningPort {
  readonly name: string;
  readonly port: number;
  readonly ipv6: boolean;
}

interface Bound {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly servers: readonly Server[];
  readonly boundPort: number;
  readonly ipv6: boolean;
  /** The listener's current config; a connection keeps the one it was accepted with. */
  config: ListenerConfig;
}

const noop = () => {};

/**
 * The proxy's listeners: binds what the config says, accepts connections, hands captured ones to the
 * virtual listener of their original destination, picks a filter chain (TLS inspection when asked),
 * terminates TLS, and runs the chain's network action (HTTP handler or TCP proxy). A config swap drains the open
 * connections the new config no longer admits (listener/drain.ts); the others keep the ProxyConfig they were
 * accepted under.
 */
export class ListenerManager {
  private config: ProxyConfig | undefined;
  private readonly bound = new Map<string, Bound>();
  private readonly sockets = new Set<Socket>();
  private readonly tcpSockets = new Set<Socket>();
  /** Open connections past chain selection, by raw socket: what a config swap re-checks. */
  private readonly live = new Map<Socket, LiveConnection>();
  private active = 0;
  private readonly contexts: TlsContexts;
  private readonly tcpDeps: TcpProxyDeps;
  private readonly readOriginalDst: (socket: Socket) => OrigDstAddr | undefined;
  private stopped = false;
  private applying: Promise<void> = Promise.resolve();

  constructor(private readonly opts: ListenerManagerOptions) {
    this.contexts = new TlsContexts(opts.secrets);
    this.tcpDeps = {
      clusters: opts.clusters,
      logger: opts.logger,
      ...(opts.onConnectionOpened ? { onOpened: opts.onConnectionOpened } : {}),
      ...(opts.onConnectionClosed ? { onClosed: opts.onConnectionClosed } : {}),
      ...(opts.random ? { random: opts.random } : {}),
    };
    this.readOriginalDst = opts.originalDst ?? nativeReader(opts.logger);
  }

  /**
   * Applies a config: clusters first (Envoy warms CDS before LDS), then listeners: new ones are bound,
   * removed ones stop accepting, moved ones are rebound. Throws VMESH_ERR_UNAVAILABLE naming the listeners
   * that could not be bound; everything else is applied all the same.
   */
  apply(config: ProxyConfig): Promise<void> {
    // Applies run one at a time, in order: a bind in flight must not race the next config's.
    const run = this.applying.then(() => this.applyNow(config));
    this.applying = run.catch(noop);
    return run;
  }

  private async applyNow(config: ProxyConfig): Promise<void> {
    if (this.stopped) throw vmeshError(ErrorCode.Unavailable, 'listener manager is draining or closed: config not applied');
    this.opts.clusters.update(config);
    this.config = config;
    const wanted = [...config.listeners.values()].filter((l) => l.bindToPort);
    const names = new Set(wanted.map((l) => l.name));
    for (const [name, b] of this.bound) {
      const l = config.listeners.get(name);
      if (!names.has(name) || !l || this.hostOf(l) !== b.host || this.portOf(l) !== b.port) {
        for (const s of b.servers) s.close();
        this.bound.delete(name);
      }
    }
    const failures: string[] = [];
    await Promise.all(
      wanted.map(async (l) => {
        const b = this.bound.get(l.name);
        if (b) {
          b.config = l;
          return;
        }
        try {
          this.bound.set(l.name, await this.bind(l));
        } catch (e) {
          failures.push(`${l.name} on ${this.hostOf(l)}:${this.portOf(l)}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
        }
      }),
    );
    recheckConnections(this.live.values(), config, this.opts.logger);
    if (failures.length > 0) {
      throw vmeshError(ErrorCode.Unavailable, `listeners not bound: ${failures.join('; ')}`, { version: config.version, failures });
    }
  }

  /** Downstream connections open now (telemetry). */
  activeConnections(): number {
    return this.active;
  }

  listening(): ListeningPort[] {
    return [...this.bound.values()].map((b) => ({ name: b.name, port: b.boundPort, ipv6: b.ipv6 }));
  }

  /** Stops accepting, then waits (at most `ms`) for HTTP to go idle and TCP proxy connections to end. */
  async drain(ms: number): Promise<void> {
    this.stopped = true;
    for (const b of this.bound.values()) for (const s of b.servers) s.close();
    this.bound.clear();
    const deadline = Date.now() + ms;
    const tcpIdle = (async () => {
      while (this.tcpSockets.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, Math.min(50, ms)));
    })();
    await Promise.all([this.opts.http.drain(ms), tcpIdle]);
  }

  /** Stops listening and closes every connection it accepted. The cluster manager is the caller's to close. */
  close(): void {
    this.stopped = true;
    for (const b of this.bound.values()) for (const s of b.servers) s.close();
    this.bound.clear();
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    this.contexts.close();
  }

  private hostOf(l: ListenerConfig): string {
    return this.opts.bindHost ?? l.address;
  }

  private portOf(l: ListenerConfig): number {
    return this.opts.portMap ? this.opts.portMap(l.port) : l.port;
  }

  private async bind(l: ListenerConfig): Promise<Bound> {
    const host = this.hostOf(l);
    const port = this.portOf(l);
    const bound = await listenFamilies(() => createServer({ allowHalfOpen: true, noDelay: true }), host, port, {
      ipv6: this.opts.ipv6 ?? hostHasIpv6(),
      onIpv6Error: (e) => this.opts.logger.info({ listener: l.name, err: e.code ?? e.message }, 'listener serves IPv4 only: no IPv6'),
    });
    const b: Bound = { name: l.name, host, port, servers: bound.servers, boundPort: bound.port, ipv6: bound.ipv6, config: l };
    for (const server of bound.servers) {
      server.on('error', (e) => this.opts.logger.error({ listener: l.name, err: e.message }, 'listener error'));
      server.on('connection', (raw: Socket) => this.accept(b, raw));
    }
    this.opts.logger.info({ listener: l.name, address: host, port: b.boundPort, ipv6: b.ipv6 }, 'listener bound');
    return b;
  }

  /**
   * Who opened a captured connection: the uid owning the application's end of it (one sock_diag lookup), as the
   * workload certificate the agent serves for that uid. A uid with none, or a socket not found, has no identity.
   */
  private sourceIdentity(remote: RemoteAddr, od: OrigDstAddr): SourceIdentity {
    let uid: number | undefined;
    try {
      uid = localSocketOwner(remote, od);
    } catch (e) {
      this.opts.logger.debug({ err: (e as Error).message }, 'socket owner lookup failed');
      return null;
    }
    if (uid === undefined) return null;
    const name = uidSecretName(uid);
    return this.opts.secrets.tlsCertificate(name) ? name : null;
  }

  private accept(b: Bound, raw: Socket): void {
    const config = this.config;
    if (!config) {
      raw.destroy();
      return;
    }
    this.sockets.add(raw);
    this.active++;
    raw.on('error', noop);
    raw.once('close', () => {
      this.active--;
      this.sockets.delete(raw);
      this.tcpSockets.delete(raw);
      this.live.delete(raw);
    });
    this.serve(raw, b.config, config).catch((e: unknown) => {
      this.opts.logger.warn({ listener: b.name, err: (e as Error).message }, 'connection setup failed');
      raw.destroy();
    });
  }

  private async serve(raw: Socket, accepted: ListenerConfig, config: ProxyConfig): Promise<void> {
    // The connection's addresses, branded once here; the rest of the proxy gets them as they are.
    const local = toLocal(socketAddr(raw.localAddress ?? '', raw.localPort ?? 0));
    const remote = toRemote(socketAddr(raw.remoteAddress ?? '', raw.remotePort ?? 0));
    const od = this.readOriginalDst(raw);
    // Not redirected: the client was going where it arrived.
    const dst = od ?? toOrigDst(local);
    let listener = accepted;
    let sourceIdentity: SourceIdentity | undefined;
    if (accepted.useOriginalDst && od) {
      // Only a destination the kernel reported is a real captured local caller (tests inject theirs).
      if (!this.opts.originalDst) sourceIdentity = this.sourceIdentity(remote, od);
      // The virtual listener of the exact destination, else the port's wildcard one, else this listener itself.
      listener = config.virtualByAddress.get(`${od.address}:${od.port}`) ?? config.virtualByAddress.get(`0.0.0.0:${od.port}`) ?? accepted;
    }
    let sniff: SniffResult | undefined;
    if (listener.inspectTls) {
      sniff = await sniffTransport(raw, this.opts.sniff);
      if (sniff.closed) return void raw.destroy();
    }
    const inputs: ChainInputs = {
      dst,
      ...(sniff?.sni !== undefined ? { sni: sniff.sni } : {}),
      transport: sniff?.transport ?? 'raw_buffer',
      alpn: sniff?.alpn ?? [],
    };
    const chain = selectFilterChain(listener, inputs);
    if (!chain) {
      this.opts.logger.debug({ listener: listener.name, dst, transport: sniff?.transport }, 'no filter chain matched: closing');
      return void raw.destroy();
    }
    let socket: Socket = raw;
    let peerIdentity: string | undefined;
    if (chain.tls) {
      // The ClientHello's ALPN decides what the server may select (Node fails the handshake on no overlap).
      sniff ??= await sniffTransport(raw, this.opts.sniff);
      if (sniff.closed) return void raw.destroy();
      const t = await this.terminate(raw, chain.tls, sniff.alpn, listener.name);
      if (!t) return;
      socket = t.socket;
      peerIdentity = t.peerIdentity;
    }
    const ctx: ConnectionContext = {
      socket,
      listener,
      chain,
      originalDst: dst,
      remote,
      local,
      ...(peerIdentity ? { peerIdentity } : {}),
      ...(sourceIdentity !== undefined ? { sourceIdentity } : {}),
      tls: chain.tls !== undefined,
      config,
    };
    if (raw.destroyed) return;
    const live: LiveConnection = { listener: listener.name, inputs, tls: ctx.tls, remote, socket, chain };
    if (peerIdentity) live.peerIdentity = peerIdentity;
    this.live.set(raw, live);
    if (chain.action.kind === 'http') {
      live.http = this.opts.http.handle(ctx, chain.action);
      return;
    }
    this.tcpSockets.add(raw);
    proxyTcp(ctx, chain.action, this.tcpDeps);
  }

  private terminate(
    raw: Socket,
    cfg: DownstreamTls,
    offered: readonly string[],
    listener: string,
  ): Promise<{ socket: TLSSocket; peerIdentity?: string } | undefined> {
    const context = this.contexts.server(cfg);
    if (!context.ok) {
      this.opts.logger.warn({ listener, err: context.error }, 'cannot terminate TLS: closing the connection');
      raw.destroy();
      return Promise.resolve(undefined);
    }
    const selected = cfg.alpn.find((p) => offered.includes(p));
    // A trust bundle means client certificates are asked for; require_client_certificate makes them mandatory.
    const requestCert = cfg.requireClientCert || cfg.caSecret !== undefined;
    const tls = new TLSSocket(raw, {
      isServer: true,
      secureContext: context.value,
      requestCert,
      rejectUnauthorized: cfg.requireClientCert,
      ...(selected ? { ALPNProtocols: [selected] } : {}),
    });
    linkRawSocket(tls, raw);
    this.sockets.add(tls);
    tls.once('close', () => this.sockets.delete(tls));
    return new Promise((resolve) => {
      const fail = (why: string) => {
        clearTimeout(timer);
        this.opts.logger.debug({ listener, remote: raw.remoteAddress, why }, 'downstream TLS refused');
        tls.destroy();
        raw.destroy();
        resolve(undefined);
      };
      const timer = setTimeout(() => fail('handshake timeout'), this.opts.tlsHandshakeTimeoutMs ?? 10_000);
      const onError = (e: Error) => fail(e.message.split('\n')[0] ?? 'TLS error');
      tls.once('error', onError);
      tls.once('secure', () => {
        const verified = requestCert ? peerVerified(tls) : { ok: false, error: 'no client certificate requested' };
        if (cfg.requireClientCert && !verified.ok) return fail(`client certificate rejected: ${verified.error ?? ''}`);
        clearTimeout(timer);
        tls.removeListener('error', onError);
        tls.on('error', noop);
        // A server-side TLSSocket made over an accepted socket keeps secureConnecting set after 'secure', and
        // Http2Session then waits for a 'secureConnect' that servers never emit: HTTP/2 over mTLS would hang.
        (tls as unknown as { secureConnecting: boolean }).secureConnecting = false;
        const id = verified.ok ? peerSpiffeId(tls.getPeerCertificate()) : undefined;
        resolve(id ? { socket: tls, peerIdentity: id } : { socket: tls });
      });
    });
  }
}

/** SO_ORIGINAL_DST through the native addon; without the addon, connections count as not redirected. */
function nativeReader(logger: Logger): (socket: Socket) => OrigDstAddr | undefined {
  let unavailable = false;
  return (socket) => {
    if (unavailable) return undefined;
    try {
      const r = nativeOriginalDst(socket);
      return r.ok ? toOrigDst(socketAddr(r.value.address, r.value.port)) : undefined;
    } catch (e) {
      if (isVmeshError(e) && e.code === ErrorCode.NativeUnavailable) {
        unavailable = true;
        logger.warn({ err: e.message }, 'native addon unavailable: original destinations cannot be read');
      }
      return undefined;
    }
  };
}
