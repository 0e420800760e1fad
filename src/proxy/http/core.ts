import type { RemoteAddr } from '../../lib/addr.js';
import type { Logger } from '../../lib/logger.js';
import type { ProxyConfig, Route } from '../proxy-config.js';
import type { ClusterManager, ConnectionContext } from '../runtime-types.js';
import type { CorsMatch } from './cors.js';
import type { VerifyCache } from './jwt-authn.js';
import type { Fields } from './parser.js';
import type { UpstreamPools } from './pool.js';
import type { RateLimiters } from './rate-limit.js';
import type { Downstream, RequestStats } from './types.js';

/** What the handler shares with every exchange. */
export interface Core {
  readonly clusters: ClusterManager;
  readonly pools: UpstreamPools;
  readonly config: () => ProxyConfig;
  readonly logger: Logger;
  readonly onRequestDone: ((s: RequestStats) => void) | undefined;
  readonly now: () => number;
  readonly random: () => number;
  readonly limiters: RateLimiters;
  /** Tokens the jwt_authn filter verified, so a client's repeated token costs one signature check. */
  readonly jwtCache: VerifyCache;
  /** Wall-clock seconds, for tokens' exp and nbf. */
  readonly epochSeconds: () => number;
  draining: boolean;
  /** Coarse monotonic milliseconds (now(), refreshed by the idle sweep): idle stamps without a clock read each. */
  clock: number;
}

/** A request as a downstream connection parsed it (HTTP/1.1 heads are this shape; HTTP/2 builds one). */
export interface RequestInfo extends Fields {
  readonly method: string;
  readonly path: string;
  readonly authority: string;
  /** -1 when the body length is unknown or there is no body (then `chunked` tells which). */
  readonly contentLength: number;
  /** A body of unknown length follows. */
  readonly chunked: boolean;
  readonly expectContinue: boolean;
  readonly upgrade: string | undefined;
  readonly nominated: string[] | undefined;
}

/** What a Forwarder (and its retries and mirrors) needs of the request it forwards: the Exchange provides it. */
export interface ForwardOwner {
  readonly core: Core;
  readonly conn: ConnectionContext;
  readonly down: Downstream;
  readonly route: Route | undefined;
  /** A CORS request's latched policy and origin (the CORS filter's response headers). */
  readonly cors: CorsMatch | undefined;
  readonly path: string;
  readonly remote: RemoteAddr;
  flags: number;
  status: number;
  responded: boolean;
  upstreamHost: string | undefined;
  attempts: number;
  bytesOut: number;
  header(name: string): string | undefined;
  localReply(status: number, body: string, flag: number, extraName?: string, extraValue?: string, grpcStatus?: number): void;
  finish(): void;
}
