import type { Socket } from 'node:net';
import type { ConnectResult } from '../runtime-types.js';
import type { Fields } from './parser.js';

export type ConnectFailure = Extract<ConnectResult, { ok: false }>;

/** What an upstream exchange (HTTP/1.1 connection or HTTP/2 stream) tells the request it serves. */
export interface UpstreamReceiver {
  /** Whether attempt `token` still wants a connection (not abandoned meanwhile by a timeout or the client leaving). */
  wants(token: number): boolean;
  /** The exchange started: the request head went out. */
  onUpstreamReady(ex: UpstreamExchange): void;
  /** No exchange for attempt `token`: connect failure, circuit breaker overflow. */
  onUpstreamFailure(f: ConnectFailure, token: number): void;
  /** Response head (1xx other than 101 never arrive here). `contentLength` -1 = unknown; `noBody` for HEAD/204/304. */
  onUpstreamHead(status: number, names: string[], values: string[], contentLength: number, noBody: boolean): void;
  onUpstreamData(chunk: Buffer): void;
  onUpstreamEnd(trailers: Fields | undefined): void;
  /**
   * The exchange failed: `reset` (closed or reset before the response completed), `protocol` (unparseable response),
   * `refused` (HTTP/2 REFUSED_STREAM). `retryable` is set when nothing of the response arrived on a reused connection
   * (the keep-alive close race): safe to send again.
   */
  onUpstreamError(kind: 'reset' | 'protocol' | 'refused', detail: string, raceOnReuse: boolean): void;
  /** The request body may be written again after a write returned false. */
  onUpstreamDrain(): void;
  /** 101 Switching Protocols: the socket is now the receiver's (a tunnel), `rest` bytes already read after the head. */
  onUpstreamUpgrade(socket: Socket, names: string[], values: string[], rest: Buffer | undefined): void;
}

/** How the request body is framed towards the upstream. */
export type BodyMode = 'none' | 'length' | 'chunked';

/** One request/response exchange on an upstream connection or stream. */
export interface UpstreamExchange {
  /** false: wait for onUpstreamDrain before writing more. */
  sendBody(chunk: Buffer): boolean;
  endBody(): void;
  /** Stops reading the response (downstream backpressure) / reads again. */
  pause(): void;
  resume(): void;
  /** Abandons the exchange: the connection is closed (HTTP/1.1) or the stream reset (HTTP/2). */
  abort(): void;
}
