import type { OutgoingHttpHeaders } from 'node:http2';
import type { ClusterConfig } from '../proxy-config.js';
import type { SourceIdentity, UpstreamHost } from '../runtime-types.js';
import type { UpstreamPools } from './pool.js';
import type { BodyMode, ConnectFailure, UpstreamReceiver } from './upstream.js';
import { H1Conn } from './upstream-h1.js';
import { H2Stream } from './upstream-h2.js';

const PENDING_OVERFLOW: ConnectFailure = { ok: false, reason: 'overflow', detail: 'circuit breaker max_pending_requests reached' };

/** The request as it goes upstream, built once per request; attempts differ only in the attempt count (and mirrors in authority). */
export class UpstreamRequest {
  private fields: string | undefined;

  constructor(
    readonly method: string,
    readonly path: string,
    readonly authority: string,
    readonly scheme: string,
    /** End-to-end fields after header operations, lower case; no Host, framing or connection fields. */
    readonly names: readonly string[],
    readonly values: readonly string[],
    readonly mode: BodyMode,
    readonly contentLength: number,
    /** WebSocket upgrade token, forwarded with `connection: upgrade`. */
    readonly upgrade: string | undefined,
    /** The caller's mesh identity: upstream connections are pooled per identity. */
    readonly identity?: SourceIdentity,
  ) {}

  h1Head(attempt: number, authority: string): string {
    let f = this.fields;
    if (f === undefined) {
      f = '';
      const n = this.names;
      const v = this.values;
      for (let k = 0; k < n.length; k++) f += `${n[k] as string}: ${v[k] as string}\r\n`;
      this.fields = f;
    }
    let head = `${this.method} ${this.path} HTTP/1.1\r\nhost: ${authority}\r\n${f}x-envoy-attempt-count: ${attempt}\r\n`;
    if (this.upgrade !== undefined) head += `connection: upgrade\r\nupgrade: ${this.upgrade}\r\n`;
    if (this.mode === 'length') head += `content-length: ${this.contentLength}\r\n`;
    else if (this.mode === 'chunked') head += 'transfer-encoding: chunked\r\n';
    return `${head}\r\n`;
  }

  h2Headers(attempt: number, authority: string): OutgoingHttpHeaders {
    const h: OutgoingHttpHeaders = { ':method': this.method, ':path': this.path, ':authority': authority, ':scheme': this.scheme };
    const n = this.names;
    const v = this.values;
    for (let k = 0; k < n.length; k++) {
      const name = n[k] as string;
      const prev = h[name];
      if (prev === undefined) h[name] = v[k];
      else if (Array.isArray(prev)) prev.push(v[k] as string);
      else h[name] = [String(prev), v[k] as string];
    }
    h['x-envoy-attempt-count'] = String(attempt);
    if (this.mode === 'length') h['content-length'] = String(this.contentLength);
    return h;
  }
}

/**
 * Starts `req` on `host`: an idle keep-alive connection when there is one, else a new connection (counted as a
 * pending request), or a stream on the host's HTTP/2 session. The receiver hears onUpstreamReady or
 * onUpstreamFailure, unless it no longer wants attempt `token` (an unused new connection then joins the pool).
 */
export function dispatch(
  pools: UpstreamPools,
  cfg: ClusterConfig,
  host: UpstreamHost,
  r: UpstreamReceiver,
  req: UpstreamRequest,
  token: number,
  attempt: number,
  authority: string,
): void {
  const pool = pools.pool(cfg.name, host, req.identity);
  if (cfg.http2) {
    pool.session(cfg).whenReady((s) => {
      if (!r.wants(token)) return;
      if ('ok' in s) return r.onUpstreamFailure(s, token);
      const st = H2Stream.open(s, req.h2Headers(attempt, authority), req.mode, r, req.method === 'HEAD');
      if (st instanceof H2Stream) r.onUpstreamReady(st);
      else r.onUpstreamFailure(st, token);
    });
    return;
  }
  const idle = pool.take();
  if (idle) {
    idle.start(r, req.h1Head(attempt, authority), req.mode, req.method === 'HEAD', req.upgrade !== undefined);
    r.onUpstreamReady(idle);
    return;
  }
  const pending = pools.clusters.acquire(cfg.name, 'pending');
  if (!pending) {
    r.onUpstreamFailure(PENDING_OVERFLOW, token);
    return;
  }
  void pool.connect().then((c) => {
    pending();
    if (!(c instanceof H1Conn)) {
      if (r.wants(token)) r.onUpstreamFailure(c, token);
      return;
    }
    if (!r.wants(token)) {
      pool.release(c);
      return;
    }
    c.start(r, req.h1Head(attempt, authority), req.mode, req.method === 'HEAD', req.upgrade !== undefined);
    r.onUpstreamReady(c);
  });
}
