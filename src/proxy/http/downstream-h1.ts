import type { Socket } from 'node:net';
import type { NetworkAction } from '../proxy-config.js';
import type { ConnectionContext, LiveHttpConnection } from '../runtime-types.js';
import { type BodySink, CHUNKED_ERROR, CHUNKED_MORE, ChunkedDecoder } from './chunked.js';
import type { Core } from './core.js';
import { Exchange } from './exchange.js';
import { getHeader, isGrpc, statusLine } from './headers.js';
import { enterBatch, exitBatch, Outbox } from './outbox.js';
import { type Fields, findHeadEnd, type HeadError, MAX_HEAD_BYTES, parseRequestHead, type RequestHead } from './parser.js';
import { type Downstream, Flag, type RequestStats } from './types.js';

type HttpAction = Extract<NetworkAction, { kind: 'http' }>;

const S_HEAD = 0;
const S_LENGTH = 1;
const S_CHUNKED = 2;
const S_TUNNEL = 3;
const S_CLOSED = 4;

/** Request bodies still unread when the response ends are read and dropped up to this size; larger ones close. */
const MAX_DISCARD = 64 * 1024;
/** Keep-alive connections with no request in flight are closed after this long (Envoy: stream idle timeout). */
export const IDLE_TIMEOUT_MS = 300_000;
const TUNNEL_IDLE_MS = 3_600_000;
/** After a closing response, unread input is drained this long so the kernel does not reset the response away. */
const LINGER_MS = 2_000;
const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

export interface H1Owner {
  readonly core: Core;
  closed(c: H1Connection): void;
  /** The client speaks HTTP/2 with prior knowledge: hand the socket (bytes pushed back) over. */
  upgradeToH2(ctx: ConnectionContext, action: HttpAction): LiveHttpConnection;
}

function destroySocket(s: Socket): void {
  s.destroy();
}

/**
 * One downstream HTTP/1.1 connection: parses request heads strictly, frames request bodies (Content-Length or
 * chunked, re-framed for the upstream), runs one Exchange at a time (pipelined requests wait their turn, so
 * responses keep their order), writes responses, and closes on any framing doubt. After a 101 it becomes a
 * byte tunnel.
 */
export class H1Connection implements Downstream, BodySink, LiveHttpConnection {
  private buf: Buffer | undefined;
  private off = 0;
  private scanFrom = 0;
  private state = S_HEAD;
  private x: Exchange | undefined;
  private remaining = 0;
  private decoder: ChunkedDecoder | undefined;
  private reqDone = true;
  private closeAfter = false;
  private minor: 0 | 1 = 1;
  private chunkedOut = false;
  private processing = false;
  private firstBytes = true;
  private inputPaused = false;
  /** The client half-closed: finish what it sent, then close. */
  private inputEnded = false;
  /** Last input, or the end of the last response (the core's coarse clock): the owner's sweep closes idle connections. */
  private lastActive: number;
  private readonly socket: Socket;
  /** Everything written to the client goes through here: one write per batch. */
  private readonly out: Outbox;
  /** The HTTP/2 session this connection became (prior knowledge): drains and rebinds go there. */
  private h2: LiveHttpConnection | undefined;

  constructor(
    private readonly owner: H1Owner,
    readonly ctx: ConnectionContext,
    private action: HttpAction,
  ) {
    const s = ctx.socket;
    this.socket = s;
    this.out = new Outbox(s);
    s.on('data', this.onData);
    s.on('end', this.onEnd);
    s.on('close', this.onClose);
    s.on('error', this.onError);
    s.on('drain', this.onDrain);
    // No socket timer (it would be re-armed on every read and write): the owner sweeps idle connections.
    this.lastActive = owner.core.clock;
    s.resume();
  }

  /**
   * Closes the connection when no request is in flight and nothing happened for IDLE_TIMEOUT_MS; `slack` is how
   * stale the clock of the stamps may be (never early, at most that late).
   */
  sweep(now: number, slack: number): void {
    if (this.x === undefined && this.state !== S_TUNNEL && this.state !== S_CLOSED && now - this.lastActive >= IDLE_TIMEOUT_MS + slack) {
      this.destroy();
    }
  }

  /** Idle: no request in flight and nothing buffered. */
  get idle(): boolean {
    return this.x === undefined && this.state === S_HEAD && (this.buf === undefined || this.off >= this.buf.length);
  }

  /** Drain: close now when idle, else after the response in flight. */
  drain(): void {
    if (this.h2) {
      this.h2.drain();
      return;
    }
    if (this.state === S_CLOSED) return;
    if (this.idle) this.closeNow();
    else this.closeAfter = true;
  }

  rebind(action: HttpAction): void {
    this.action = action;
    this.h2?.rebind(action);
  }

  // ---- input ----

  private readonly onData = (chunk: Buffer): void => {
    if (this.state === S_CLOSED) return;
    this.lastActive = this.owner.core.clock;
    enterBatch();
    try {
      this.data(chunk);
    } finally {
      exitBatch();
    }
  };

  private data(chunk: Buffer): void {
    const b = this.buf;
    if (b === undefined || this.off >= b.length) {
      this.buf = chunk;
      this.scanFrom = 0;
    } else {
      this.buf = Buffer.concat([b.subarray(this.off), chunk]);
      this.scanFrom = Math.max(0, this.scanFrom - this.off);
    }
    this.off = 0;
    if (this.firstBytes && this.x === undefined && this.checkPreface()) return;
    this.process();
  }

  /** HTTP/2 prior knowledge: the connection preface instead of a request line. */
  private checkPreface(): boolean {
    const b = this.buf as Buffer;
    const n = Math.min(b.length, H2_PREFACE.length);
    if (b.compare(H2_PREFACE, 0, n, 0, n) !== 0) {
      this.firstBytes = false;
      return false;
    }
    if (n < H2_PREFACE.length) return true;
    this.detach();
    // Paused first: a flowing socket would emit the pushed-back bytes to no listener.
    this.socket.pause();
    this.socket.unshift(b);
    this.buf = undefined;
    this.h2 = this.owner.upgradeToH2(this.ctx, this.action);
    return true;
  }

  private process(): void {
    if (this.processing) return;
    this.processing = true;
    try {
      this.loop();
    } finally {
      this.processing = false;
    }
    if (this.inputEnded && this.state !== S_CLOSED && this.state !== S_TUNNEL) {
      // Nothing more will arrive: an unfinished body can never complete; an idle connection is done.
      if (!this.reqDone) {
        const x = this.x;
        this.x = undefined;
        if (x && !x.finished) x.onDownstreamAbort();
        this.closeNow();
      } else if (this.x === undefined) this.closeNow();
    }
  }

  private loop(): void {
    for (;;) {
      const b = this.buf;
      if (b === undefined || this.off >= b.length || this.state === S_CLOSED || this.state === S_TUNNEL) return;
      if (this.state === S_HEAD) {
        if (this.x !== undefined) {
          // A pipelined request waits for the response before it; stop reading if it piles up.
          if (b.length - this.off > MAX_HEAD_BYTES) this.pauseInput();
          return;
        }
        if (!this.head(b)) return;
      } else if (this.state === S_LENGTH) {
        const avail = b.length - this.off;
        const n = avail < this.remaining ? avail : this.remaining;
        const slice = b.subarray(this.off, this.off + n);
        this.off += n;
        this.remaining -= n;
        this.x?.onRequestBody(slice);
        if (this.remaining === 0) this.bodyDone(undefined);
      } else {
        const d = this.decoder as ChunkedDecoder;
        const at = d.push(b, this.off, b.length, this);
        if (at === CHUNKED_ERROR) {
          this.bodyError(d.error ?? 'invalid chunked body');
          return;
        }
        if (at === CHUNKED_MORE) {
          this.off = b.length;
          return;
        }
        this.off = at;
        this.bodyDone(d.trailers);
      }
    }
  }

  onBody(chunk: Buffer): void {
    this.x?.onRequestBody(chunk);
  }

  /** Parses one head from the buffer; false when more bytes are needed or the connection failed. */
  private head(b: Buffer): boolean {
    let start = this.off;
    // RFC 9112 2.2: empty lines before a request line are ignored.
    while (start + 1 < b.length && b[start] === 13 && b[start + 1] === 10) start += 2;
    if (start !== this.off) {
      this.off = start;
      this.scanFrom = Math.max(this.scanFrom, start);
    }
    if (start >= b.length || (start + 1 === b.length && b[start] === 13)) return false;
    const end = findHeadEnd(b, start, this.scanFrom, b.length);
    if (typeof end !== 'number') return this.reject(end);
    if (end < 0) {
      if (b.length - start > MAX_HEAD_BYTES) return this.reject({ status: 431, reason: 'request head too large' });
      // A CR followed by anything but LF can never end a line: refuse now rather than wait for a head end.
      for (let i = b.indexOf(13, Math.max(start, this.scanFrom - 1)); i >= 0 && i + 1 < b.length; i = b.indexOf(13, i + 1)) {
        if (b[i + 1] !== 10) return this.reject({ status: 400, reason: 'bare CR in head' });
      }
      this.scanFrom = b.length;
      return false;
    }
    if (end - start > MAX_HEAD_BYTES) return this.reject({ status: 431, reason: 'request head too large' });
    const h = parseRequestHead(b, start, end);
    if ('reason' in h) return this.reject(h);
    this.off = end;
    this.scanFrom = end;
    this.begin(h);
    return true;
  }

  private begin(h: RequestHead): void {
    this.minor = h.minor;
    if (h.close || h.method === 'CONNECT') this.closeAfter = true;
    if (h.chunked) {
      this.state = S_CHUNKED;
      this.decoder = new ChunkedDecoder();
      this.reqDone = false;
    } else if (h.contentLength > 0) {
      this.state = S_LENGTH;
      this.remaining = h.contentLength;
      this.reqDone = false;
    } else this.reqDone = true;
    this.chunkedOut = false;
    const x = new Exchange(
      this.owner.core,
      this.ctx,
      this.action,
      this,
      h,
      h.minor === 1 ? 'HTTP/1.1' : 'HTTP/1.0',
      isGrpc(getHeader(h.names, h.values, 'content-type')),
    );
    this.x = x;
    x.begin();
  }

  private bodyDone(trailers: Fields | undefined): void {
    this.state = S_HEAD;
    this.decoder = undefined;
    this.reqDone = true;
    const x = this.x;
    if (x && !x.finished) x.onRequestEnd(trailers);
    else if (x) this.x = undefined;
  }

  private bodyError(reason: string): void {
    const x = this.x;
    this.x = undefined;
    if (x && !x.finished) {
      x.flags |= Flag.DPE;
      const responded = x.responded;
      x.onDownstreamAbort();
      if (responded) {
        this.closeNow();
        return;
      }
    }
    this.sendError(400, reason);
  }

  /** A head that cannot be parsed safely: answer and close (nothing after it can be trusted to be framed right). */
  private reject(e: HeadError): false {
    this.sendError(e.status, e.reason);
    const cb = this.owner.core.onRequestDone;
    if (cb) {
      try {
        cb(this.errorStats(e.status));
      } catch (err) {
        this.owner.core.logger.warn({ err }, 'onRequestDone callback threw');
      }
    }
    return false;
  }

  private sendError(status: number, reason: string): void {
    if (this.state === S_CLOSED) return;
    const body = `${reason}\n`;
    this.out.str(`${statusLine(status)}content-type: text/plain\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`);
    this.closeNow();
  }

  private errorStats(status: number): RequestStats {
    return {
      method: '-',
      path: '-',
      authority: '-',
      protocol: 'HTTP/1.1',
      status,
      responseFlags: 'DPE',
      bytesIn: 0,
      bytesOut: 0,
      durationMs: 0,
      upstreamHost: undefined,
      cluster: undefined,
      routeName: undefined,
      peerIdentity: this.ctx.peerIdentity,
      downstreamRemote: this.ctx.remote,
      requestId: undefined,
      attempts: 0,
      statPrefix: this.action.statPrefix,
    };
  }

  // ---- Downstream (responses) ----

  respondHead(status: number, names: readonly string[], values: readonly string[], contentLength: number, noBody: boolean): void {
    if (this.state === S_CLOSED) return;
    let head = statusLine(status);
    for (let k = 0; k < names.length; k++) head += `${names[k] as string}: ${values[k] as string}\r\n`;
    this.chunkedOut = false;
    if (noBody) {
      if (contentLength >= 0 && status !== 204) head += `content-length: ${contentLength}\r\n`;
    } else if (contentLength >= 0) head += `content-length: ${contentLength}\r\n`;
    else if (this.minor === 1) {
      head += 'transfer-encoding: chunked\r\n';
      this.chunkedOut = true;
    } else this.closeAfter = true;
    if (!this.reqDone && !this.canDiscard()) this.closeAfter = true;
    if (this.owner.core.draining) this.closeAfter = true;
    if (this.closeAfter) head += 'connection: close\r\n\r\n';
    else if (this.minor === 0) head += 'connection: keep-alive\r\n\r\n';
    else head += '\r\n';
    // Queued: the body that usually follows in the same event leaves in the same write.
    this.out.str(head);
  }

  private canDiscard(): boolean {
    return this.state === S_LENGTH && this.remaining <= MAX_DISCARD && !(this.x?.info.expectContinue ?? false);
  }

  respondData(chunk: Buffer): boolean {
    if (this.state === S_CLOSED) return true;
    const out = this.out;
    if (!this.chunkedOut) return out.buf(chunk);
    if (chunk.length === 0) return !this.socket.writableNeedDrain;
    out.str(`${chunk.length.toString(16)}\r\n`);
    out.buf(chunk);
    return out.str('\r\n');
  }

  respondEnd(trailers: Fields | undefined): void {
    if (this.state === S_CLOSED) return;
    if (this.chunkedOut) {
      let end = '0\r\n';
      if (trailers)
        for (let k = 0; k < trailers.names.length; k++) end += `${trailers.names[k] as string}: ${trailers.values[k] as string}\r\n`;
      this.out.str(`${end}\r\n`);
    }
    this.chunkedOut = false;
    if (this.closeAfter) {
      this.x = undefined;
      this.closeNow();
      return;
    }
    // The request body may still be arriving (an early response): it is read and dropped, then the next request.
    if (this.reqDone) this.x = undefined;
    this.lastActive = this.owner.core.clock;
    this.resumeInput();
    this.process();
  }

  abortResponse(): void {
    this.x = undefined;
    this.destroy();
  }

  pauseRequestBody(): void {
    this.pauseInput();
  }

  resumeRequestBody(): void {
    this.resumeInput();
  }

  sendContinue(): void {
    if (this.state !== S_CLOSED && this.minor === 1) this.out.str('HTTP/1.1 100 Continue\r\n\r\n');
  }

  tunnel(upstream: Socket, head: string, rest: Buffer | undefined): void {
    const s = this.socket;
    const x = this.x;
    this.state = S_TUNNEL;
    this.out.str(head);
    if (rest) this.out.buf(rest);
    // From here on bytes are piped: what is queued must go first.
    this.out.flush();
    const b = this.buf;
    if (b && this.off < b.length) upstream.write(b.subarray(this.off));
    this.buf = undefined;
    s.removeListener('data', this.onData);
    s.removeListener('end', this.onEnd);
    s.removeListener('drain', this.onDrain);
    s.on('timeout', this.onTimeout);
    s.setTimeout(TUNNEL_IDLE_MS);
    upstream.setTimeout(TUNNEL_IDLE_MS);
    upstream.on('timeout', () => upstream.destroy());
    upstream.on('error', () => upstream.destroy());
    upstream.on('close', () => s.destroy());
    s.on('close', () => upstream.destroy());
    s.pipe(upstream);
    upstream.pipe(s);
    this.inputPaused = false;
    s.resume();
    upstream.resume();
    x?.finish();
    this.x = undefined;
  }

  // ---- connection ----

  private pauseInput(): void {
    if (this.inputPaused) return;
    this.inputPaused = true;
    this.socket.pause();
  }

  private resumeInput(): void {
    if (!this.inputPaused || this.state === S_CLOSED) return;
    this.inputPaused = false;
    this.socket.resume();
  }

  private readonly onEnd = (): void => {
    if (this.state === S_CLOSED) return;
    // Half-close: requests already sent are answered (pipelined ones included), then the connection closes.
    this.inputEnded = true;
    enterBatch();
    try {
      this.process();
    } finally {
      exitBatch();
    }
  };

  private readonly onClose = (): void => {
    const x = this.x;
    this.x = undefined;
    this.state = S_CLOSED;
    this.out.discard();
    if (x && !x.finished) x.onDownstreamAbort();
    this.owner.closed(this);
  };

  private readonly onError = (): void => {
    this.destroy();
  };

  private readonly onDrain = (): void => {
    this.x?.onDownstreamDrain();
  };

  private readonly onTimeout = (): void => {
    if (this.state === S_TUNNEL) this.destroy();
  };

  /** Ends the connection after what was written; unread input is drained briefly so the response is not reset away. */
  private closeNow(): void {
    if (this.state === S_CLOSED) return;
    this.state = S_CLOSED;
    this.buf = undefined;
    const s = this.socket;
    this.out.flush();
    s.end();
    this.inputPaused = false;
    s.resume();
    setTimeout(destroySocket, LINGER_MS, s).unref();
  }

  private destroy(): void {
    this.state = S_CLOSED;
    this.buf = undefined;
    this.out.discard();
    this.socket.destroy();
  }

  private detach(): void {
    const s = this.socket;
    s.removeListener('data', this.onData);
    s.removeListener('end', this.onEnd);
    s.removeListener('close', this.onClose);
    s.removeListener('error', this.onError);
    s.removeListener('drain', this.onDrain);
    s.removeListener('timeout', this.onTimeout);
    s.setTimeout(0);
    this.state = S_CLOSED;
    this.owner.closed(this);
  }
}
