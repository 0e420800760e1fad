import type { Socket } from 'node:net';
import { type ReadSink, type ReusedReads, reusedReadsOf } from '../cluster/connect.js';
import type { UpstreamHost } from '../runtime-types.js';
import { type BodySink, CHUNKED_ERROR, CHUNKED_MORE, ChunkedDecoder } from './chunked.js';
import { stripHopByHop } from './headers.js';
import { enterBatch, exitBatch, Outbox } from './outbox.js';
import { findHeadEnd, MAX_HEAD_BYTES, parseResponseHead } from './parser.js';
import type { BodyMode, UpstreamExchange, UpstreamReceiver } from './upstream.js';

const P_IDLE = 0;
const P_HEAD = 1;
const P_LENGTH = 2;
const P_CHUNKED = 3;
const P_CLOSE = 4;

const CRLF = '\r\n';
const LAST_CHUNK = '0\r\n\r\n';
/**
 * Body bytes read into a reused buffer are copied up to this size (small copies come from Buffer's pool) before
 * they are handed on; larger ones are handed on as they are, and the connection's next read goes to a new buffer.
 */
const COPY_MAX = 4 * 1024;

/** Where an idle connection goes back to, and who hears that it closed. */
export interface ConnOwner {
  release(conn: H1Conn): void;
  closed(conn: H1Conn): void;
}

/**
 * One keep-alive HTTP/1.1 connection to an upstream host: writes a request head and body, reads the response
 * strictly (the upstream is not trusted to frame it right: a connection that misbehaves is never reused), and
 * hands response bytes to the current receiver (copied only when small and read into a reused buffer).
 */
export class H1Conn implements UpstreamExchange, BodySink, ReadSink {
  receiver: UpstreamReceiver | undefined;
  /** Requests started on this connection. */
  requests = 0;
  /** When it last went back to its pool (the pool's clock). */
  idleSince = 0;
  private phase = P_IDLE;
  private mode: BodyMode = 'none';
  private requestDone = true;
  private headRequest = false;
  private upgradeRequest = false;
  private gotBytes = false;
  private keepAlive = true;
  private buf: Buffer | undefined;
  private scanFrom = 0;
  private remaining = 0;
  private decoder: ChunkedDecoder | undefined;
  private dead = false;
  private detached = false;
  /** Reading stopped by the receiver (its client is slow): per exchange, never carried into the pool. */
  private paused = false;
  /** The request goes out through here: head and body in one write when they come together. */
  private readonly out: Outbox;
  /** Set when the socket reads into a reused buffer (plaintext): then `borrowed` while a read is handled. */
  private readonly reads: ReusedReads | undefined;
  private borrowed = false;

  constructor(
    readonly socket: Socket,
    readonly host: UpstreamHost,
    readonly cluster: string,
    private readonly owner: ConnOwner,
  ) {
    this.out = new Outbox(socket);
    this.reads = reusedReadsOf(socket);
    if (this.reads) this.reads.sink = this;
    else socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('close', this.onClose);
    socket.on('error', this.onError);
    socket.on('drain', this.onDrain);
  }

  get alive(): boolean {
    return !this.dead && !this.socket.destroyed && this.socket.writable;
  }

  /** Sends a request head; the body follows through sendBody/endBody unless `mode` is 'none'. */
  start(receiver: UpstreamReceiver, head: string, mode: BodyMode, headRequest: boolean, upgrade: boolean): void {
    this.receiver = receiver;
    this.requests++;
    this.phase = P_HEAD;
    this.mode = mode;
    this.requestDone = mode === 'none';
    this.headRequest = headRequest;
    this.upgradeRequest = upgrade;
    this.gotBytes = false;
    this.keepAlive = true;
    // Queued: the head and the body bytes that come with it leave in one write.
    this.out.str(head);
  }

  get reused(): boolean {
    return this.requests > 1;
  }

  sendBody(chunk: Buffer): boolean {
    if (this.dead || chunk.length === 0) return true;
    const out = this.out;
    if (this.mode !== 'chunked') return out.buf(chunk);
    out.str(chunk.length.toString(16) + CRLF);
    out.buf(chunk);
    return out.str(CRLF);
  }

  endBody(): void {
    if (this.requestDone) return;
    this.requestDone = true;
    if (this.mode === 'chunked' && !this.dead) this.out.str(LAST_CHUNK);
  }

  pause(): void {
    this.paused = true;
    this.socket.pause();
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.socket.resume();
  }

  abort(): void {
    this.receiver = undefined;
    this.destroy();
  }

  destroy(): void {
    this.dead = true;
    this.out.discard();
    this.socket.destroy();
  }

  // Body bytes of a chunked response.
  onBody(chunk: Buffer): void {
    this.receiver?.onUpstreamData(this.keep(chunk));
  }

  /** A read into the connection's reused buffer: views of it are valid until this returns (see keep). */
  onRead(buf: Buffer, n: number): void {
    this.borrowed = true;
    try {
      this.onData(buf.subarray(0, n));
    } finally {
      this.borrowed = false;
    }
  }

  /** What may outlive the current read: small views are copied, larger ones keep the read buffer from reuse. */
  private keep(view: Buffer): Buffer {
    if (!this.borrowed) return view;
    if (view.length <= COPY_MAX) return Buffer.from(view);
    this.reads?.lend();
    return view;
  }

  private readonly onData = (chunk: Buffer): void => {
    this.gotBytes = true;
    if (this.phase === P_IDLE || this.receiver === undefined) {
      // Bytes nobody asked for: the upstream is confused; never reuse it.
      this.destroy();
      return;
    }
    // What this response causes (its bytes to the client, a next pipelined request upstream) leaves in one write each.
    enterBatch();
    try {
      if (this.phase === P_HEAD) this.head(chunk);
      else this.body(chunk, 0);
    } finally {
      exitBatch();
    }
  };

  private head(chunk: Buffer): void {
    let b = chunk;
    if (this.buf) b = Buffer.concat([this.buf, chunk]);
    for (;;) {
      const end = findHeadEnd(b, 0, this.scanFrom, b.length);
      if (typeof end !== 'number') {
        this.protocolError(end.reason);
        return;
      }
      if (end < 0) {
        if (b.length > MAX_HEAD_BYTES) {
          this.protocolError('response head too large');
          return;
        }
        // Kept across reads: never a view of the reused read buffer.
        this.buf = this.borrowed ? Buffer.from(b) : b;
        this.scanFrom = b.length;
        return;
      }
      this.buf = undefined;
      this.scanFrom = 0;
      const h = parseResponseHead(b, 0, end);
      if ('reason' in h) {
        this.protocolError(h.reason);
        return;
      }
      const rest = end < b.length ? b.subarray(end) : undefined;
      const r = this.receiver as UpstreamReceiver;
      if (h.nominated) stripHopByHop(h.names, h.values, h.nominated);
      if (h.status === 101) {
        if (!this.upgradeRequest) {
          this.protocolError('101 without an upgrade request');
          return;
        }
        this.detach();
        r.onUpstreamUpgrade(this.socket, h.names, h.values, rest ? this.keep(rest) : undefined);
        return;
      }
      if (h.status < 200) {
        // Interim responses are not forwarded (Expect was answered by the proxy itself).
        if (!rest) return;
        b = rest;
        continue;
      }
      this.keepAlive = !h.close && h.minor === 1;
      const noBody = this.headRequest || h.status === 204 || h.status === 304;
      let length = -1;
      if (noBody) this.phase = P_IDLE;
      else if (h.chunked) {
        this.phase = P_CHUNKED;
        this.decoder = new ChunkedDecoder();
      } else if (h.closeDelimited || h.contentLength < 0) {
        this.phase = P_CLOSE;
        this.keepAlive = false;
      } else {
        length = h.contentLength;
        this.remaining = length;
        this.phase = length === 0 ? P_IDLE : P_LENGTH;
      }
      r.onUpstreamHead(h.status, h.names, h.values, noBody && h.contentLength >= 0 ? h.contentLength : length, noBody);
      if (this.receiver !== r) return;
      if (this.phase === P_IDLE) {
        if (rest) this.keepAlive = false;
        this.finish(undefined);
        return;
      }
      if (rest) this.body(rest, 0);
      return;
    }
  }

  private body(chunk: Buffer, start: number): void {
    const r = this.receiver as UpstreamReceiver;
    switch (this.phase) {
      case P_LENGTH: {
        const n = chunk.length - start;
        if (n <= this.remaining) {
          this.remaining -= n;
          r.onUpstreamData(this.keep(start === 0 ? chunk : chunk.subarray(start)));
        } else {
          // More than Content-Length said: deliver what belongs to the response, never reuse the connection.
          this.keepAlive = false;
          r.onUpstreamData(this.keep(chunk.subarray(start, start + this.remaining)));
          this.remaining = 0;
        }
        if (this.remaining === 0 && this.receiver === r) this.finish(undefined);
        return;
      }
      case P_CHUNKED: {
        const d = this.decoder as ChunkedDecoder;
        const at = d.push(chunk, start, chunk.length, this);
        if (this.receiver !== r) return;
        if (at === CHUNKED_ERROR) {
          this.protocolError(d.error ?? 'invalid chunked body');
          return;
        }
        if (at === CHUNKED_MORE) return;
        if (at < chunk.length) this.keepAlive = false;
        this.decoder = undefined;
        this.finish(d.trailers);
        return;
      }
      case P_CLOSE:
        r.onUpstreamData(this.keep(start === 0 ? chunk : chunk.subarray(start)));
        return;
    }
  }

  private finish(trailers: import('./parser.js').Fields | undefined): void {
    const r = this.receiver as UpstreamReceiver;
    this.receiver = undefined;
    this.phase = P_IDLE;
    // The receiver may have paused on the response's last bytes (its client still draining them) and is done now:
    // the next exchange, and the idle connection in between (its close, stray bytes), must be read.
    this.resume();
    // A response that came before the whole request body was sent leaves the connection mid-request: close it.
    if (this.keepAlive && this.requestDone && this.alive) this.owner.release(this);
    else this.destroy();
    r.onUpstreamEnd(trailers);
  }

  private protocolError(reason: string): void {
    const r = this.receiver;
    this.receiver = undefined;
    this.destroy();
    r?.onUpstreamError('protocol', `upstream protocol error: ${reason}`, false);
  }

  private detach(): void {
    const s = this.socket;
    this.out.flush();
    s.removeListener('data', this.onData);
    // The tunnel reads the socket through 'data' (the reused-buffer reader copies once nobody sinks it).
    if (this.reads) this.reads.sink = undefined;
    s.removeListener('end', this.onEnd);
    s.removeListener('close', this.onClose);
    s.removeListener('drain', this.onDrain);
    this.receiver = undefined;
    this.dead = true;
    this.detached = true;
    this.owner.closed(this);
  }

  private readonly onEnd = (): void => {
    if (this.phase === P_CLOSE && this.receiver) {
      this.finish(undefined);
      return;
    }
    this.fail('upstream closed the connection');
  };

  private readonly onClose = (): void => {
    this.dead = true;
    if (!this.detached) this.owner.closed(this);
    this.fail('upstream connection closed');
  };

  private readonly onError = (e: NodeJS.ErrnoException): void => {
    this.fail(`upstream connection error: ${e.code ?? e.message}`);
  };

  private fail(detail: string): void {
    const r = this.receiver;
    this.receiver = undefined;
    const race = this.requests > 1 && !this.gotBytes;
    this.destroy();
    r?.onUpstreamError('reset', detail, race);
  }

  private readonly onDrain = (): void => {
    this.receiver?.onUpstreamDrain();
  };
}
