import type { Socket } from 'node:net';
import type { ClusterConfig, RetryPolicy, RouteAction } from '../proxy-config.js';
import type { Outcome, UpstreamHost } from '../runtime-types.js';
import type { ForwardOwner } from './core.js';
import { corsResponseHeaders } from './cors.js';
import { applyHeaderOps, hasOps, statusLine, stripHopByHop } from './headers.js';
import type { Fields } from './parser.js';
import { backoffMs, hashKeyOf, type ResetKind, retryOnReset, retryOnResponse } from './retry.js';
import { Shadow } from './shadow.js';
import { Flag } from './types.js';
import type { ConnectFailure, UpstreamExchange, UpstreamReceiver } from './upstream.js';
import { dispatch, type UpstreamRequest } from './upstream-request.js';

type Forward = Extract<RouteAction, { kind: 'forward' }>;

/** Request bodies up to this size are kept for retries and mirrors; larger ones stream through once. */
export const MAX_REPLAY_BYTES = 64 * 1024;

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);
const RESET_BEFORE_HEADERS = 'upstream connect error or disconnect/reset before headers. reset reason: ';
const TIMEOUT_BODY = 'upstream request timeout';
const GRPC_DEADLINE_EXCEEDED = 4;

/** Response outcomes for the outlier detector, one shared record per status (read only). */
const RESPONSE_OUTCOMES: Outcome[] = [];
function responseOutcome(status: number): Outcome {
  let o = RESPONSE_OUTCOMES[status];
  if (o === undefined) {
    o = { kind: 'response', status };
    RESPONSE_OUTCOMES[status] = o;
  }
  return o;
}

function onTryTimeout(f: Forwarder): void {
  f.tryTimedOut();
}
function onRouteTimeout(f: Forwarder): void {
  f.routeTimedOut();
}
function onBackoff(f: Forwarder): void {
  f.attempt();
}

/**
 * Forwards one request to its cluster: host pick, pooled connection or HTTP/2 stream, the body streamed with
 * backpressure both ways, per-try and route timeouts, retries with backoff (bodies up to 64 KiB are kept for
 * them), circuit breakers, outlier reports and mirrors. Everything it answers goes through its Exchange.
 */
export class Forwarder implements UpstreamReceiver {
  private up: UpstreamExchange | undefined;
  private token = 0;
  private host: UpstreamHost | undefined;
  /** Hosts tried before this attempt (retry_host_predicate previous_hosts); made only when a retry happens. */
  private tried: Set<string> | undefined;
  private lastTried: string | undefined;
  private retries = 0;
  private readonly parts: Buffer[];
  private sent = 0;
  private unsentBytes = 0;
  private bodyBytes = 0;
  private replayable = true;
  private endSent = false;
  private upPaused = false;
  private readPaused = false;
  private downPaused = false;
  private releaseRequest: (() => void) | undefined;
  private releaseRetry: (() => void) | undefined;
  private tryTimer: NodeJS.Timeout | undefined;
  private routeTimer: NodeJS.Timeout | undefined;
  private backoffTimer: NodeJS.Timeout | undefined;
  private responseStarted = false;
  private done = false;
  private raceRetried = false;
  private readonly retry: RetryPolicy | undefined;
  private hashKey: string | undefined;
  private shadows: Shadow[] | undefined;

  constructor(
    private readonly x: ForwardOwner,
    private readonly cfg: ClusterConfig,
    private readonly a: Forward,
    private readonly req: UpstreamRequest,
    pending: Buffer[] | undefined,
    private bodyEnded: boolean,
  ) {
    this.retry = a.retry && a.retry.numRetries > 0 ? a.retry : undefined;
    this.parts = pending ?? [];
    for (const p of this.parts) this.bodyBytes += p.length;
    this.unsentBytes = this.bodyBytes;
    if (this.bodyBytes > MAX_REPLAY_BYTES) this.replayable = false;
  }

  begin(): void {
    const a = this.a;
    const core = this.x.core;
    if (a.hashPolicy.length > 0) this.hashKey = hashKeyOf(a.hashPolicy, this.x);
    for (const m of a.mirrors) {
      if (m.fraction < 1 && core.random() >= m.fraction) continue;
      const s = new Shadow(core, m.cluster, this.req, a.timeoutMs, this.x.conn.originalDst);
      if (this.req.mode === 'none') s.send(undefined);
      else {
        if (!this.shadows) this.shadows = [];
        this.shadows.push(s);
      }
    }
    if (this.bodyEnded) this.bodyComplete();
    this.attempt();
  }

  attempt(): void {
    this.backoffTimer = undefined;
    if (this.done) return;
    const x = this.x;
    const clusters = x.core.clusters;
    const name = this.cfg.name;
    this.token++;
    x.attempts++;
    this.releaseRequest = clusters.acquire(name, 'request');
    if (!this.releaseRequest) {
      this.overflow();
      return;
    }
    if (this.lastTried !== undefined) {
      if (!this.tried) this.tried = new Set();
      this.tried.add(this.lastTried);
    }
    const host = clusters.pick(name, { hashKey: this.hashKey, originalDst: x.conn.originalDst, exclude: this.tried });
    if (!host) {
      this.giveUp(503, 'no healthy upstream', Flag.UH);
      return;
    }
    this.host = host;
    x.upstreamHost = host.key;
    // previous_hosts: Istio leaves it out for consistent hashing, where the request belongs on its host.
    if (this.retry && this.a.hashPolicy.length === 0) this.lastTried = host.key;
    const perTry = this.retry?.perTryTimeoutMs;
    if (perTry !== undefined && perTry > 0) this.tryTimer = setTimeout(onTryTimeout, perTry, this);
    dispatch(x.core.pools, this.cfg, host, this, this.req, this.token, x.attempts, this.req.authority);
  }

  // ---- request body ----

  onBody(chunk: Buffer): void {
    if (this.done) return;
    this.bodyBytes += chunk.length;
    this.parts.push(chunk);
    this.unsentBytes += chunk.length;
    if (this.replayable && this.bodyBytes > MAX_REPLAY_BYTES) {
      this.replayable = false;
      this.shadows = undefined;
    }
    if (this.up) this.flush();
    else if (this.unsentBytes > MAX_REPLAY_BYTES && !this.readPaused) {
      this.readPaused = true;
      this.x.down.pauseRequestBody();
    }
  }

  onBodyEnd(): void {
    if (this.done) return;
    this.bodyEnded = true;
    this.bodyComplete();
    this.flush();
  }

  private bodyComplete(): void {
    const shadows = this.shadows;
    this.shadows = undefined;
    if (shadows && this.replayable) for (const s of shadows) s.send(this.parts);
    const t = this.a.timeoutMs;
    // Envoy's route timeout runs from the end of the request to the end of the response.
    if (t > 0 && !this.routeTimer) this.routeTimer = setTimeout(onRouteTimeout, t, this);
  }

  private flush(): void {
    const up = this.up;
    if (!up || this.upPaused) return;
    const parts = this.parts;
    while (this.sent < parts.length) {
      const c = parts[this.sent++] as Buffer;
      this.unsentBytes -= c.length;
      if (!up.sendBody(c)) {
        this.upPaused = true;
        break;
      }
    }
    if (!this.replayable && this.sent > 0) {
      parts.splice(0, this.sent);
      this.sent = 0;
    }
    if (this.upPaused) {
      if (!this.readPaused) {
        this.readPaused = true;
        this.x.down.pauseRequestBody();
      }
      return;
    }
    if (this.readPaused) {
      this.readPaused = false;
      this.x.down.resumeRequestBody();
    }
    if (this.bodyEnded && this.sent === parts.length && !this.endSent && this.req.mode !== 'none') {
      this.endSent = true;
      up.endBody();
    }
  }

  onDownstreamDrain(): void {
    if (!this.downPaused) return;
    this.downPaused = false;
    this.up?.resume();
  }

  // ---- UpstreamReceiver ----

  wants(token: number): boolean {
    return token === this.token && !this.done && this.up === undefined;
  }

  onUpstreamReady(ex: UpstreamExchange): void {
    this.up = ex;
    this.upPaused = false;
    this.endSent = false;
    this.sent = 0;
    this.unsentBytes = 0;
    for (const p of this.parts) this.unsentBytes += p.length;
    this.flush();
  }

  onUpstreamFailure(f: ConnectFailure, token: number): void {
    if (token !== this.token || this.done) return;
    this.clearTryTimer();
    this.releaseAttempt();
    switch (f.reason) {
      case 'overflow':
        this.overflow();
        return;
      case 'no_healthy_upstream':
      case 'blackhole':
        this.giveUp(503, 'no healthy upstream', Flag.UH);
        return;
      default:
        if (this.retryAfterReset('connect')) return;
        this.x.core.logger.debug({ cluster: this.cfg.name, detail: f.detail }, 'upstream connect failed');
        this.giveUp(
          503,
          `${RESET_BEFORE_HEADERS}connection failure${f.reason === 'tls_error' ? `, transport failure reason: ${f.detail}` : ''}`,
          Flag.UF,
        );
        return;
    }
  }

  onUpstreamHead(status: number, names: string[], values: string[], contentLength: number, noBody: boolean): void {
    if (this.done) return;
    const retry = this.retry;
    if (retry && retryOnResponse(retry, status, names, values)) {
      if (this.canRetry()) {
        this.report(responseOutcome(status));
        this.abandonAttempt();
        this.scheduleRetry();
        return;
      }
      if (this.retries >= retry.numRetries) this.x.flags |= Flag.URX;
    }
    this.report(responseOutcome(status));
    this.clearTryTimer();
    this.responseStarted = true;
    const x = this.x;
    x.status = status;
    x.responded = true;
    stripHopByHop(names, values);
    const ops = x.route?.responseHeaders;
    if (hasOps(ops)) applyHeaderOps(ops, names, values);
    if (x.cors) corsResponseHeaders(x.cors, names, values);
    x.down.respondHead(status, names, values, contentLength, noBody);
  }

  onUpstreamData(chunk: Buffer): void {
    if (this.done) return;
    this.x.bytesOut += chunk.length;
    if (!this.x.down.respondData(chunk) && !this.downPaused) {
      this.downPaused = true;
      this.up?.pause();
    }
  }

  onUpstreamEnd(trailers: Fields | undefined): void {
    if (this.done) return;
    this.up = undefined;
    if (trailers) stripHopByHop(trailers.names, trailers.values);
    this.x.down.respondEnd(trailers);
    this.complete();
  }

  onUpstreamError(kind: 'reset' | 'protocol' | 'refused', detail: string, raceOnReuse: boolean): void {
    if (this.done) return;
    this.up = undefined;
    this.clearTryTimer();
    this.report({ kind: 'error', error: 'reset' });
    if (this.responseStarted) {
      this.x.flags |= Flag.UR;
      this.x.down.abortResponse();
      this.complete();
      return;
    }
    this.releaseAttempt();
    // A keep-alive connection the upstream closed just as it was reused: nothing was answered, and an idempotent
    // request may be sent again (RFC 9110 9.2.2), as clients do on their own reused connections.
    if (raceOnReuse && this.replayable && !this.raceRetried && IDEMPOTENT.has(this.req.method)) {
      this.raceRetried = true;
      this.token++;
      this.attempt();
      return;
    }
    const resetKind: ResetKind = kind === 'refused' ? 'refused' : 'reset';
    if (this.retryAfterReset(resetKind)) return;
    this.x.core.logger.debug({ cluster: this.cfg.name, detail }, 'upstream reset before response');
    if (kind === 'protocol') {
      this.giveUp(502, `${RESET_BEFORE_HEADERS}protocol error`, Flag.UPE);
      return;
    }
    if (kind === 'refused') {
      this.giveUp(503, `${RESET_BEFORE_HEADERS}remote refused stream reset`, Flag.UR);
      return;
    }
    this.giveUp(503, `${RESET_BEFORE_HEADERS}connection termination`, Flag.UC);
  }

  onUpstreamDrain(): void {
    if (this.done || !this.upPaused) return;
    this.upPaused = false;
    this.flush();
  }

  onUpstreamUpgrade(socket: Socket, names: string[], values: string[], rest: Buffer | undefined): void {
    if (this.done) {
      socket.destroy();
      return;
    }
    this.report(responseOutcome(101));
    this.clearTimers();
    this.releaseAttempt();
    this.responseStarted = true;
    this.done = true;
    const x = this.x;
    x.status = 101;
    x.responded = true;
    stripHopByHop(names, values);
    const ops = x.route?.responseHeaders;
    if (hasOps(ops)) applyHeaderOps(ops, names, values);
    let head = statusLine(101);
    for (let k = 0; k < names.length; k++) head += `${names[k] as string}: ${values[k] as string}\r\n`;
    head += `connection: upgrade\r\nupgrade: ${this.req.upgrade ?? 'websocket'}\r\n\r\n`;
    x.down.tunnel(socket, head, rest);
  }

  // ---- timeouts, retries, endings ----

  tryTimedOut(): void {
    this.tryTimer = undefined;
    if (this.done || this.responseStarted) return;
    this.report({ kind: 'error', error: 'timeout' });
    this.abandonAttempt();
    if (this.retryAfterReset('timeout')) return;
    this.giveUp(504, TIMEOUT_BODY, Flag.UT, GRPC_DEADLINE_EXCEEDED);
  }

  routeTimedOut(): void {
    this.routeTimer = undefined;
    if (this.done) return;
    this.x.flags |= Flag.UT;
    if (this.up && !this.responseStarted) this.report({ kind: 'error', error: 'timeout' });
    this.abandonAttempt();
    if (this.responseStarted) {
      this.x.down.abortResponse();
      this.complete();
      return;
    }
    this.giveUp(504, TIMEOUT_BODY, Flag.UT, GRPC_DEADLINE_EXCEEDED);
  }

  /** The client left: stop everything upstream. */
  cancel(): void {
    if (this.done) return;
    this.abandonAttempt();
    this.complete();
  }

  /** Retries when the policy covers this failure; marks URX when it would have but the retries are spent. */
  private retryAfterReset(kind: ResetKind): boolean {
    const r = this.retry;
    if (!r || !retryOnReset(r, kind)) return false;
    if (this.canRetry()) {
      this.scheduleRetry();
      return true;
    }
    if (this.retries >= r.numRetries) this.x.flags |= Flag.URX;
    return false;
  }

  private canRetry(): boolean {
    const r = this.retry;
    if (!r || this.retries >= r.numRetries || !this.replayable || this.responseStarted || this.req.upgrade !== undefined) return false;
    const rel = this.x.core.clusters.acquire(this.cfg.name, 'retry');
    if (!rel) return false;
    this.releaseRetry?.();
    this.releaseRetry = rel;
    return true;
  }

  private scheduleRetry(): void {
    this.retries++;
    this.releaseAttempt();
    const r = this.retry as RetryPolicy;
    const delay = backoffMs(r, this.retries, this.x.core.random());
    this.backoffTimer = setTimeout(onBackoff, delay, this);
  }

  private report(outcome: Outcome): void {
    if (this.host) this.x.core.clusters.report(this.cfg.name, this.host, outcome);
  }

  private overflow(): void {
    this.giveUp(503, `${RESET_BEFORE_HEADERS}overflow`, Flag.UO, undefined, 'x-envoy-overloaded');
  }

  private giveUp(status: number, body: string, flag: number, grpcStatus?: number, overloaded?: string): void {
    this.abandonAttempt();
    this.cleanup();
    this.x.localReply(status, body, flag, overloaded, overloaded ? 'true' : undefined, grpcStatus);
  }

  /** Drops the current attempt: its connection is closed (or stream reset) and late callbacks for it are ignored. */
  private abandonAttempt(): void {
    this.token++;
    const up = this.up;
    this.up = undefined;
    this.upPaused = false;
    up?.abort();
    this.clearTryTimer();
    this.releaseAttempt();
  }

  private releaseAttempt(): void {
    const rel = this.releaseRequest;
    this.releaseRequest = undefined;
    rel?.();
  }

  private clearTryTimer(): void {
    if (this.tryTimer) {
      clearTimeout(this.tryTimer);
      this.tryTimer = undefined;
    }
  }

  private clearTimers(): void {
    this.clearTryTimer();
    if (this.routeTimer) clearTimeout(this.routeTimer);
    if (this.backoffTimer) clearTimeout(this.backoffTimer);
    this.routeTimer = undefined;
    this.backoffTimer = undefined;
  }

  private cleanup(): void {
    this.done = true;
    this.clearTimers();
    this.releaseAttempt();
    const rr = this.releaseRetry;
    this.releaseRetry = undefined;
    rr?.();
    this.shadows = undefined;
    this.parts.length = 0;
    if (this.readPaused) {
      this.readPaused = false;
      this.x.down.resumeRequestBody();
    }
  }

  private complete(): void {
    this.cleanup();
    this.x.finish();
  }
}
