import type { Socket } from 'node:net';

/**
 * Write batching for HTTP/1.1 sockets. A response (or request) is usually a head and a small body produced within
 * one event: written one by one they cost one syscall and one TCP segment each (sockets run with TCP_NODELAY), and
 * a corked socket still pays Node's per-write bookkeeping and a writev of mixed strings. An Outbox collects what is
 * written during one batch and sends it as a single Buffer write (or one writev when large).
 *
 * A batch is the handling of one socket event (the connections' data handlers open one with enterBatch/exitBatch);
 * output produced anywhere else (timers, promise callbacks, HTTP/2 events) is flushed at the end of the tick.
 */

/** Up to this many buffered bytes are copied into one Buffer; more go out as one writev of the parts. */
const COALESCE_MAX = 16 * 1024;
/** Buffered bytes at which the outbox writes at once rather than at the end of the batch. */
const FLUSH_AT = 16 * 1024;

/**
 * Buffer's latin1 writer without Buffer#write's argument juggling (Node has it on every Buffer; typed apart here
 * because @types/node does not list it), with the documented call as the fallback.
 */
type Latin1Write = (this: Buffer, s: string, offset: number) => number;
const latin1Write: Latin1Write =
  (Buffer.prototype as unknown as { latin1Write?: Latin1Write }).latin1Write ??
  function (this: Buffer, s: string, offset: number): number {
    return this.write(s, offset, 'latin1');
  };

let depth = 0;
let tickScheduled = false;
/** Outboxes with queued output: dirty[0, dirtyCount). */
const dirty: Array<Outbox | undefined> = [];
let dirtyCount = 0;

function flushDirty(): void {
  // flush() never queues (socket writes report errors asynchronously), but stay safe if it ever does.
  for (let i = 0; i < dirtyCount; i++) {
    const o = dirty[i] as Outbox;
    dirty[i] = undefined;
    o.flushQueued();
  }
  dirtyCount = 0;
}

function onTick(): void {
  tickScheduled = false;
  if (depth === 0) flushDirty();
}

/** Opens a batch: output queued until the matching exitBatch goes out then, one write per socket. */
export function enterBatch(): void {
  depth++;
}

export function exitBatch(): void {
  if (--depth === 0 && dirtyCount > 0) flushDirty();
}

/** Pending output of one socket: latin1 strings (heads, chunk framing) and body Buffers, in order. */
export class Outbox {
  /** parts[0, n): slots are reused (emptied, never truncated: setting an array's length is a runtime call). */
  private readonly parts: Array<string | Buffer | undefined> = [];
  private n = 0;
  private bytes = 0;
  private queued = false;

  constructor(private readonly socket: Socket) {}

  get pending(): number {
    return this.bytes;
  }

  /**
   * Queues a latin1 string. Returns false when the caller should wait for the socket's 'drain' (the same
   * contract as socket.write).
   */
  str(s: string): boolean {
    if (s.length === 0) return !this.socket.writableNeedDrain;
    this.parts[this.n++] = s;
    this.bytes += s.length;
    return this.queue();
  }

  buf(b: Buffer): boolean {
    if (b.length === 0) return !this.socket.writableNeedDrain;
    this.parts[this.n++] = b;
    this.bytes += b.length;
    return this.queue();
  }

  private queue(): boolean {
    if (this.bytes >= FLUSH_AT) return this.flush();
    if (!this.queued) {
      this.queued = true;
      dirty[dirtyCount++] = this;
      if (depth === 0 && !tickScheduled) {
        tickScheduled = true;
        process.nextTick(onTick);
      }
    }
    // Bytes written earlier may have filled the socket: its 'drain' will come, so the caller may wait for it.
    return !this.socket.writableNeedDrain;
  }

  /** Called from the dirty list. */
  flushQueued(): void {
    this.queued = false;
    this.flush();
  }

  /** Writes everything queued now; false when the socket asks the writer to wait for 'drain'. */
  flush(): boolean {
    const parts = this.parts;
    const n = this.n;
    if (n === 0) return !this.socket.writableNeedDrain;
    const s = this.socket;
    const total = this.bytes;
    this.bytes = 0;
    this.n = 0;
    if (s.destroyed) {
      for (let i = 0; i < n; i++) parts[i] = undefined;
      return true;
    }
    let more: boolean;
    if (n === 1) {
      const p = parts[0] as string | Buffer;
      parts[0] = undefined;
      more = typeof p === 'string' ? s.write(p, 'latin1') : s.write(p);
    } else if (total <= COALESCE_MAX) {
      const out = Buffer.allocUnsafe(total);
      let at = 0;
      for (let i = 0; i < n; i++) {
        const p = parts[i] as string | Buffer;
        parts[i] = undefined;
        if (typeof p === 'string') at += latin1Write.call(out, p, at);
        else {
          out.set(p, at);
          at += p.length;
        }
      }
      more = s.write(out);
    } else {
      s.cork();
      for (let i = 0; i < n; i++) {
        const p = parts[i] as string | Buffer;
        parts[i] = undefined;
        if (typeof p === 'string') s.write(p, 'latin1');
        else s.write(p);
      }
      s.uncork();
      more = !s.writableNeedDrain;
    }
    return more;
  }

  /** Drops what is queued (the socket is being destroyed). */
  discard(): void {
    for (let i = 0; i < this.n; i++) this.parts[i] = undefined;
    this.n = 0;
    this.bytes = 0;
  }
}
