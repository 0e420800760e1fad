import type { Socket } from 'node:net';
import type { OrigDstAddr } from '../../lib/addr.js';
import type { Core } from './core.js';
import { shadowAuthority } from './headers.js';
import type { UpstreamExchange, UpstreamReceiver } from './upstream.js';
import { dispatch, type UpstreamRequest } from './upstream-request.js';

/** Mirrors without a route timeout still give up eventually. */
const DEFAULT_SHADOW_TIMEOUT_MS = 30_000;

function onShadowTimeout(s: Shadow): void {
  s.timedOut();
}

/**
 * A mirrored copy of a request (Envoy's request_mirror_policies): sent to another cluster with `-shadow`
 * appended to the host, fire and forget: its response is read and dropped, failures are silent, and it never
 * delays the real request. Only requests whose whole body was kept (up to 64 KiB) are mirrored.
 */
export class Shadow implements UpstreamReceiver {
  private up: UpstreamExchange | undefined;
  private release: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private parts: readonly Buffer[] | undefined;
  private done = false;

  constructor(
    private readonly core: Core,
    private readonly cluster: string,
    private readonly req: UpstreamRequest,
    private readonly timeoutMs: number,
    private readonly originalDst: OrigDstAddr | undefined,
  ) {}

  send(parts: readonly Buffer[] | undefined): void {
    const clusters = this.core.clusters;
    const cfg = clusters.cluster(this.cluster);
    if (!cfg) return;
    this.release = clusters.acquire(this.cluster, 'request');
    if (!this.release) return;
    const host = clusters.pick(this.cluster, { originalDst: this.originalDst });
    if (!host) {
      this.end();
      return;
    }
    this.parts = parts ? parts.slice() : undefined;
    this.timer = setTimeout(onShadowTimeout, this.timeoutMs > 0 ? this.timeoutMs : DEFAULT_SHADOW_TIMEOUT_MS, this);
    dispatch(this.core.pools, cfg, host, this, this.req, 1, 1, shadowAuthority(this.req.authority));
  }

  timedOut(): void {
    this.timer = undefined;
    this.up?.abort();
    this.end();
  }

  wants(): boolean {
    return !this.done;
  }

  onUpstreamReady(ex: UpstreamExchange): void {
    this.up = ex;
    if (this.parts) for (const p of this.parts) ex.sendBody(p);
    this.parts = undefined;
    if (this.req.mode !== 'none') ex.endBody();
  }

  onUpstreamFailure(): void {
    this.end();
  }

  onUpstreamHead(): void {}

  onUpstreamData(): void {}

  onUpstreamEnd(): void {
    this.end();
  }

  onUpstreamError(): void {
    this.end();
  }

  onUpstreamDrain(): void {}

  onUpstreamUpgrade(socket: Socket): void {
    socket.destroy();
    this.end();
  }

  private end(): void {
    if (this.done) return;
    this.done = true;
    this.up = undefined;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const r = this.release;
    this.release = undefined;
    r?.();
  }
}
