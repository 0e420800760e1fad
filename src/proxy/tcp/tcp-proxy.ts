import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { OrigDstAddr, RemoteAddr } from '../../lib/addr.js';
import type { Logger } from '../../lib/logger.js';
import { type ConnectionAttributes, connectionAttribute, type MetricTags, metricTags } from '../http/stat-tags.js';
import { evaluateRbac } from '../match/rbac-eval.js';
import type { NetworkAction } from '../proxy-config.js';
import type { ClusterManager, ConnectionContext, UpstreamHost } from '../runtime-types.js';
import { resetSocket } from '../tls/contexts.js';

export type TcpAction = Extract<NetworkAction, { kind: 'tcp' }>;

/** Envoy's TCP proxy default idle timeout (1 h). */
const DEFAULT_IDLE_MS = 3_600_000;

/** One finished TCP proxy connection, for telemetry (access log, byte and connection counters). */
export interface TcpConnectionStats {
  readonly listener: string;
  readonly chain: string;
  readonly statPrefix: string;
  /** Unset when the connection was refused before a cluster was chosen (RBAC). */
  readonly cluster?: string;
  readonly upstreamHost?: string;
  readonly downstreamRemote: RemoteAddr;
  readonly originalDst: OrigDstAddr;
  readonly peerIdentity?: string;
  readonly upstreamPeerIdentity?: string;
  /** Bytes the downstream client sent (and were forwarded upstream), after TLS decryption. */
  readonly bytesReceived: number;
  /** Bytes sent to the downstream client. */
  readonly bytesSent: number;
  readonly startTime: number;
  readonly durationMs: number;
  /**
   * Envoy response flags: `-` none, `UH` no healthy upstream, `UF` upstream connection failure (incl. TLS),
   * `UO` circuit breaker overflow, `NC` no cluster, `UC` upstream reset, `DC` downstream reset.
   */
  readonly flags: string;
  /** Why it ended, when not plainly: `rbac_access_denied_matched_policy[...]`, `idle_timeout`, a connect error. */
  readonly detail?: string;
  /** This side's workload identity (SDS secret name), as in RequestStats. */
  readonly localIdentity?: string | null;
  /** SNI the client sent (TLS connections). */
  readonly serverName?: string;
  /** The Telemetry metric tag values of this connection, when its chain overrides metrics. */
  readonly metricTags?: MetricTags;
}

/** A connection the TCP proxy took on: reported once its cluster and upstream host are chosen (or it was refused). */
export interface TcpConnectionInfo {
  readonly listener: string;
  readonly chain: string;
  readonly statPrefix: string;
  readonly cluster?: string;
  readonly upstreamHost?: string;
  readonly peerIdentity?: string;
  readonly localIdentity?: string | null;
  readonly metricTags?: MetricTags;
}

export interface TcpProxyDeps {
  readonly clusters: ClusterManager;
  readonly logger: Logger;
  readonly onOpened?: (info: TcpConnectionInfo) => void;
  readonly onClosed?: (stats: TcpConnectionStats) => void;
  readonly random?: () => number;
}

/**
 * tcp_proxy: network RBAC, a weighted cluster, an upstream from the cluster manager, then bytes both ways
 * with backpressure (pipe), half-close passed through, resets propagated, and an idle timeout.
 */
export function proxyTcp(ctx: ConnectionContext, action: TcpAction, deps: TcpProxyDeps): void {
  const down = ctx.socket;
  const start = Date.now();
  const s = {
    cluster: undefined as string | undefined,
    host: undefined as string | undefined,
    upPeer: undefined as string | undefined,
    flags: '-',
    detail: undefined as string | undefined,
    rx: 0,
    tx: 0,
  };
  const localIdentity = ctx.sourceIdentity !== undefined ? ctx.sourceIdentity : ctx.chain.tls?.certSecret;
  // Connection attributes only: a TCP connection has no request, so request.* and response.* tags are `unknown`.
  const tags = () => {
    if (!action.stats) return {};
    const c: ConnectionAttributes = {
      source: ctx.remote,
      destination: ctx.originalDst,
      mtls: ctx.peerIdentity !== undefined,
      serverName: ctx.tls ? (ctx.socket as TLSSocket).servername || undefined : undefined,
      upstreamHost: s.host,
      cluster: s.cluster,
    };
    return { metricTags: metricTags(action.stats, { attribute: (n) => connectionAttribute(c, n), header: () => undefined }) };
  };
  let opened = false;
  const open = () => {
    if (opened || !deps.onOpened) return;
    opened = true;
    deps.onOpened({
      listener: ctx.listener.name,
      chain: ctx.chain.name,
      statPrefix: action.statPrefix,
      ...(s.cluster ? { cluster: s.cluster } : {}),
      ...(s.host ? { upstreamHost: s.host } : {}),
      ...(ctx.peerIdentity ? { peerIdentity: ctx.peerIdentity } : {}),
      ...(localIdentity !== undefined ? { localIdentity } : {}),
      ...tags(),
    });
  };
  down.once('close', () => {
    open();
    deps.onClosed?.({
      listener: ctx.listener.name,
      chain: ctx.chain.name,
      statPrefix: action.statPrefix,
      ...(s.cluster ? { cluster: s.cluster } : {}),
      ...(s.host ? { upstreamHost: s.host } : {}),
      downstreamRemote: ctx.remote,
      originalDst: ctx.originalDst,
      ...(ctx.peerIdentity ? { peerIdentity: ctx.peerIdentity } : {}),
      ...(s.upPeer ? { upstreamPeerIdentity: s.upPeer } : {}),
      bytesReceived: s.rx,
      bytesSent: s.tx,
      startTime: start,
      durationMs: Date.now() - start,
      flags: s.flags,
      ...(s.detail ? { detail: s.detail } : {}),
      ...(localIdentity !== undefined ? { localIdentity } : {}),
      ...(ctx.tls && (ctx.socket as TLSSocket).servername ? { serverName: (ctx.socket as TLSSocket).servername as string } : {}),
      ...tags(),
    });
  });
  const refuse = (flags: string, detail: string) => {
    s.flags = flags;
    s.detail = detail;
    deps.logger.debug({ listener: ctx.listener.name, chain: ctx.chain.name, flags, detail }, 'tcp proxy refused a connection');
    down.destroy();
  };

  if (action.rbac.length > 0) {
    const decision = evaluateRbac(action.rbac, {
      ...(ctx.peerIdentity ? { peerIdentity: ctx.peerIdentity } : {}),
      remote: ctx.remote,
      originalDst: ctx.originalDst,
    });
    if (!decision.allowed) {
      refuse('-', `rbac_access_denied_matched_policy[${decision.policy ?? 'none'}]`);
      return;
    }
  }
  const cluster = pickCluster(action.clusters, deps.random ?? Math.random);
  if (!cluster || !deps.clusters.cluster(cluster)) {
    refuse('NC', `no cluster ${cluster ?? ''} configured`);
    return;
  }
  s.cluster = cluster;
  const host = deps.clusters.pick(cluster, { originalDst: ctx.originalDst, hashKey: ctx.remote.address });
  if (!host) {
    refuse('UH', `cluster ${cluster} has no healthy upstream`);
    return;
  }
  s.host = host.key;
  open();
  void deps.clusters.connect(cluster, host, ctx.sourceIdentity !== undefined ? { identity: ctx.sourceIdentity } : undefined).then((r) => {
    if (!r.ok) {
      const flags = r.reason === 'overflow' ? 'UO' : r.reason === 'blackhole' ? 'UH' : 'UF';
      return refuse(flags, r.detail);
    }
    if (r.peerIdentity) s.upPeer = r.peerIdentity;
    if (down.destroyed) {
      r.socket.destroy();
      return;
    }
    // For TCP a proxied connection is the unit of load (LEAST_REQUEST), when the cluster manager counts load.
    const counter = deps.clusters as ClusterManager & { beginRequest?: (cluster: string, host: UpstreamHost) => () => void };
    if (counter.beginRequest) r.socket.once('close', counter.beginRequest(cluster, host));
    splice(down, r.socket, action.idleTimeoutMs ?? DEFAULT_IDLE_MS, s);
  });
}

/** Weighted choice among the action's clusters. */
export function pickCluster(list: TcpAction['clusters'], random: () => number): string | undefined {
  if (list.length <= 1) return list[0]?.name;
  let total = 0;
  for (const c of list) total += c.weight;
  let r = random() * total;
  for (const c of list) {
    r -= c.weight;
    if (r < 0) return c.name;
  }
  return list[list.length - 1]?.name;
}

interface SpliceStats {
  flags: string;
  detail: string | undefined;
  rx: number;
  tx: number;
}

/**
 * Bytes one way with backpressure: what `pipe` does, without its per-chunk bookkeeping and a second 'data'
 * listener for the byte count. Chunks go on as read (no copy); reading stops while the other side's buffer is full.
 */
class Relay {
  constructor(
    private readonly src: Socket,
    private readonly dst: Socket,
    private readonly stats: SpliceStats,
    /** Counts into `rx` (client to upstream) or `tx`. */
    private readonly received: boolean,
  ) {
    src.on('data', this.onData);
    src.on('end', this.onEnd);
    dst.on('drain', this.onDrain);
  }

  private readonly onData = (chunk: Buffer): void => {
    if (this.received) this.stats.rx += chunk.length;
    else this.stats.tx += chunk.length;
    const dst = this.dst;
    if (dst.destroyed) return;
    if (!dst.write(chunk)) this.src.pause();
  };

  private readonly onDrain = (): void => {
    this.src.resume();
  };

  // Half-close passes through: the other side may still answer.
  private readonly onEnd = (): void => {
    if (!this.dst.destroyed) this.dst.end();
  };
}

function splice(down: Socket, up: Socket, idleMs: number, s: SpliceStats): void {
  new Relay(down, up, s, true);
  new Relay(up, down, s, false);
  // Activity either way reads from or writes to the downstream socket, so its timer is the connection's idle timer.
  if (idleMs > 0) {
    down.setTimeout(idleMs, () => {
      s.detail = 'idle_timeout';
      down.destroy();
      up.destroy();
    });
  }
  down.on('error', () => {
    if (s.flags === '-') s.flags = 'DC';
    resetSocket(up);
  });
  up.on('error', () => {
    if (s.flags === '-') s.flags = 'UC';
    resetSocket(down);
  });
  // A side that closes cleanly has finished both ways; if the other still has data coming, it was cut off.
  down.once('close', () => closeOther(up));
  up.once('close', () => closeOther(down));
}

function closeOther(other: Socket): void {
  if (other.destroyed) return;
  if (other.readableEnded) other.end();
  else other.destroy();
}
