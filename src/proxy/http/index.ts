import type { TLSSocket } from 'node:tls';
import type { NetworkAction } from '../proxy-config.js';
import type { ConnectionContext, HttpHandler, LiveHttpConnection } from '../runtime-types.js';
import type { Core } from './core.js';
import { H1Connection, type H1Owner } from './downstream-h1.js';
import { H2Downstreams } from './downstream-h2.js';
import { VerifyCache } from './jwt-authn.js';
import { UpstreamPools } from './pool.js';
import { RateLimiters } from './rate-limit.js';
import type { HttpHandlerOptions } from './types.js';

export type { HttpHandlerOptions, RequestStats } from './types.js';
export { formatFlags } from './types.js';

type HttpAction = Extract<NetworkAction, { kind: 'http' }>;

/** How often idle downstream and upstream connections are looked for (their timeouts run this much late at most). */
const SWEEP_MS = 500;

function sweep(h: Handler): void {
  h.sweep();
}

/** The HTTP handler plus what its owner needs beyond the HttpHandler seam. */
export interface ProxyHttpHandler extends HttpHandler {
  /** Open downstream connections (HTTP/1.1 connections and HTTP/2 sessions). */
  connections(): number;
  /** Idle upstream keep-alive connections across all pools. */
  idleUpstreamConnections(): number;
  /** Closes everything at once (tests, shutdown after drain). */
  close(): void;
}

class Handler implements ProxyHttpHandler, H1Owner {
  readonly core: Core;
  private readonly h1 = new Set<H1Connection>();
  private readonly h2: H2Downstreams;
  private readonly sweeper: NodeJS.Timeout;

  constructor(opts: HttpHandlerOptions) {
    const now = opts.now ?? (() => performance.now());
    this.core = {
      clusters: opts.clusters,
      pools: new UpstreamPools(opts.clusters),
      config: opts.config,
      logger: opts.logger,
      onRequestDone: opts.onRequestDone,
      now,
      random: opts.random ?? Math.random,
      limiters: new RateLimiters(now),
      jwtCache: new VerifyCache(),
      epochSeconds: () => Math.floor(Date.now() / 1000),
      draining: false,
      clock: now(),
    };
    this.core.pools.clock = this.core.clock;
    this.h2 = new H2Downstreams(this.core);
    this.sweeper = setInterval(sweep, SWEEP_MS, this);
    this.sweeper.unref();
  }

  /** Idle timeouts, for all connections at once rather than a timer per socket re-armed on every read and write. */
  sweep(): void {
    const now = this.core.now();
    // Stamps taken since the last sweep read the clock set then: at most this stale (more when the loop was busy).
    const slack = Math.max(SWEEP_MS, now - this.core.clock);
    this.core.clock = now;
    this.core.pools.clock = now;
    for (const c of this.h1) c.sweep(now, slack);
    this.core.pools.sweep(now, slack);
  }

  handle(ctx: ConnectionContext, action: HttpAction): LiveHttpConnection {
    if ((ctx.socket as TLSSocket).alpnProtocol === 'h2') return this.h2.accept(ctx, action);
    const c = new H1Connection(this, ctx, action);
    this.h1.add(c);
    return c;
  }

  closed(c: H1Connection): void {
    this.h1.delete(c);
  }

  upgradeToH2(ctx: ConnectionContext, action: HttpAction): LiveHttpConnection {
    return this.h2.accept(ctx, action);
  }

  connections(): number {
    return this.h1.size + this.h2.size;
  }

  idleUpstreamConnections(): number {
    return this.core.pools.idleConnections();
  }

  async drain(deadlineMs: number): Promise<void> {
    this.core.draining = true;
    this.core.pools.draining = true;
    for (const c of [...this.h1]) c.drain();
    this.h2.drain();
    this.core.pools.closeIdle();
    const end = Date.now() + Math.max(0, deadlineMs);
    while (this.connections() > 0 && Date.now() < end) {
      await new Promise((r) => setTimeout(r, Math.min(25, Math.max(1, end - Date.now()))));
    }
    this.core.pools.closeIdle();
  }

  close(): void {
    clearInterval(this.sweeper);
    this.core.draining = true;
    this.core.pools.draining = true;
    for (const c of [...this.h1]) c.ctx.socket.destroy();
    this.h2.close();
    this.core.pools.closeIdle();
  }
}

/**
 * The proxy's HTTP layer (Envoy's HttpConnectionManager + router): serves HTTP/1.1 and HTTP/2 on connections the
 * listener manager accepted. `drain(ms)` waits at most `ms` milliseconds.
 */
export function createHttpHandler(opts: HttpHandlerOptions): ProxyHttpHandler {
  return new Handler(opts);
}
