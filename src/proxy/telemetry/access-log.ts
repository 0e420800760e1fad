import { formatSocketAddr } from '../../lib/addr.js';
import type { Logger } from '../../lib/logger.js';
import { accessLogWants } from '../compile/access-log.js';
import type { RequestStats } from '../http/types.js';
import type { AccessLogConfig, ProxyConfig } from '../proxy-config.js';
import type { TcpConnectionStats } from '../tcp/tcp-proxy.js';

/**
 * Dry-run AuthorizationPolicy results under the names Envoy gives them in the RBAC filter's dynamic metadata
 * (`istio_dry_run_deny_shadow_engine_result: denied`, `..._shadow_effective_policy_id: ns/name[0]`).
 */
function shadowFields(s: RequestStats): Record<string, string> {
  const out: Record<string, string> = {};
  for (const r of s.rbacShadow ?? []) {
    out[`${r.statPrefix}shadow_engine_result`] = r.allowed ? 'allowed' : 'denied';
    if (r.policy !== undefined) out[`${r.statPrefix}shadow_effective_policy_id`] = r.policy;
  }
  return out;
}

/**
 * Envoy's default access log fields as one JSON object per request or TCP connection, plus the peer identities.
 * Written only for filters whose config carries an `access_log` entry that accepts the response code.
 */
export class AccessLog {
  private http = new Map<string, readonly AccessLogConfig[]>();
  private tcp = new Map<string, readonly AccessLogConfig[]>();

  constructor(private readonly out: Logger) {}

  /** Which filters log: HCMs by stat prefix, tcp_proxy filters by listener and chain. */
  setConfig(config: ProxyConfig): void {
    const http = new Map<string, readonly AccessLogConfig[]>();
    const tcp = new Map<string, readonly AccessLogConfig[]>();
    for (const l of config.listeners.values()) {
      for (const c of l.defaultChain ? [...l.filterChains, l.defaultChain] : l.filterChains) {
        const a = c.action;
        if (!a.accessLog?.length) continue;
        if (a.kind === 'http') http.set(a.statPrefix, a.accessLog);
        else tcp.set(`${l.name}\u0001${c.name}`, a.accessLog);
      }
    }
    this.http = http;
    this.tcp = tcp;
  }

  /** Cheap check before any field is formatted. */
  wantsRequest(s: RequestStats): boolean {
    const list = this.http.get(s.statPrefix);
    return list?.some((e) => accessLogWants(e, s.status)) === true;
  }

  request(s: RequestStats, sourcePrincipal: string, destinationPrincipal: string): void {
    this.out.info({
      start_time: new Date(Date.now() - s.durationMs).toISOString(),
      method: s.method,
      path: s.path,
      protocol: s.protocol,
      response_code: s.status,
      response_flags: s.responseFlags,
      bytes_received: s.bytesIn,
      bytes_sent: s.bytesOut,
      duration: Math.round(s.durationMs),
      upstream_host: s.upstreamHost ?? null,
      upstream_cluster: s.cluster ?? null,
      route_name: s.routeName ?? null,
      downstream_remote_address: formatSocketAddr(s.downstreamRemote),
      requested_server_name: s.serverName ?? null,
      x_request_id: s.requestId ?? null,
      authority: s.authority,
      source_principal: sourcePrincipal,
      destination_principal: destinationPrincipal,
      trace_id: s.trace?.traceId ?? null,
      ...shadowFields(s),
    });
  }

  wantsConnection(s: TcpConnectionStats): boolean {
    const list = this.tcp.get(`${s.listener}\u0001${s.chain}`);
    return list?.some((e) => accessLogWants(e, 0)) === true;
  }

  connection(s: TcpConnectionStats, sourcePrincipal: string, destinationPrincipal: string): void {
    this.out.info({
      start_time: new Date(s.startTime).toISOString(),
      method: null,
      path: null,
      protocol: null,
      response_code: 0,
      response_flags: s.flags,
      bytes_received: s.bytesReceived,
      bytes_sent: s.bytesSent,
      duration: s.durationMs,
      upstream_host: s.upstreamHost ?? null,
      upstream_cluster: s.cluster ?? null,
      downstream_remote_address: formatSocketAddr(s.downstreamRemote),
      requested_server_name: s.serverName ?? null,
      x_request_id: null,
      authority: null,
      source_principal: sourcePrincipal,
      destination_principal: destinationPrincipal,
      trace_id: null,
      ...(s.detail ? { response_code_details: s.detail } : {}),
    });
  }
}
