import {
  constants,
  createServer,
  type Http2Server,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
  type ServerHttp2Session,
  type ServerHttp2Stream,
} from 'node:http2';
import type { Socket } from 'node:net';
import type { NetworkAction } from '../proxy-config.js';
import type { ConnectionContext, LiveHttpConnection } from '../runtime-types.js';
import { AUTHORITY, TARGET } from './chars.js';
import type { Core, RequestInfo } from './core.js';
import { Exchange } from './exchange.js';
import { isGrpc } from './headers.js';
import type { Fields } from './parser.js';
import { validMethod } from './parser.js';
import type { Downstream } from './types.js';
import { fieldsOf } from './upstream-h2.js';

type HttpAction = Extract<NetworkAction, { kind: 'http' }>;

interface SessionCtx {
  readonly ctx: ConnectionContext;
  /** Swapped when a config change keeps the connection on a changed chain (LiveHttpConnection.rebind). */
  action: HttpAction;
  session?: ServerHttp2Session;
}

const IDLE_TIMEOUT_MS = 300_000;

function allIn(s: string, table: Uint8Array): boolean {
  for (let i = 0; i < s.length; i++) if (table[s.charCodeAt(i)] !== 1) return false;
  return true;
}
const noop = () => {};

function toHeaders(status: number, names: readonly string[], values: readonly string[]): OutgoingHttpHeaders {
  const h: OutgoingHttpHeaders = { ':status': status };
  for (let k = 0; k < names.length; k++) {
    const n = names[k] as string;
    const prev = h[n];
    if (prev === undefined) h[n] = values[k];
    else if (Array.isArray(prev)) prev.push(values[k] as string);
    else h[n] = [String(prev), values[k] as string];
  }
  return h;
}

/** One downstream HTTP/2 stream as an Exchange sees it. */
class H2Downstream implements Downstream {
  x: Exchange | undefined;
  private trailers: Fields | undefined;
  private readonly wantTrailers: boolean;
  private drainListened = false;

  constructor(
    private readonly stream: ServerHttp2Stream,
    grpc: boolean,
  ) {
    this.wantTrailers = grpc;
  }

  respondHead(status: number, names: readonly string[], values: readonly string[], contentLength: number, noBody: boolean): void {
    const st = this.stream;
    if (st.destroyed || st.headersSent) return;
    const h = toHeaders(status, names, values);
    if (contentLength >= 0 && status !== 204) h['content-length'] = String(contentLength);
    // gRPC trailers-only answers (status in the only header block) stay that way.
    const endStream = noBody || (contentLength === 0 && (!this.wantTrailers || names.includes('grpc-status')));
    try {
      if (!endStream) st.once('wantTrailers', () => this.sendTrailers());
      st.respond(h, { endStream, waitForTrailers: !endStream });
    } catch {
      st.close(constants.NGHTTP2_INTERNAL_ERROR);
    }
  }

  respondData(chunk: Buffer): boolean {
    const st = this.stream;
    if (st.destroyed || st.writableEnded) return true;
    if (st.write(chunk)) return true;
    if (!this.drainListened) {
      this.drainListened = true;
      st.on('drain', () => this.x?.onDownstreamDrain());
    }
    return false;
  }

  respondEnd(trailers: Fields | undefined): void {
    const st = this.stream;
    this.trailers = trailers;
    if (!st.destroyed && !st.writableEnded) st.end();
  }

  /** With waitForTrailers the stream stays open after the last DATA frame until trailers (possibly none) go out. */
  sendTrailers(): void {
    const t = this.trailers;
    const h: OutgoingHttpHeaders = {};
    if (t) for (let k = 0; k < t.names.length; k++) h[t.names[k] as string] = t.values[k];
    try {
      this.stream.sendTrailers(h);
    } catch {
      this.stream.close(constants.NGHTTP2_INTERNAL_ERROR);
    }
  }

  abortResponse(): void {
    if (!this.stream.destroyed) this.stream.close(constants.NGHTTP2_INTERNAL_ERROR);
  }

  pauseRequestBody(): void {
    this.stream.pause();
  }

  resumeRequestBody(): void {
    this.stream.resume();
  }

  sendContinue(): void {}

  tunnel(upstream: Socket): void {
    // Upgrades do not exist in HTTP/2 (extended CONNECT is not supported): never asked for, refused if it happens.
    upstream.destroy();
    this.abortResponse();
  }
}

/**
 * Downstream HTTP/2 (prior knowledge on plaintext, ALPN `h2` on TLS): one node:http2 server, created once,
 * is handed each connection; every stream becomes an Exchange like an HTTP/1.1 request, with trailers passed
 * both ways for gRPC.
 */
export class H2Downstreams {
  private readonly server: Http2Server;
  private readonly sessions = new Map<ServerHttp2Session, SessionCtx>();
  private next: SessionCtx | undefined;

  constructor(private readonly core: Core) {
    this.server = createServer({ settings: { enablePush: false, maxConcurrentStreams: 1000 }, maxHeaderListPairs: 256 });
    this.server.on('session', (s: ServerHttp2Session) => this.onSession(s));
    this.server.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => this.onStream(stream, headers));
  }

  get size(): number {
    return this.sessions.size;
  }

  accept(ctx: ConnectionContext, action: HttpAction): LiveHttpConnection {
    // The session is made synchronously inside the emit: it picks its context up from `next`.
    const sc: SessionCtx = { ctx, action };
    this.next = sc;
    this.server.emit('connection', ctx.socket);
    this.next = undefined;
    return {
      rebind: (a) => {
        sc.action = a;
      },
      // GOAWAY: streams in flight finish, new ones go to a new connection.
      drain: () => {
        if (sc.session && !sc.session.closed) sc.session.close();
      },
    };
  }

  drain(): void {
    for (const s of this.sessions.keys()) if (!s.closed) s.close();
  }

  close(): void {
    for (const s of this.sessions.keys()) s.destroy();
  }

  private onSession(s: ServerHttp2Session): void {
    const sc = this.next;
    if (!sc) {
      s.destroy();
      return;
    }
    this.sessions.set(s, sc);
    sc.session = s;
    s.on('error', noop);
    s.on('close', () => this.sessions.delete(s));
    s.setTimeout(IDLE_TIMEOUT_MS, () => s.close());
    if (this.core.draining) s.close();
  }

  private onStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void {
    const sc = this.sessions.get(stream.session as ServerHttp2Session);
    stream.on('error', noop);
    const method = headers[':method'];
    const path = headers[':path'];
    const authority = headers[':authority'] ?? headers.host;
    // Pseudo-headers become an HTTP/1.1 request line upstream: hold them to the same rules as the HTTP/1.1 parser.
    if (
      !sc ||
      typeof method !== 'string' ||
      typeof path !== 'string' ||
      !validMethod(method) ||
      method === 'CONNECT' ||
      !(path === '*' ? method === 'OPTIONS' : path.charCodeAt(0) === 0x2f && allIn(path, TARGET)) ||
      (typeof authority === 'string' && !allIn(authority, AUTHORITY))
    ) {
      stream.close(constants.NGHTTP2_PROTOCOL_ERROR);
      return;
    }
    const f = fieldsOf(headers);
    const cl = headers['content-length'];
    const endStream = stream.endAfterHeaders;
    const contentLength = typeof cl === 'string' && /^\d{1,15}$/.test(cl) ? Number(cl) : -1;
    const info: RequestInfo = {
      method,
      path,
      authority: typeof authority === 'string' ? authority.toLowerCase() : '',
      names: f.names,
      values: f.values,
      contentLength,
      chunked: !endStream && contentLength < 0,
      expectContinue: false,
      upgrade: undefined,
      nominated: undefined,
    };
    const grpc = isGrpc(typeof headers['content-type'] === 'string' ? headers['content-type'] : undefined);
    const d = new H2Downstream(stream, grpc);
    const x = new Exchange(this.core, sc.ctx, sc.action, d, info, 'HTTP/2', grpc);
    d.x = x;
    // A request that ended with its headers (most of them) has no body to read: no body listeners, and Node drains
    // the readable side itself when the stream closes. 'drain' and 'wantTrailers' are listened to once they can
    // happen (H2Downstream). Fewer listeners per stream is measurably less CPU per request.
    if (!endStream) {
      let trailers: Fields | undefined;
      stream.on('data', (chunk: Buffer) => x.onRequestBody(chunk));
      stream.on('trailers', (t: IncomingHttpHeaders) => {
        trailers = fieldsOf(t);
      });
      stream.on('end', () => x.onRequestEnd(trailers));
    }
    stream.on('close', () => {
      if (!x.finished) x.onDownstreamAbort();
    });
    x.begin();
  }
}
