import { randomUUID } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import type { TagAttribute, TagAttributes } from '../../api/tag-expression.js';
import type { OrigDstAddr, RemoteAddr } from '../../lib/addr.js';
import { evaluateRbac, type RbacAttrs, type ShadowResult } from '../match/rbac-eval.js';
import { matchRoute, pickWeighted, type RequestView, selectVirtualHost } from '../match/route-match.js';
import type { NetworkAction, Route, RouteAction } from '../proxy-config.js';
import type { ConnectionContext } from '../runtime-types.js';
import type { Core, ForwardOwner, RequestInfo } from './core.js';
import { type CorsMatch, corsDecision, corsResponseHeaders } from './cors.js';
import { Forwarder } from './forwarder.js';
import { applyHeaderOps, copyEndToEnd, getHeader, grpcStatusFor, hasOps, removeHeader, setHeader } from './headers.js';
import { runJwtAuthn } from './jwt-authn.js';
import type { Fields } from './parser.js';
import { type DescriptorSource, routeAllows } from './rate-limit.js';
import { forwardPath, redirectLocation } from './rewrite.js';
import { metricTags, requestAttribute } from './stat-tags.js';
import { injectTrace, startTrace, TRACE_HEADERS, type TraceContext } from './trace-context.js';
import { type Downstream, Flag, formatFlags, type RequestStats } from './types.js';
import type { BodyMode } from './upstream.js';
import { UpstreamRequest } from './upstream-request.js';

type HttpAction = Extract<NetworkAction, { kind: 'http' }>;
type Forward = Extract<RouteAction, { kind: 'forward' }>;

const MAX_PENDING_BODY = 64 * 1024;
/** Request fields the proxy sets itself (or sanitizes) instead of forwarding the client's. */
const REPLACED = new Set(['x-forwarded-proto', 'x-envoy-attempt-count', 'x-forwarded-client-cert']);
const REPLACED_TRACED = new Set([...REPLACED, ...TRACE_HEADERS]);
const FAULT_ABORT = 'fault filter abort';
const JWT_FILTER = 'envoy.filters.http.jwt_authn';

function onDelay(x: Exchange): void {
  x.afterDelay();
}

/**
 * One request/response on a downstream stream: virtual host and route selection, RBAC, fault injection, local
 * rate limit, then the route's action (redirect, direct response, or forwarding through a Forwarder). It is also
 * the RequestView routing reads and the attributes RBAC reads, so no other object is made for those.
 */
export class Exchange implements RequestView, RbacAttrs, ForwardOwner, TagAttributes {
  readonly scheme: string;
  readonly method: string;
  readonly path: string;
  readonly authority: string;
  readonly peerIdentity: string | undefined;
  readonly remote: RemoteAddr;
  readonly originalDst: OrigDstAddr;
  readonly statPrefix: string;
  status = 0;
  flags = 0;
  bytesIn = 0;
  bytesOut = 0;
  durationMs = 0;
  upstreamHost: string | undefined;
  cluster: string | undefined;
  routeName: string | undefined;
  requestId: string | undefined;
  /** This proxy's span, when the filter chain traces. */
  trace: TraceContext | undefined;
  attempts = 0;
  /** The client sent its whole request. */
  requestEnded: boolean;
  /** The response head went out (local or upstream). */
  responded = false;
  finished = false;
  route: Route | undefined;
  /** What dry-run (shadow) AuthorizationPolicies would have decided: reported, never enforced. */
  rbacShadow: readonly ShadowResult[] | undefined;
  /** The verified JWT payload (RequestAuthentication), which RBAC's request.auth.* rules match. */
  jwtPayload: Readonly<Record<string, unknown>> | undefined;
  /** Set on a CORS request the route's policy allows: its response carries the CORS headers. */
  cors: CorsMatch | undefined;
  private fwd: Forwarder | undefined;
  private pending: Buffer[] | undefined;
  private pendingBytes = 0;
  private readonly startedAt: number;

  constructor(
    readonly core: Core,
    readonly conn: ConnectionContext,
    readonly action: HttpAction,
    readonly down: Downstream,
    readonly info: RequestInfo,
    readonly protocol: RequestStats['protocol'],
    readonly grpc: boolean,
  ) {
    this.scheme = conn.tls ? 'https' : 'http';
    this.method = info.method;
    this.path = info.path;
    this.authority = info.authority;
    this.peerIdentity = conn.peerIdentity;
    this.remote = conn.remote;
    this.originalDst = conn.originalDst;
    this.statPrefix = action.statPrefix;
    this.requestEnded = info.contentLength <= 0 && !info.chunked;
    // Durations are only for whoever hears of finished requests.
    this.startedAt = core.onRequestDone ? core.now() : 0;
  }

  header(name: string): string | undefined {
    if (name.charCodeAt(0) === 0x3a) {
      if (name === ':method') return this.method;
      if (name === ':path') return this.path;
      if (name === ':authority') return this.authority;
      if (name === ':scheme') return this.scheme;
      return undefined;
    }
    if (name === 'host') return this.authority;
    return getHeader(this.info.names, this.info.values, name);
  }

  metadata(filter: string): unknown {
    return filter === JWT_FILTER && this.jwtPayload ? { payload: this.jwtPayload } : undefined;
  }

  /**
   * start(), guarded: a fault in handling one request answers that request 500 (or ends its response) instead of
   * throwing out of the connection's event handler, which would kill the worker and every connection on it.
   */
  begin(): void {
    try {
      this.start();
    } catch (e) {
      this.core.logger.error({ err: e, path: this.path }, 'proxy: handling a request failed; answered 500');
      try {
        if (!this.responded) this.localReply(500, 'internal proxy error', 0);
        else this.down.abortResponse();
      } catch {
        this.down.abortResponse();
      }
    }
  }

  start(): void {
    const tracing = this.action.tracing;
    if (tracing) {
      // Envoy settles the request id before the sampling decision, which may be derived from it.
      const rid = tracing.useRequestId ? (getHeader(this.info.names, this.info.values, 'x-request-id') ?? randomUUID()) : undefined;
      if (rid !== undefined) this.requestId = rid;
      this.trace = startTrace(this.info.names, this.info.values, tracing.sampling, this.core.random, rid);
    }
    const table = this.core.config().routes.get(this.action.routeConfig);
    const vh = table ? selectVirtualHost(table, this.authority) : undefined;
    if (vh?.requireTls && !this.conn.tls) {
      // Envoy's require_tls: plaintext requests are sent to the same URL over https.
      this.sendLocal(301, '', ['location'], [`https://${this.authority}${this.path}`]);
      return;
    }
    const filters = this.action.filters;
    const unavailable = filters.unavailable;
    if (unavailable) {
      this.localReply(unavailable.status, '', unavailable.flag ? Flag[unavailable.flag] : 0);
      return;
    }
    // The JWT filter runs before the route is chosen, as Envoy's (whose route cache it clears): routes may match
    // the verified token's claims.
    if (filters.jwt) {
      const info = this.info;
      const o = runJwtAuthn(
        filters.jwt,
        { method: this.method, path: this.path, names: info.names, values: info.values },
        this.core.epochSeconds(),
        this.core.jwtCache,
      );
      if (!o.ok) {
        // Envoy's answer (no response flag): the reason as the body, and the RFC 6750 challenge naming the URL the
        // client asked for (behind a calling proxy, x-forwarded-proto says its scheme).
        this.localReply(
          401,
          o.reason,
          0,
          'www-authenticate',
          `Bearer realm="${this.header('x-forwarded-proto') ?? this.scheme}://${this.authority}${this.path}", error="invalid_token"`,
        );
        return;
      }
      if (o.payload) this.jwtPayload = o.payload;
    }
    const route = vh ? matchRoute(vh, this) : undefined;
    this.route = route;
    this.routeName = route?.name;
    if (filters.rbac.length > 0) {
      const d = evaluateRbac(filters.rbac, this);
      if (d.shadow) this.rbacShadow = d.shadow;
      if (!d.allowed) {
        this.localReply(403, 'RBAC: access denied', Flag.RBAC);
        return;
      }
    }
    const fault = filters.fault ? route?.fault : undefined;
    if (fault?.delay && fault.delay.ms > 0 && this.core.random() < fault.delay.fraction) {
      this.flags |= Flag.DI;
      setTimeout(onDelay, fault.delay.ms, this);
      return;
    }
    this.afterDelay();
  }

  /** The rest of the filter chain, after a fault delay if one was injected. */
  afterDelay(): void {
    if (this.finished) return;
    const route = this.route;
    const fault = this.action.filters.fault ? route?.fault : undefined;
    if (fault?.abort && this.core.random() < fault.abort.fraction) {
      const a = fault.abort;
      this.flags |= Flag.FI;
      if (a.grpcStatus !== undefined) this.grpcReply(a.grpcStatus, FAULT_ABORT);
      else this.localReply(a.httpStatus ?? 503, FAULT_ABORT, 0);
      return;
    }
    const cors = this.action.filters.cors ? route?.cors : undefined;
    if (cors) {
      const d = corsDecision(cors, this.method, this.header('origin'), this.header('access-control-request-method'));
      if (d.kind === 'reply') {
        this.sendLocal(200, '', d.names, d.values);
        return;
      }
      if (d.kind === 'cors') this.cors = d.match;
    }
    const rl = this.action.filters.rateLimit;
    if (rl && !this.core.limiters.take(rl)) {
      this.localReply(rl.status, 'local_rate_limited', Flag.RL, 'x-envoy-ratelimited', 'true');
      return;
    }
    const rrl = this.action.filters.routeRateLimits ? route?.rateLimit : undefined;
    if (rrl && !routeAllows(this.core.limiters, rrl, this.descriptorSource(route))) {
      const [first] = rrl.limitedHeaders;
      if (rrl.limitedHeaders.length <= 1 || this.grpc) this.localReply(rrl.status, 'local_rate_limited', Flag.RL, first?.[0], first?.[1]);
      else {
        this.flags |= Flag.RL;
        this.sendLocal(
          rrl.status,
          'local_rate_limited',
          rrl.limitedHeaders.map((h) => h[0]),
          rrl.limitedHeaders.map((h) => h[1]),
        );
      }
      return;
    }
    if (!route) {
      this.localReply(404, '', Flag.NR);
      return;
    }
    const a = route.action;
    if (a.kind === 'forward') this.forward(route, a);
    else if (a.kind === 'redirect') {
      const location = redirectLocation(a, route.match.path, this.scheme, this.authority, this.path);
      this.reply(a.status, '', route, 'location', location);
    } else this.reply(a.status, a.body ?? '', route);
  }

  /** The request as rate_limits actions read it; the destination cluster is the route's when it names one. */
  private descriptorSource(route: Route | undefined): DescriptorSource {
    const a = route?.action;
    const cluster = a?.kind === 'forward' && a.clusters.length === 1 ? a.clusters[0]?.name : undefined;
    return {
      method: this.method,
      path: this.path,
      authority: this.authority,
      scheme: this.scheme,
      header: (n) => this.header(n),
      remote: this.remote,
      cluster,
    };
  }

  private forward(route: Route, a: Forward): void {
    const entry = a.clusters.length === 1 ? a.clusters[0] : pickWeighted(a.clusters, this.core.random(), a.totalWeight);
    const cfg = entry ? this.core.clusters.cluster(entry.name) : undefined;
    this.cluster = entry?.name;
    if (!entry || !cfg) {
      this.localReply(503, '', Flag.NC);
      return;
    }
    const info = this.info;
    const names: string[] = [];
    const values: string[] = [];
    const trace = this.trace;
    copyEndToEnd(info.names, info.values, info.nominated, names, values, trace ? REPLACED_TRACED : REPLACED);
    if (trace) injectTrace(names, values, trace);
    // gRPC needs `te: trailers` end to end; any other TE is hop-by-hop.
    const te = getHeader(info.names, info.values, 'te');
    if (te?.toLowerCase().includes('trailers')) {
      names.push('te');
      values.push('trailers');
    }
    names.push('x-forwarded-proto');
    values.push(this.scheme);
    let requestId = getHeader(names, values, 'x-request-id');
    if (requestId === undefined) {
      requestId = this.requestId ?? randomUUID();
      names.push('x-request-id');
      values.push(requestId);
    }
    this.requestId = requestId;
    if (this.action.forwardClientCert && this.peerIdentity !== undefined) {
      names.push('x-forwarded-client-cert');
      // Envoy's XFCC elements: By = the identity this proxy presented, URI = the verified client's.
      const by = this.conn.chain.tls?.certSecret;
      values.push(by?.startsWith('spiffe://') ? `By=${by};URI=${this.peerIdentity}` : `URI=${this.peerIdentity}`);
    }
    if (hasOps(entry.headers)) applyHeaderOps(entry.headers, names, values);
    if (hasOps(route.requestHeaders)) applyHeaderOps(route.requestHeaders, names, values);
    // A per-destination host rewrite arrives as a `host` header operation.
    let authority = a.hostRewrite ?? this.authority;
    const hostOp = getHeader(names, values, 'host');
    if (hostOp !== undefined) {
      authority = hostOp;
      removeHeader(names, values, 'host');
    }
    const mode: BodyMode = info.contentLength >= 0 ? 'length' : info.chunked ? 'chunked' : 'none';
    const upgrade = info.upgrade !== undefined && info.upgrade.toLowerCase() === 'websocket' ? info.upgrade : undefined;
    const req = new UpstreamRequest(
      this.method,
      forwardPath(a, route.match.path, this.path),
      authority,
      this.scheme,
      names,
      values,
      mode,
      info.contentLength,
      upgrade,
      this.conn.sourceIdentity,
    );
    const fwd = new Forwarder(this, cfg, a, req, this.pending, this.requestEnded);
    this.fwd = fwd;
    this.pending = undefined;
    if (info.expectContinue && !this.requestEnded) this.down.sendContinue();
    fwd.begin();
  }

  onRequestBody(chunk: Buffer): void {
    this.bytesIn += chunk.length;
    if (this.fwd) {
      this.fwd.onBody(chunk);
      return;
    }
    if (this.finished) return;
    // Before forwarding starts (a fault delay): hold the body, and stop reading once enough is held.
    if (!this.pending) this.pending = [];
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    if (this.pendingBytes > MAX_PENDING_BODY) this.down.pauseRequestBody();
  }

  onRequestEnd(_trailers: Fields | undefined): void {
    this.requestEnded = true;
    this.fwd?.onBodyEnd();
  }

  onDownstreamDrain(): void {
    this.fwd?.onDownstreamDrain();
  }

  /** The client went away before the response completed. */
  onDownstreamAbort(): void {
    if (this.finished) return;
    this.flags |= Flag.DC;
    if (this.fwd) this.fwd.cancel();
    else this.finish();
  }

  /** A response the proxy makes itself (Envoy's local reply), gRPC-shaped for gRPC requests. */
  localReply(status: number, body: string, flag: number, extraName?: string, extraValue?: string, grpcStatus?: number): void {
    this.flags |= flag;
    if (this.grpc) {
      this.grpcReply(grpcStatus ?? grpcStatusFor(status), body === '' ? undefined : body, extraName, extraValue);
      return;
    }
    const names = extraName !== undefined ? [extraName] : [];
    const values = extraValue !== undefined ? [extraValue] : [];
    this.sendLocal(status, body, names, values);
  }

  private grpcReply(grpcStatus: number, message: string | undefined, extraName?: string, extraValue?: string): void {
    const names = ['content-type', 'grpc-status'];
    const values = ['application/grpc', String(grpcStatus)];
    if (message !== undefined) {
      names.push('grpc-message');
      values.push(encodeURIComponent(message));
    }
    if (extraName !== undefined && extraValue !== undefined) {
      names.push(extraName);
      values.push(extraValue);
    }
    this.status = 200;
    this.responded = true;
    this.down.respondHead(200, names, values, 0, false);
    this.down.respondEnd(undefined);
    this.finish();
  }

  /** Direct responses and redirects: the route's response header operations apply. */
  private reply(status: number, body: string, route: Route, extraName?: string, extraValue?: string): void {
    const names = extraName !== undefined ? [extraName] : [];
    const values = extraValue !== undefined ? [extraValue] : [];
    if (hasOps(route.responseHeaders)) applyHeaderOps(route.responseHeaders, names, values);
    this.sendLocal(status, body, names, values);
  }

  private sendLocal(status: number, body: string, names: string[], values: string[]): void {
    if (this.cors) corsResponseHeaders(this.cors, names, values);
    const noBody = this.method === 'HEAD' || status === 204 || status === 304;
    const bytes = body === '' ? undefined : Buffer.from(body);
    if (bytes) setHeader(names, values, 'content-type', 'text/plain');
    this.status = status;
    this.responded = true;
    this.down.respondHead(status, names, values, bytes ? bytes.length : 0, noBody);
    if (bytes && !noBody) {
      this.bytesOut += bytes.length;
      this.down.respondData(bytes);
    }
    this.down.respondEnd(undefined);
    this.finish();
  }

  /** A plain record (it must not keep the connection, sockets or config alive in whoever stores it). */
  private stats(): RequestStats {
    return {
      method: this.method,
      path: this.path,
      authority: this.authority,
      protocol: this.protocol,
      status: this.status,
      responseFlags: formatFlags(this.flags),
      bytesIn: this.bytesIn,
      bytesOut: this.bytesOut,
      durationMs: this.durationMs,
      upstreamHost: this.upstreamHost,
      cluster: this.cluster,
      routeName: this.routeName,
      peerIdentity: this.peerIdentity,
      downstreamRemote: this.remote,
      requestId: this.requestId,
      attempts: this.attempts,
      statPrefix: this.statPrefix,
      localIdentity: this.conn.sourceIdentity !== undefined ? this.conn.sourceIdentity : this.conn.chain.tls?.certSecret,
      grpc: this.grpc,
      serverName: this.conn.tls ? (this.conn.socket as TLSSocket).servername || undefined : undefined,
      ...(this.trace ? { trace: this.trace, traceTags: this.traceTags() } : {}),
      ...(this.rbacShadow ? { rbacShadow: this.rbacShadow } : {}),
      ...(this.action.filters.stats ? { metricTags: metricTags(this.action.filters.stats, this) } : {}),
    };
  }

  /** Istio's attributes of this request, for metric tag expressions (only when Telemetry overrides metrics). */
  attribute(name: TagAttribute): string | number | boolean | undefined {
    return requestAttribute(this, name);
  }

  /** Request-header span tags, read only for spans that will be reported. */
  private traceTags(): ReadonlyArray<readonly [string, string]> | undefined {
    const tags = this.action.tracing?.tags;
    if (!this.trace?.sampled || !tags?.length) return undefined;
    const out: Array<readonly [string, string]> = [];
    for (const t of tags) {
      if (t.header) out.push([t.tag, getHeader(this.info.names, this.info.values, t.header.name) ?? t.header.defaultValue]);
    }
    return out;
  }

  /** Reports the request once; the downstream learns through respondEnd/abortResponse, not here. */
  finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.pending = undefined;
    const cb = this.core.onRequestDone;
    if (cb) {
      this.durationMs = this.core.now() - this.startedAt;
      try {
        cb(this.stats());
      } catch (e) {
        this.core.logger.warn({ err: e }, 'onRequestDone callback threw');
      }
    }
  }
}
