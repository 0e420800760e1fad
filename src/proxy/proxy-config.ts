import type { Jwk } from '../api/jwks.js';
/**
 * The proxy's compiled configuration: what the data plane runs, compiled once per xDS update from the
 * Envoy resources the agent applied (compiled by compile/index.ts). Plain immutable data; the hot path reads only this.
 * Durations are milliseconds; percentages are fractions in [0, 1].
 */
import type { TagExpression } from '../api/tag-expression.js';
import type { Cidr } from '../lib/addr.js';
import type { SafeRegex, Substitution } from '../lib/safe-regex.js';

export type LbPolicy = 'ROUND_ROBIN' | 'LEAST_REQUEST' | 'RANDOM' | 'RING_HASH' | 'MAGLEV';

export interface UpstreamEndpoint {
  /** An IP or a name to resolve; with `pipe`, a unix domain socket path (`@name`: Linux's abstract namespace). */
  readonly address: string;
  /** 0 for a pipe. */
  readonly port: number;
  /** The endpoint is a unix domain socket on this host (Envoy's Pipe): plaintext unless the cluster sets TLS, never mesh mTLS. */
  readonly pipe?: true;
  readonly weight: number;
  readonly healthy: boolean;
  /** `region/zone/subzone`. */
  readonly locality: string;
  /** Locality priority (0 = preferred); higher ones take traffic only when lower ones lack healthy endpoints. */
  readonly priority: number;
  /** The endpoint runs a vmesh agent: the cluster's mTLS transport applies (Istio's tlsMode=istio). */
  readonly mtls: boolean;
  /** The workload behind the endpoint (endpoint metadata), for telemetry labels. */
  readonly workload?: EndpointWorkload;
}

/** Istio's `istio.workload` endpoint metadata, plus the service account vmesh adds. */
export interface EndpointWorkload {
  readonly name: string;
  readonly namespace: string;
  /** Canonical service (the `app` label, as Istio derives it). */
  readonly app: string;
  /** Canonical revision (the `version` label, or `latest`). */
  readonly version: string;
  readonly serviceAccount?: string;
}

/** How the proxy speaks TLS to an upstream; names are SDS secret names resolved by the SecretStore. */
export interface UpstreamTls {
  readonly sni?: string;
  /** Client certificate (mTLS); absent for one-way TLS. */
  readonly certSecret?: string;
  /** Trust bundle secret (e.g. ROOTCA) or a CA file for external services. */
  readonly caSecret?: string;
  readonly caFile?: string;
  /** Accepted peer SPIFFE ids / SANs (any when empty). */
  readonly peerSans: readonly string[];
  readonly alpn: readonly string[];
}

export interface CircuitBreaker {
  readonly maxConnections: number;
  readonly maxPendingRequests: number;
  readonly maxRequests: number;
  readonly maxRetries: number;
}

export interface OutlierDetection {
  readonly consecutive5xx: number;
  readonly consecutiveGatewayErrors: number;
  readonly intervalMs: number;
  readonly baseEjectionMs: number;
  readonly maxEjectionPercent: number;
}

export interface HealthCheck {
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly healthyThreshold: number;
  readonly unhealthyThreshold: number;
  /** HTTP GET of this path expecting one of the statuses; else a TCP connect. */
  readonly http?: { readonly path: string; readonly host?: string; readonly expectedStatuses: readonly number[] };
}

/**
 * Envoy's slow start (Istio's warmup): a host that joined less than `windowMs` ago gets its weight scaled by
 * max(minWeightPercent/100, (max(age, 1 s) / window)^(1/aggression)).
 */
export interface SlowStart {
  readonly windowMs: number;
  readonly aggression: number;
  readonly minWeightPercent: number;
}

/** A PING every intervalMs (plus up to jitterPercent of it, at random); no ACK within timeoutMs closes the connection. */
export interface Http2Keepalive {
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly jitterPercent: number;
}

export interface ClusterConfig {
  readonly name: string;
  /** EDS/STATIC: the endpoints below; DNS: resolve `dnsHost`; ORIGINAL_DST: the connection's own destination. */
  readonly discovery: 'STATIC' | 'EDS' | 'DNS' | 'ORIGINAL_DST';
  readonly endpoints: readonly UpstreamEndpoint[];
  readonly dnsHost?: { readonly host: string; readonly port: number };
  readonly lb: LbPolicy;
  readonly ringSize?: number;
  /** ROUND_ROBIN and LEAST_REQUEST only, as in Envoy. */
  readonly slowStart?: SlowStart;
  readonly connectTimeoutMs: number;
  /** mTLS for endpoints with `mtls`; plain otherwise (auto mTLS). */
  readonly meshTls?: UpstreamTls;
  /** TLS for every endpoint (DestinationRule SIMPLE/MUTUAL). */
  readonly tls?: UpstreamTls;
  readonly http2: boolean;
  /** HTTP/2 only: PING each upstream connection, close it when a PING goes unanswered (Envoy's connection_keepalive). */
  readonly http2Keepalive?: Http2Keepalive;
  readonly maxRequestsPerConnection?: number;
  readonly idleTimeoutMs?: number;
  readonly circuitBreaker: CircuitBreaker;
  readonly outlier?: OutlierDetection;
  readonly healthCheck?: HealthCheck;
  /** Source address for upstream connections (127.0.0.6 for inbound clusters: excluded from capture). */
  readonly bindAddress?: string;
  /** Source addresses of other families (`::6` for inbound clusters), used for destinations of their family. */
  readonly extraBindAddresses?: readonly string[];
  /** No endpoints by design: connections are refused (BlackHoleCluster). */
  readonly blackhole: boolean;
}

// ---- HTTP routing ----

export type StringMatcher =
  | { readonly kind: 'exact'; readonly value: string; readonly ignoreCase: boolean }
  | { readonly kind: 'prefix'; readonly value: string; readonly ignoreCase: boolean }
  | { readonly kind: 'suffix'; readonly value: string; readonly ignoreCase: boolean }
  | { readonly kind: 'contains'; readonly value: string; readonly ignoreCase: boolean }
  | { readonly kind: 'regex'; readonly regex: SafeRegex }
  | { readonly kind: 'present' };

export interface HeaderMatcher {
  /** Lower case; pseudo-headers `:method`, `:authority`, `:scheme`, `:path` allowed. */
  readonly name: string;
  readonly match: StringMatcher;
  readonly invert: boolean;
}

export interface RouteMatch {
  readonly path:
    | { readonly kind: 'prefix' | 'exact' | 'path_separated_prefix'; readonly value: string; readonly caseSensitive: boolean }
    | { readonly kind: 'regex'; readonly regex: SafeRegex };
  readonly headers: readonly HeaderMatcher[];
  readonly query: ReadonlyArray<{ readonly name: string; readonly match: StringMatcher }>;
  /** Envoy's dynamic_metadata matchers (Istio's routing on JWT claims); absent when none. */
  readonly metadata?: readonly MetadataMatcher[];
}

export interface HeaderOps {
  /** Set (overwrite) or append; names lower case. */
  readonly add: ReadonlyArray<{ readonly name: string; readonly value: string; readonly append: boolean }>;
  readonly remove: readonly string[];
}

export interface RetryPolicy {
  /** Envoy retry_on conditions: 5xx, gateway-error, connect-failure, retriable-4xx, refused-stream, reset, retriable-status-codes... */
  readonly on: ReadonlySet<string>;
  readonly retriableStatusCodes: readonly number[];
  readonly numRetries: number;
  readonly perTryTimeoutMs?: number;
  readonly backoffBaseMs: number;
  readonly backoffMaxMs: number;
}

export interface FaultPolicy {
  readonly delay?: { readonly ms: number; readonly fraction: number };
  readonly abort?: { readonly httpStatus?: number; readonly grpcStatus?: number; readonly fraction: number };
}

export type HashPolicy =
  | { readonly kind: 'header'; readonly name: string }
  | { readonly kind: 'cookie'; readonly name: string; readonly ttlMs?: number; readonly path?: string }
  | { readonly kind: 'source_ip' }
  | { readonly kind: 'query'; readonly name: string };

export type RouteAction =
  | {
      readonly kind: 'forward';
      /** One cluster, or weighted clusters (weights as given). */
      readonly clusters: ReadonlyArray<{ readonly name: string; readonly weight: number; readonly headers: HeaderOps }>;
      readonly totalWeight: number;
      readonly timeoutMs: number;
      readonly retry?: RetryPolicy;
      readonly prefixRewrite?: string;
      readonly regexRewrite?: { readonly pattern: SafeRegex; readonly substitution: Substitution };
      readonly hostRewrite?: string;
      readonly mirrors: ReadonlyArray<{ readonly cluster: string; readonly fraction: number }>;
      readonly hashPolicy: readonly HashPolicy[];
    }
  | {
      readonly kind: 'redirect';
      readonly status: number;
      readonly scheme?: string;
      readonly host?: string;
      readonly port?: number;
      readonly path?: string;
      readonly prefixRewrite?: string;
    }
  | { readonly kind: 'direct_response'; readonly status: number; readonly body?: string };

export interface Route {
  readonly name: string;
  readonly match: RouteMatch;
  readonly action: RouteAction;
  readonly requestHeaders: HeaderOps;
  readonly responseHeaders: HeaderOps;
  readonly fault?: FaultPolicy;
  readonly cors?: CorsPolicy;
  /** The local_ratelimit filter's per-route config, with the route's (or its virtual host's) rate_limits actions. */
  readonly rateLimit?: RouteRateLimit;
}

/** One entry of a rate limit descriptor a request produces, from an Envoy rate_limits action. */
export type RateLimitAction =
  | { readonly kind: 'remote_address' }
  | { readonly kind: 'destination_cluster' }
  | { readonly kind: 'generic_key'; readonly key: string; readonly value: string }
  | { readonly kind: 'request_headers'; readonly header: string; readonly key: string; readonly skipIfAbsent: boolean }
  | {
      readonly kind: 'header_value_match';
      readonly key: string;
      readonly value: string;
      readonly expectMatch: boolean;
      readonly headers: readonly HeaderMatcher[];
    };

/**
 * Envoy's local rate limit as a route's per-filter config: descriptors (built by `actions`, one per rate_limits
 * entry) that equal a configured one take from its bucket; the default bucket is taken too (unless
 * always_consume_default_token_bucket is false and a descriptor matched).
 */
export interface RouteRateLimit {
  readonly bucket?: LocalRateLimit;
  readonly descriptors: ReadonlyArray<{ readonly entries: readonly (readonly [string, string])[]; readonly bucket: LocalRateLimit }>;
  readonly alwaysConsumeDefault: boolean;
  readonly actions: ReadonlyArray<readonly RateLimitAction[]>;
  /** Headers added to a limited response. */
  readonly limitedHeaders: readonly (readonly [string, string])[];
  readonly status: number;
}

/** Envoy's CORS filter policy for a route (header values as Envoy sends them: comma-joined lists, max age in seconds). */
export interface CorsPolicy {
  readonly origins: readonly StringMatcher[];
  readonly allowMethods?: string;
  readonly allowHeaders?: string;
  readonly exposeHeaders?: string;
  readonly maxAge?: string;
  readonly allowCredentials: boolean;
  /** A preflight from an origin not allowed goes on to the upstream (Envoy's default) rather than a bare 200. */
  readonly forwardNotMatchingPreflights: boolean;
}

export interface VirtualHost {
  readonly name: string;
  /** Exact domains (lower case, may carry `:port`). */
  readonly domains: ReadonlySet<string>;
  /** Suffixes of suffix wildcards: `.example.com` for `*.example.com`, `-bar.example.com` for `*-bar.example.com`. */
  readonly wildcardSuffixes: readonly string[];
  /** Prefixes of prefix wildcards: `foo.` for `foo.*`, `foo-` for `foo-*`. */
  readonly wildcardPrefixes?: readonly string[];
  readonly matchAll: boolean;
  readonly routes: readonly Route[];
  readonly requireTls: boolean;
}

export interface RouteTable {
  readonly name: string;
  readonly virtualHosts: readonly VirtualHost[];
}

// ---- policy ----

/** A compiled RBAC filter: deny/allow/log when any policy matches (Envoy RBAC semantics). */
export interface RbacConfig {
  readonly action: 'ALLOW' | 'DENY' | 'LOG';
  /** Envoy's shadow_rules: evaluated and reported under this stat prefix, never enforced. */
  readonly shadow?: { readonly statPrefix: string };
  readonly policies: ReadonlyArray<{
    readonly name: string;
    readonly permissions: readonly Permission[];
    readonly principals: readonly Principal[];
  }>;
}

export type Permission =
  | { readonly kind: 'any' }
  | { readonly kind: 'and' | 'or'; readonly rules: readonly Permission[] }
  | { readonly kind: 'not'; readonly rule: Permission }
  | { readonly kind: 'header'; readonly header: HeaderMatcher }
  | { readonly kind: 'path'; readonly match: StringMatcher }
  | { readonly kind: 'destination_port'; readonly port: number }
  | { readonly kind: 'destination_ip'; readonly cidr: CidrMatcher }
  | { readonly kind: 'metadata'; readonly metadata: MetadataMatcher };

/** Envoy's ValueMatcher over a dynamic-metadata value (JSON), the subset Istio's policies use. */
export type ValueMatcher =
  | { readonly kind: 'string'; readonly match: StringMatcher }
  | { readonly kind: 'list_one_of'; readonly value: ValueMatcher }
  | { readonly kind: 'or'; readonly values: readonly ValueMatcher[] }
  | { readonly kind: 'present'; readonly present: boolean }
  | { readonly kind: 'bool'; readonly value: boolean }
  | { readonly kind: 'null' };

/** A filter's dynamic metadata at a key path (e.g. the JWT filter's `payload.iss`) matched by a value matcher. */
export interface MetadataMatcher {
  readonly filter: string;
  readonly path: readonly string[];
  readonly value: ValueMatcher;
  readonly invert: boolean;
}

export type Principal =
  | { readonly kind: 'any' }
  | { readonly kind: 'and' | 'or'; readonly ids: readonly Principal[] }
  | { readonly kind: 'not'; readonly id: Principal }
  /** The peer's verified SPIFFE id (URI SAN); `any authenticated` when match is undefined. */
  | { readonly kind: 'authenticated'; readonly match?: StringMatcher }
  | { readonly kind: 'direct_remote_ip' | 'remote_ip' | 'source_ip'; readonly cidr: CidrMatcher }
  | { readonly kind: 'header'; readonly header: HeaderMatcher }
  | { readonly kind: 'metadata'; readonly metadata: MetadataMatcher };

/**
 * A network as the proxy matches it: lib's Cidr (host bits cleared, address in canonical text) and its address
 * as bytes, so matching a connection's address needs no parsing of the network.
 */
export interface CidrMatcher extends Cidr {
  readonly bytes: Uint8Array;
}

export interface LocalRateLimit {
  readonly maxTokens: number;
  readonly tokensPerFill: number;
  readonly fillIntervalMs: number;
  readonly status: number;
}

// ---- listeners ----

export interface DownstreamTls {
  readonly certSecret: string;
  readonly caSecret?: string;
  readonly requireClientCert: boolean;
  readonly alpn: readonly string[];
}

/** One JWT issuer the jwt_authn filter verifies tokens of (Envoy's JwtProvider). */
export interface JwtProvider {
  readonly name: string;
  readonly issuer?: string;
  /** Empty: any audience. */
  readonly audiences: readonly string[];
  readonly keys: readonly Jwk[];
  /** Where tokens are read; Envoy's defaults (`Authorization: Bearer`, `?access_token=`) when none is given. */
  readonly fromHeaders: ReadonlyArray<{ readonly name: string; readonly prefix: string }>;
  readonly fromParams: readonly string[];
  readonly fromCookies: readonly string[];
  /** Keep the token in the request sent on (otherwise its header is removed). */
  readonly forward: boolean;
  /** The header that carries the verified payload (base64url JSON) to the workload. */
  readonly payloadHeader?: string;
  readonly claimToHeaders: ReadonlyArray<{ readonly header: string; readonly claim: string }>;
  /** Claims whose space-separated string is also matched as a list (`scope`). */
  readonly spaceDelimitedClaims: readonly string[];
  /** The metadata key the payload is kept under for RBAC (`payload` in Istio's config). */
  readonly payloadInMetadata?: string;
  readonly clockSkewSeconds: number;
}

/** Envoy's JwtRequirement tree. */
export type JwtRequirement =
  | { readonly kind: 'provider'; readonly provider: string }
  | { readonly kind: 'any' | 'all'; readonly requirements: readonly JwtRequirement[] }
  | { readonly kind: 'allow_missing' | 'allow_missing_or_failed' };

export interface JwtAuthnConfig {
  readonly providers: ReadonlyMap<string, JwtProvider>;
  /** First rule whose path matches decides; a request no rule matches is not checked. */
  readonly rules: ReadonlyArray<{ readonly match: StringMatcher; readonly requires?: JwtRequirement }>;
  readonly bypassCorsPreflight: boolean;
}

/**
 * A filter that calls a service the proxy has no client for (ext_proc, ext_authz, ratelimit) and is configured
 * to fail closed: every request gets Envoy's answer for an unreachable service.
 */
export interface UnavailableFilter {
  readonly name: string;
  readonly status: number;
  /** Envoy's response flag for the failure: UAEX (ext_authz), RLSE (ratelimit), none (ext_proc). */
  readonly flag?: 'UAEX' | 'RLSE';
}

export interface HttpFilters {
  /** The first fail-closed filter whose service the proxy cannot call; it answers before any other filter runs. */
  readonly unavailable?: UnavailableFilter;
  /** The JWT filter (RequestAuthentication), which runs before RBAC. */
  readonly jwt?: JwtAuthnConfig;
  readonly rbac: readonly RbacConfig[];
  readonly rateLimit?: LocalRateLimit;
  /** Whether the local_ratelimit filter is in the chain: routes' own rate limits (RouteRateLimit) apply only then. */
  readonly routeRateLimits?: boolean;
  /** Route-level fault config applies only when the fault filter is present. */
  readonly fault: boolean;
  /** Likewise, route-level CORS policies apply only when the CORS filter is present. */
  readonly cors?: boolean;
  /** Telemetry metric overrides (the istio.stats filter); absent: Istio's standard metrics and labels. */
  readonly stats?: StatsConfig;
}

/** What Istio's stats filter config (stats.PluginConfig) asks of one listener filter's metrics. */
export interface StatsConfig {
  /** The distinct tag expressions, evaluated once per request or connection (values in the same order). */
  readonly expressions: readonly TagExpression[];
  /** By Istio's metric name without the `istio_` prefix (`requests_total`); a metric not here is reported as standard. */
  readonly metrics: ReadonlyMap<string, MetricOverride>;
}

export interface MetricOverride {
  readonly drop: boolean;
  /** Labels removed, then labels set (tag, index into StatsConfig.expressions): replaced in place or appended. */
  readonly remove: readonly string[];
  readonly upsert: ReadonlyArray<readonly [string, number]>;
}

/** One `access_log` entry (Envoy's stdout logger), with its status filter when it has one. */
export interface AccessLogConfig {
  readonly statusFilter?: { readonly op: 'EQ' | 'GE' | 'LE'; readonly value: number };
}

/** Where spans go: an OTLP collector behind a cluster (its endpoints), over gRPC or HTTP (protobuf). */
export interface TraceExporterConfig {
  readonly protocol: 'grpc' | 'http';
  readonly cluster: string;
  /** HTTP: the request path (e.g. /v1/traces); gRPC: the authority. */
  readonly path: string;
  readonly authority: string;
  readonly timeoutMs: number;
  readonly headers: Readonly<Record<string, string>>;
  /** The OTel resource's service.name when the request names no workload. */
  readonly serviceName: string;
}

/** A span tag: a fixed value, an environment variable of the proxy, or a request header. */
export interface TraceTag {
  readonly tag: string;
  readonly literal?: string;
  readonly header?: { readonly name: string; readonly defaultValue: string };
  readonly environment?: { readonly name: string; readonly defaultValue: string };
}

/** The HCM's tracing: sample new traces at `sampling`, propagate W3C and B3 context, report spans to `exporter`. */
export interface TracingConfig {
  /** Fraction in [0, 1] of requests without an upstream decision that start a sampled trace. */
  readonly sampling: number;
  /**
   * Envoy's use_request_id_for_trace_sampling (its default, and Istio's): a new trace's decision comes from the
   * x-request-id, so every proxy seeing the same id decides alike; false: each decides at random.
   */
  readonly useRequestId: boolean;
  /** SERVER for inbound listeners, CLIENT for outbound ones and gateways (Envoy's traffic direction). */
  readonly spanKind: 'CLIENT' | 'SERVER';
  readonly maxTagLength: number;
  readonly tags: readonly TraceTag[];
  /** None: context is propagated, spans are not reported (Istio's disableSpanReporting). */
  readonly exporter?: TraceExporterConfig;
}

export type NetworkAction =
  | {
      readonly kind: 'http';
      readonly tracing?: TracingConfig;
      /** Empty: no access log. */
      readonly accessLog?: readonly AccessLogConfig[];
      readonly routeConfig: string;
      readonly filters: HttpFilters;
      readonly statPrefix: string;
      /** Pass the verified peer identity to the app in x-forwarded-client-cert (inbound). */
      readonly forwardClientCert: boolean;
    }
  | {
      readonly kind: 'tcp';
      readonly accessLog?: readonly AccessLogConfig[];
      /** Weighted when several. */
      readonly clusters: ReadonlyArray<{ readonly name: string; readonly weight: number }>;
      readonly rbac: readonly RbacConfig[];
      readonly statPrefix: string;
      readonly idleTimeoutMs?: number;
      /** Telemetry metric overrides (an istio.stats network filter before tcp_proxy). */
      readonly stats?: StatsConfig;
    };

export interface FilterChainMatch {
  readonly destinationPort?: number;
  readonly serverNames: readonly string[];
  /** `tls` or `raw_buffer`; undefined = either. */
  readonly transportProtocol?: 'tls' | 'raw_buffer';
  readonly applicationProtocols: readonly string[];
  readonly prefixRanges: readonly CidrMatcher[];
}

export interface FilterChain {
  readonly name: string;
  readonly match: FilterChainMatch;
  /** Terminate TLS with this context before the network action. */
  readonly tls?: DownstreamTls;
  readonly action: NetworkAction;
}

export interface ListenerConfig {
  readonly name: string;
  readonly address: string;
  readonly port: number;
  /** false: a virtual listener reached through 15001 by original destination (Istio's VIP:port listeners). */
  readonly bindToPort: boolean;
  /** 15001-style: hand the connection to the listener of its original destination. */
  readonly useOriginalDst: boolean;
  /** The listener needs the first bytes (TLS ClientHello / HTTP) to pick a chain. */
  readonly inspectTls: boolean;
  readonly filterChains: readonly FilterChain[];
  readonly defaultChain?: FilterChain;
}

/** Everything the proxy runs; swapped atomically on every accepted xDS update. */
export interface ProxyConfig {
  readonly version: string;
  readonly listeners: ReadonlyMap<string, ListenerConfig>;
  /** Virtual listeners by `address:port` (for 15001 original-destination lookup). */
  readonly virtualByAddress: ReadonlyMap<string, ListenerConfig>;
  readonly clusters: ReadonlyMap<string, ClusterConfig>;
  readonly routes: ReadonlyMap<string, RouteTable>;
}

/** Where certificates come from: the agent's local SDS (identity issue); tests pass files or the controller's CA. */
export interface SecretStore {
  /** A certificate chain and its key (PEM), by SDS secret name. */
  tlsCertificate(name: string): { readonly certPem: string; readonly keyPem: string } | undefined;
  /** A trust bundle (PEM), by SDS secret name (e.g. ROOTCA). */
  trustedCa(name: string): string | undefined;
  /** Called when secrets rotate so TLS contexts are rebuilt for new connections. */
  onChange(cb: () => void): () => void;
}
