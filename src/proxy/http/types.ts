import type { RemoteAddr } from '../../lib/addr.js';
import type { Logger } from '../../lib/logger.js';
import type { ShadowResult } from '../match/rbac-eval.js';
import type { ProxyConfig } from '../proxy-config.js';
import type { ClusterManager } from '../runtime-types.js';
import type { Fields } from './parser.js';
import type { MetricTags } from './stat-tags.js';
import type { TraceContext } from './trace-context.js';

/** What one finished request reports for telemetry and access logs (one object per request, never reused). */
export interface RequestStats {
  readonly method: string;
  /** Path with query, as the client sent it. */
  readonly path: string;
  readonly authority: string;
  readonly protocol: 'HTTP/1.0' | 'HTTP/1.1' | 'HTTP/2';
  /** 0 when the stream ended before any response (client abort). */
  readonly status: number;
  /** Envoy response flags (`UF,URX`), `-` when none. */
  readonly responseFlags: string;
  /** Request body bytes received from the client. */
  readonly bytesIn: number;
  /** Response body bytes sent to the client. */
  readonly bytesOut: number;
  readonly durationMs: number;
  /** `address:port` of the upstream host that answered (or was last tried). */
  readonly upstreamHost: string | undefined;
  readonly cluster: string | undefined;
  readonly routeName: string | undefined;
  /** The client's verified SPIFFE id (inbound mTLS). */
  readonly peerIdentity: string | undefined;
  /** The client's end of the connection (access logs print it as `address:port`). */
  readonly downstreamRemote: RemoteAddr;
  readonly requestId: string | undefined;
  /** Upstream attempts made (1 + retries). */
  readonly attempts: number;
  readonly statPrefix: string;
  /**
   * This side's workload identity (SDS secret name): the caller's (`uid:N`, null = no mesh identity) outbound,
   * the certificate of the chain inbound. For telemetry labels; absent on requests rejected before routing.
   */
  readonly localIdentity?: string | null;
  /** The request was gRPC (content-type application/grpc). */
  readonly grpc?: boolean;
  /** SNI the client sent (TLS connections). */
  readonly serverName?: string;
  /** This proxy's span, when the filter chain traces (sampled or not). */
  readonly trace?: TraceContext;
  /** Dry-run (shadow) RBAC results: Envoy's shadow_engine_result and shadow_effective_policy_id per stat prefix. */
  readonly rbacShadow?: readonly ShadowResult[];
  /** The Telemetry metric tag values of this request, when its listener filter overrides metrics. */
  readonly metricTags?: MetricTags;
  /** Request-header span tags of a sampled span. */
  readonly traceTags?: ReadonlyArray<readonly [string, string]> | undefined;
}

export interface HttpHandlerOptions {
  readonly clusters: ClusterManager;
  /** The current config: routes are looked up per request, so RDS updates apply to open connections too. */
  readonly config: () => ProxyConfig;
  readonly logger: Logger;
  readonly onRequestDone?: (stats: RequestStats) => void;
  /** Monotonic milliseconds; performance.now by default. */
  readonly now?: () => number;
  /** Uniform [0, 1); Math.random by default (weights, fault fractions, mirrors, backoff jitter). */
  readonly random?: () => number;
}

/** The downstream half of one request stream, as HTTP/1.1 and HTTP/2 connections provide it to an Exchange. */
export interface Downstream {
  /**
   * Response head. `contentLength` -1 = unknown (h1: chunked or close-delimited). `noBody`: HEAD, 204, 304 (a
   * Content-Length is still sent as given). `endStream` with no body follows.
   */
  respondHead(status: number, names: readonly string[], values: readonly string[], contentLength: number, noBody: boolean): void;
  /** false: buffer full, the exchange's onDownstreamDrain will be called. */
  respondData(chunk: Buffer): boolean;
  respondEnd(trailers: Fields | undefined): void;
  /** The response cannot complete (upstream reset mid-body, timeout after headers): h1 closes, h2 resets the stream. */
  abortResponse(): void;
  pauseRequestBody(): void;
  resumeRequestBody(): void;
  /** `100 Continue` for a client that waits for it (h1 only; a no-op elsewhere). */
  sendContinue(): void;
  /** After a 101 from upstream (h1 only): the connection becomes a byte tunnel to `upstream`. */
  tunnel(upstream: import('node:net').Socket, head: string, rest: Buffer | undefined): void;
}

/** Response flags (Envoy's), as bits: formatted only when a request reports. */
export const Flag = {
  UH: 1 << 0,
  UF: 1 << 1,
  UO: 1 << 2,
  NR: 1 << 3,
  URX: 1 << 4,
  UT: 1 << 5,
  UR: 1 << 6,
  UC: 1 << 7,
  DI: 1 << 8,
  FI: 1 << 9,
  RL: 1 << 10,
  DC: 1 << 11,
  UPE: 1 << 12,
  NC: 1 << 13,
  RBAC: 1 << 14,
  DPE: 1 << 15,
  UMSDR: 1 << 16,
  UAEX: 1 << 17,
  RLSE: 1 << 18,
} as const;

const FLAG_NAMES = Object.entries(Flag).sort((a, b) => a[1] - b[1]);

export function formatFlags(mask: number): string {
  if (mask === 0) return '-';
  let out = '';
  for (const [name, bit] of FLAG_NAMES) if (mask & bit) out = out === '' ? name : `${out},${name}`;
  return out;
}
