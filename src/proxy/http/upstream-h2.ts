import {
  type ClientHttp2Session,
  type ClientHttp2Stream,
  connect,
  constants,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
} from 'node:http2';
import type { ClusterConfig } from '../proxy-config.js';
import type { ClusterManager, SourceIdentity, UpstreamHost } from '../runtime-types.js';
import { startKeepalive } from './h2-keepalive.js';
import { installLeanAsyncBind } from './lean-async-bind.js';
import type { Fields } from './parser.js';
import type { BodyMode, ConnectFailure, UpstreamExchange, UpstreamReceiver } from './upstream.js';

const H2_ALPN = ['h2'];
const DEFAULT_IDLE_MS = 60_000;
const noop = () => {};
/**
 * Request options spelled out in full (Node fills in the priority fields it is not given, on its own copy): every
 * request's options then have one shape.
 */
const WITH_BODY = { endStream: false, weight: 16, parent: 0, exclusive: false, silent: false, waitForTrailers: false } as const;
const NO_BODY = { endStream: true, weight: 16, parent: 0, exclusive: false, silent: false, waitForTrailers: false } as const;

type Waiter = (s: ClientHttp2Session | ConnectFailure) => void;

/** The HTTP/2 session to one upstream host, shared by every request to it (streams are multiplexed). */
export class H2Client {
  session: ClientHttp2Session | undefined;
  private waiters: Waiter[] | undefined = [];
  private gone = false;

  constructor(
    private readonly clusters: ClusterManager,
    private readonly cluster: string,
    private readonly host: UpstreamHost,
    private readonly cfg: ClusterConfig,
    private readonly identity: SourceIdentity | undefined,
    private readonly onGone: () => void,
  ) {
    installLeanAsyncBind();
    void this.open();
  }

  /** False once the session failed, closed or received GOAWAY: the pool opens a new one. */
  get usable(): boolean {
    return !this.gone;
  }

  /** Calls back with the session once connected (at once when it is), or with why it could not be. */
  whenReady(cb: Waiter): void {
    if (this.session && !this.gone) cb(this.session);
    else if (this.waiters) this.waiters.push(cb);
    else cb({ ok: false, reason: 'connect_failure', detail: `HTTP/2 session to ${this.host.key} closed` });
  }

  close(): void {
    this.markGone();
    this.session?.close();
  }

  private async open(): Promise<void> {
    const r = await this.clusters.connect(this.cluster, this.host, { alpn: H2_ALPN, identity: this.identity });
    if (!r.ok) {
      this.markGone();
      this.flush(r);
      return;
    }
    const socket = r.socket;
    const s = connect('http://upstream', { createConnection: () => socket, settings: { enablePush: false } });
    s.on('error', noop);
    s.on('goaway', () => this.markGone());
    s.on('close', () => {
      this.markGone();
      this.session = undefined;
    });
    s.setTimeout(this.cfg.idleTimeoutMs ?? DEFAULT_IDLE_MS, () => {
      this.markGone();
      s.close();
    });
    // PINGs do not count as activity for the idle timeout above (measured on Node 20), as in Envoy.
    if (this.cfg.http2Keepalive) {
      startKeepalive(s, this.cfg.http2Keepalive, () => {
        this.markGone();
        s.destroy();
      });
    }
    this.session = s;
    this.flush(s);
  }

  private markGone(): void {
    if (this.gone) return;
    this.gone = true;
    this.onGone();
  }

  private flush(v: ClientHttp2Session | ConnectFailure): void {
    const w = this.waiters;
    this.waiters = undefined;
    if (w) for (const cb of w) cb(v);
  }
}

/** Lower-case header fields of an HTTP/2 header block, pseudo-headers left out. */
export function fieldsOf(h: IncomingHttpHeaders): Fields {
  const names: string[] = [];
  const values: string[] = [];
  for (const k of Object.keys(h)) {
    if (k.charCodeAt(0) === 0x3a) continue;
    const v = h[k];
    if (v === undefined) continue;
    if (Array.isArray(v)) {
      for (const x of v) {
        names.push(k);
        values.push(x);
      }
    } else {
      names.push(k);
      values.push(String(v));
    }
  }
  return { names, values };
}

/** One request as an HTTP/2 stream on an upstream session. */
export class H2Stream implements UpstreamExchange {
  private trailers: Fields | undefined;
  private responded = false;
  private finished = false;
  private drainListened = false;

  constructor(
    private readonly stream: ClientHttp2Stream,
    private readonly r: UpstreamReceiver,
    private readonly headRequest: boolean,
  ) {
    stream.on('response', (h, flags: number) => this.onResponse(h, (flags & constants.NGHTTP2_FLAG_END_STREAM) !== 0));
    stream.on('data', (d: Buffer) => {
      if (!this.finished) this.r.onUpstreamData(d);
    });
    stream.on('trailers', (t) => {
      this.trailers = fieldsOf(t);
    });
    stream.on('end', () => this.onEnd());
    stream.on('close', () => this.onClose());
    stream.on('error', noop);
  }

  static open(
    session: ClientHttp2Session,
    headers: OutgoingHttpHeaders,
    mode: BodyMode,
    r: UpstreamReceiver,
    headRequest: boolean,
  ): H2Stream | ConnectFailure {
    try {
      return new H2Stream(session.request(headers, mode === 'none' ? NO_BODY : WITH_BODY), r, headRequest);
    } catch (e) {
      return { ok: false, reason: 'connect_failure', detail: `HTTP/2 stream: ${(e as Error).message}` };
    }
  }

  sendBody(chunk: Buffer): boolean {
    if (this.finished || this.stream.destroyed) return true;
    if (this.stream.write(chunk)) return true;
    // Listened to once it can happen: most requests have no body, and every listener costs per stream.
    if (!this.drainListened) {
      this.drainListened = true;
      this.stream.on('drain', () => {
        if (!this.finished) this.r.onUpstreamDrain();
      });
    }
    return false;
  }

  endBody(): void {
    if (!this.stream.destroyed && !this.stream.writableEnded) this.stream.end();
  }

  pause(): void {
    this.stream.pause();
  }

  resume(): void {
    this.stream.resume();
  }

  abort(): void {
    this.finished = true;
    if (!this.stream.destroyed) this.stream.close(constants.NGHTTP2_CANCEL);
  }

  private onResponse(h: IncomingHttpHeaders, endStream: boolean): void {
    if (this.finished) return;
    const status = Number(h[':status']);
    const f = fieldsOf(h);
    this.responded = true;
    const noBody = this.headRequest || status === 204 || status === 304;
    let length = -1;
    const cl = h['content-length'];
    if (typeof cl === 'string' && /^\d{1,15}$/.test(cl)) length = Number(cl);
    // A response that ended with its headers (gRPC trailers-only, empty bodies) has an empty body, not an unknown one.
    if (!noBody && endStream) length = 0;
    this.r.onUpstreamHead(status, f.names, f.values, length, noBody);
  }

  private onEnd(): void {
    if (this.finished || !this.responded) return;
    this.finished = true;
    this.r.onUpstreamEnd(this.trailers);
  }

  private onClose(): void {
    if (this.finished) return;
    if (this.responded && this.stream.rstCode === constants.NGHTTP2_NO_ERROR) {
      this.onEnd();
      return;
    }
    this.finished = true;
    const refused = this.stream.rstCode === constants.NGHTTP2_REFUSED_STREAM;
    this.r.onUpstreamError(refused ? 'refused' : 'reset', `upstream reset: HTTP/2 stream closed (code ${this.stream.rstCode})`, false);
  }
}
