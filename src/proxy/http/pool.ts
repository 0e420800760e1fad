import type { ClusterConfig } from '../proxy-config.js';
import type { ClusterManager, SourceIdentity, UpstreamHost } from '../runtime-types.js';
import type { ConnectFailure } from './upstream.js';
import { type ConnOwner, H1Conn } from './upstream-h1.js';
import { H2Client } from './upstream-h2.js';

const DEFAULT_IDLE_MS = 60_000;
const H1_ALPN = ['http/1.1'];

/** Keep-alive connections (HTTP/1.1) and the shared session (HTTP/2) of one upstream host of one cluster. */
export class HostPool implements ConnOwner {
  readonly idle: H1Conn[] = [];
  h2: H2Client | undefined;
  /** Live HTTP/1.1 connections, idle or busy. */
  conns = 0;
  private readonly keyInCluster: string;

  constructor(
    private readonly pools: UpstreamPools,
    readonly cluster: string,
    readonly host: UpstreamHost,
    readonly identity: SourceIdentity | undefined,
  ) {
    this.keyInCluster = host.key;
  }

  /** A live idle connection, most recently used first (older ones time out). */
  take(): H1Conn | undefined {
    const idle = this.idle;
    while (idle.length > 0) {
      const c = idle.pop() as H1Conn;
      if (c.alive) return c;
      c.destroy();
    }
    return undefined;
  }

  async connect(): Promise<H1Conn | ConnectFailure> {
    const r = await this.pools.clusters.connect(this.cluster, this.host, { alpn: H1_ALPN, identity: this.identity });
    if (!r.ok) return r;
    this.conns++;
    return new H1Conn(r.socket, this.host, this.cluster, this);
  }

  release(conn: H1Conn): void {
    const cfg = this.pools.clusters.cluster(this.cluster);
    if (
      this.pools.draining ||
      cfg === undefined ||
      (cfg.maxRequestsPerConnection !== undefined && conn.requests >= cfg.maxRequestsPerConnection)
    ) {
      conn.destroy();
      return;
    }
    // No socket timer per request: the handler's sweep closes connections idle for longer than the cluster allows.
    conn.idleSince = this.pools.clock;
    this.idle.push(conn);
  }

  /** Closes idle connections unused for `idleMs` or more (the oldest are first in the list). */
  sweep(now: number, idleMs: number): void {
    const idle = this.idle;
    let n = 0;
    while (n < idle.length && now - (idle[n] as H1Conn).idleSince >= idleMs) n++;
    if (n === 0) return;
    for (const c of idle.splice(0, n)) c.destroy();
  }

  closed(conn: H1Conn): void {
    this.conns--;
    const i = this.idle.indexOf(conn);
    if (i >= 0) this.idle.splice(i, 1);
    this.pools.maybeForget(this);
  }

  /** HTTP/2: the host's session, opened on first use and replaced once it closes or goes away. */
  session(cfg: ClusterConfig): H2Client {
    let s = this.h2;
    if (!s?.usable) {
      s = new H2Client(this.pools.clusters, this.cluster, this.host, cfg, this.identity, () => {
        if (this.h2 === s) this.h2 = undefined;
        this.pools.maybeForget(this);
      });
      this.h2 = s;
    }
    return s;
  }

  get empty(): boolean {
    return this.conns === 0 && this.h2 === undefined;
  }

  get key(): string {
    return this.keyInCluster;
  }

  closeIdle(): void {
    for (const c of this.idle.splice(0)) c.destroy();
    this.h2?.close();
  }
}

/**
 * Every upstream pool of the handler, by caller identity, cluster, then host key (map lookups, no key strings
 * built per request). Connections carry the caller's certificate, so callers of different identities never share one.
 */
export class UpstreamPools {
  private readonly byIdentity = new Map<SourceIdentity | undefined, Map<string, Map<string, HostPool>>>();
  draining = false;

  /** Coarse monotonic milliseconds, set by the owner's sweep: idle stamps. */
  clock = 0;

  constructor(readonly clusters: ClusterManager) {}

  /**
   * Closes keep-alive connections idle for longer than their cluster's idle timeout (60 s by default). `slack` is
   * how stale the clock may be: a connection is never closed early, at most that late.
   */
  sweep(now: number, slack: number): void {
    for (const p of this.all()) {
      if (p.idle.length === 0) continue;
      p.sweep(now, (this.clusters.cluster(p.cluster)?.idleTimeoutMs ?? DEFAULT_IDLE_MS) + slack);
    }
  }

  pool(cluster: string, host: UpstreamHost, identity?: SourceIdentity): HostPool {
    let byCluster = this.byIdentity.get(identity);
    if (!byCluster) {
      byCluster = new Map();
      this.byIdentity.set(identity, byCluster);
    }
    let hosts = byCluster.get(cluster);
    if (!hosts) {
      hosts = new Map();
      byCluster.set(cluster, hosts);
    }
    let p = hosts.get(host.key);
    if (!p) {
      p = new HostPool(this, cluster, host, identity);
      hosts.set(host.key, p);
    }
    return p;
  }

  /** Drops a pool with nothing left in it, so hosts that left the config do not accumulate. */
  maybeForget(p: HostPool): void {
    if (!p.empty) return;
    const byCluster = this.byIdentity.get(p.identity);
    const hosts = byCluster?.get(p.cluster);
    if (!byCluster || hosts?.get(p.key) !== p) return;
    hosts.delete(p.key);
    if (hosts.size === 0) byCluster.delete(p.cluster);
    if (byCluster.size === 0) this.byIdentity.delete(p.identity);
  }

  idleConnections(): number {
    let n = 0;
    for (const p of this.all()) n += p.idle.length;
    return n;
  }

  private *all(): Iterable<HostPool> {
    for (const byCluster of this.byIdentity.values()) for (const hosts of byCluster.values()) yield* hosts.values();
  }

  closeIdle(): void {
    for (const p of [...this.all()]) p.closeIdle();
  }
}
