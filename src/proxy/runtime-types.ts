import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { LocalAddr, OrigDstAddr, RemoteAddr } from '../lib/addr.js';
import type { ClusterConfig, FilterChain, ListenerConfig, NetworkAction, ProxyConfig, UpstreamEndpoint } from './proxy-config.js';

/**
 * The seams between the proxy's parts: the listener manager accepts and classifies connections, the
 * cluster manager picks and connects upstreams (LB, circuit breakers, outlier detection, TLS), and the
 * HTTP handler runs L7 routing on a connection the listener manager hands it.
 */

/**
 * The mesh identity a local caller presents upstream: the SDS name of its workload certificate, or null when
 * the calling process belongs to no registered workload (it gets no mesh identity: plaintext, which STRICT
 * peers refuse). undefined: not a captured local caller; the cluster's own certificate applies.
 */
export type SourceIdentity = string | null;

/** The SDS name under which the agent serves the certificate of the workload running as `uid`. */
export function uidSecretName(uid: number): string {
  return `uid:${uid}`;
}

export interface PickContext {
  /** Consistent-hash key (from the route's hash policy), when the cluster hashes. */
  readonly hashKey?: string;
  /** The connection's original destination, for ORIGINAL_DST clusters. */
  readonly originalDst?: OrigDstAddr;
  /** Hosts already tried by this request (retry host predicate previous_hosts). */
  readonly exclude?: ReadonlySet<string>;
}

export interface UpstreamHost {
  /** `address:port`, stable across config updates for the same endpoint. */
  readonly key: string;
  readonly endpoint: UpstreamEndpoint;
}

export type UpstreamFailure = 'no_healthy_upstream' | 'overflow' | 'connect_failure' | 'connect_timeout' | 'tls_error' | 'blackhole';

export type ConnectResult =
  | {
      readonly ok: true;
      readonly socket: Socket | TLSSocket;
      readonly host: UpstreamHost;
      /** The peer's verified SPIFFE id when mTLS was used. */
      readonly peerIdentity?: string;
      /** ALPN the upstream chose (`h2`, `http/1.1`) when TLS was used. */
      readonly alpn?: string;
    }
  | { readonly ok: false; readonly reason: UpstreamFailure; readonly detail: string };

export type Outcome =
  | { readonly kind: 'response'; readonly status: number }
  | { readonly kind: 'error'; readonly error: 'connect' | 'reset' | 'timeout' };

export interface ClusterManager {
  /** Replaces the clusters; hosts that remain keep their state (ejections, pools, counters). */
  update(config: ProxyConfig): void;
  cluster(name: string): ClusterConfig | undefined;
  /** Picks a healthy, non-ejected endpoint by the cluster's LB policy and locality priorities. */
  pick(cluster: string, ctx: PickContext): UpstreamHost | undefined;
  /**
   * Opens a connection to a picked host (TLS per the cluster; connect timeout; bind address). `identity` is
   * the caller's SDS certificate for mesh mTLS (SourceIdentity); undefined keeps the cluster's own.
   */
  connect(
    cluster: string,
    host: UpstreamHost,
    opts?: { readonly alpn?: readonly string[]; readonly identity?: SourceIdentity },
  ): Promise<ConnectResult>;
  /**
   * Circuit breaker budgets, Envoy's: returns a release function, or undefined when the budget is spent
   * (the caller answers 503 with the UO flag).
   */
  acquire(cluster: string, budget: 'connection' | 'pending' | 'request' | 'retry'): (() => void) | undefined;
  /** Feeds outlier detection (consecutive 5xx / gateway errors eject a host for a growing time). */
  report(cluster: string, host: UpstreamHost, outcome: Outcome): void;
  close(): void;
}

export interface ConnectionContext {
  readonly socket: Socket | TLSSocket;
  readonly listener: ListenerConfig;
  readonly chain: FilterChain;
  /**
   * Where the client was going: the destination before capture redirected it (outbound), else the local address
   * it reached (inbound, or not redirected), as nothing rewrote it. What filter chains, RBAC and ORIGINAL_DST see.
   */
  readonly originalDst: OrigDstAddr;
  /** The client's end of the connection. */
  readonly remote: RemoteAddr;
  /** The proxy's end of the accepted socket (after a redirect: the proxy's own listener). */
  readonly local: LocalAddr;
  /** The peer's verified SPIFFE id (inbound mTLS). */
  readonly peerIdentity?: string;
  /** Outbound capture: who on this host opened the connection (its uid's workload certificate, or none). */
  readonly sourceIdentity?: SourceIdentity;
  readonly tls: boolean;
  /** The config generation the connection was accepted under; it keeps using it until it closes. */
  readonly config: ProxyConfig;
}

/** An open downstream HTTP connection, as a config swap sees it (see listener/drain.ts). */
export interface LiveHttpConnection {
  /** Its filter chain changed but still admits it: later requests run this action (RBAC, filters, routes). */
  rebind(action: Extract<NetworkAction, { kind: 'http' }>): void;
  /** It is no longer admitted: HTTP/1.1 closes after the request in flight (`connection: close`), HTTP/2 sends GOAWAY. */
  drain(): void;
}

export interface HttpHandler {
  /** Serves HTTP on an accepted (and, if needed, TLS-terminated) connection. */
  handle(conn: ConnectionContext, action: Extract<NetworkAction, { kind: 'http' }>): LiveHttpConnection | undefined;
  /** Stops taking new requests on open connections and resolves when they are idle or `deadlineMs` passed. */
  drain(deadlineMs: number): Promise<void>;
}
