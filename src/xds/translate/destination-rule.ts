import type { MeshConfig } from '../../api/mesh-config.js';
import type { DestinationRuleSpec, Resource } from '../../api/resource.js';
import { canonicalHost, hostMatches, splitMeshHost } from '../../api/service-hosts.js';
import type { TransportSocket } from '../../generated/envoy/config/core/v3/TransportSocket.js';
import type { RouteAction } from '../../generated/envoy/config/route/v3/RouteAction.js';
import type { CommonTlsContext } from '../../generated/envoy/extensions/transport_sockets/tls/v3/CommonTlsContext.js';
import type { TranslateInput } from './input.js';
import { sdsSecretConfig } from './tls.js';
import { typedConfig } from './typed-config.js';

type HashPolicy = NonNullable<RouteAction['hash_policy']>[number];

type FullTrafficPolicy = NonNullable<DestinationRuleSpec['trafficPolicy']>;

/** A DestinationRule traffic policy for one port (and subset), port-level settings already applied. */
export type TrafficPolicy = Omit<FullTrafficPolicy, 'portLevelSettings'>;
export type LoadBalancerSettings = NonNullable<TrafficPolicy['loadBalancer']>;
export type ConnectionPoolSettings = NonNullable<TrafficPolicy['connectionPool']>;
export type OutlierDetectionSettings = NonNullable<TrafficPolicy['outlierDetection']>;
export type ClientTlsSettings = NonNullable<TrafficPolicy['tls']>;

const SYSTEM_CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';

/** `spiffe://<trustDomain>/ns/<namespace>/sa/<serviceAccount>`: a workload's identity, as Istio spells it. */
export function spiffeIdOf(mesh: Pick<MeshConfig, 'trustDomain'>, namespace: string, serviceAccount: string): string {
  return `spiffe://${mesh.trustDomain}/ns/${namespace}/sa/${serviceAccount}`;
}

/** Whether a DestinationRule in `drNamespace` with this exportTo is visible from `fromNamespace` (unset = everywhere). */
function exportedTo(exportTo: readonly string[] | undefined, drNamespace: string, fromNamespace: string): boolean {
  if (!exportTo || exportTo.length === 0) return true;
  return exportTo.some((e) => e === '*' || e === fromNamespace || (e === '.' && drNamespace === fromNamespace));
}

/** Exact host beats wildcard; a longer wildcard suffix beats a shorter one; `*` matches last. */
function specificity(pattern: string): number {
  if (!pattern.includes('*')) return Number.MAX_SAFE_INTEGER;
  return pattern.length;
}

/** The namespace a host's service lives in: the registry's record, else the mesh name's second label. */
function serviceNamespace(input: TranslateInput, hostname: string): string | undefined {
  return input.model.services.get(hostname)?.namespace ?? splitMeshHost(hostname, input.mesh)?.namespace;
}

function bestIn(
  input: TranslateInput,
  hostname: string,
  namespace: string,
  fromNamespace: string,
): Resource<'DestinationRule'> | undefined {
  let best: { dr: Resource<'DestinationRule'>; score: number } | undefined;
  for (const dr of input.config.destinationRules) {
    if (dr.metadata.namespace !== namespace) continue;
    if (!exportedTo(dr.spec.exportTo, namespace, fromNamespace)) continue;
    const pattern = canonicalHost(dr.spec.host, namespace, input.mesh);
    if (!hostMatches(pattern, hostname)) continue;
    const score = specificity(pattern);
    // Ties go to the first name in order, so the choice does not depend on the order resources arrived in.
    if (!best || score > best.score || (score === best.score && dr.metadata.name < best.dr.metadata.name)) best = { dr, score };
  }
  return best?.dr;
}

/**
 * The DestinationRule a client in `fromNamespace` applies to `hostname` (canonical), as Istio looks it up:
 * the client's own namespace first, then the service's namespace, then the root namespace; exportTo respected,
 * the most specific host wins within a namespace.
 */
export function findDestinationRule(
  input: TranslateInput,
  hostname: string,
  fromNamespace: string,
): Resource<'DestinationRule'> | undefined {
  const order = [fromNamespace, serviceNamespace(input, hostname), input.mesh.rootNamespace];
  const seen = new Set<string>();
  for (const ns of order) {
    if (ns === undefined || seen.has(ns)) continue;
    seen.add(ns);
    const dr = bestIn(input, hostname, ns, fromNamespace);
    if (dr) return dr;
  }
  return undefined;
}

function portLevel(tp: FullTrafficPolicy | undefined, port: number): TrafficPolicy | undefined {
  return tp?.portLevelSettings?.find((p) => p.port.number === port);
}

/** Port-level settings replace all four policies (they do not inherit, per Istio's docs). */
function fromPort(p: TrafficPolicy): TrafficPolicy {
  return {
    ...(p.loadBalancer ? { loadBalancer: p.loadBalancer } : {}),
    ...(p.connectionPool ? { connectionPool: p.connectionPool } : {}),
    ...(p.outlierDetection ? { outlierDetection: p.outlierDetection } : {}),
    ...(p.tls ? { tls: p.tls } : {}),
  };
}

function topLevel(tp: FullTrafficPolicy | undefined, port: number): TrafficPolicy | undefined {
  if (!tp) return undefined;
  const pl = portLevel(tp, port);
  if (pl) return fromPort(pl);
  const { portLevelSettings: _ignored, ...rest } = tp;
  return rest;
}

/**
 * The traffic policy for `port` (and `subset`), merged as Istio's MergeTrafficPolicy: the service-level policy
 * with its port-level settings for this port, then each field the subset sets, then the subset's port-level
 * settings for this port. Undefined when nothing applies.
 */
export function trafficPolicyFor(dr: Resource<'DestinationRule'> | undefined, port: number, subset?: string): TrafficPolicy | undefined {
  if (!dr) return undefined;
  const base = topLevel(dr.spec.trafficPolicy, port);
  const sub = subset ? dr.spec.subsets?.find((s) => s.name === subset)?.trafficPolicy : undefined;
  if (!sub) return base;
  const subPort = portLevel(sub, port);
  if (subPort) return fromPort(subPort);
  const merged: TrafficPolicy = {
    ...base,
    ...(sub.loadBalancer ? { loadBalancer: sub.loadBalancer } : {}),
    ...(sub.connectionPool ? { connectionPool: sub.connectionPool } : {}),
    ...(sub.outlierDetection ? { outlierDetection: sub.outlierDetection } : {}),
    ...(sub.tls ? { tls: sub.tls } : {}),
  };
  return merged;
}

/** The DestinationRule's subsets (labels default to none: the subset then selects every endpoint). */
export function subsetsOf(dr: Resource<'DestinationRule'> | undefined): Array<{ name: string; labels: Record<string, string> }> {
  return (dr?.spec.subsets ?? []).map((s) => ({ name: s.name, labels: { ...(s.labels ?? {}) } }));
}

function protoDuration(ms: number): { seconds: number; nanos: number } {
  return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1_000_000 };
}

/**
 * Envoy RouteAction.hash_policy for a consistentHash load balancer (the cluster only picks RING_HASH/MAGLEV;
 * the key comes from the route). Empty when the policy does not hash.
 */
export function hashPolicyFor(trafficPolicy: TrafficPolicy | undefined): HashPolicy[] {
  const ch = trafficPolicy?.loadBalancer?.consistentHash;
  if (!ch) return [];
  if (ch.httpHeaderName !== undefined) return [{ header: { header_name: ch.httpHeaderName } }];
  if (ch.httpCookie) {
    const c = ch.httpCookie;
    return [{ cookie: { name: c.name, ...(c.path !== undefined ? { path: c.path } : {}), ttl: protoDuration(c.ttl) } }];
  }
  if (ch.useSourceIp) return [{ connection_properties: { source_ip: true } }];
  if (ch.httpQueryParameterName !== undefined) return [{ query_parameter: { name: ch.httpQueryParameterName } }];
  return [];
}

function tlsFiles(tls: ClientTlsSettings): CommonTlsContext {
  if (tls.credentialName !== undefined && tls.mode === 'MUTUAL') {
    return { tls_certificate_sds_secret_configs: [sdsSecretConfig(`file-cert:${tls.credentialName}`)] };
  }
  if (tls.mode === 'MUTUAL' && tls.clientCertificate !== undefined && tls.privateKey !== undefined) {
    return { tls_certificates: [{ certificate_chain: { filename: tls.clientCertificate }, private_key: { filename: tls.privateKey } }] };
  }
  return {};
}

/**
 * The Envoy transport socket for DestinationRule tls SIMPLE/MUTUAL (TLS origination toward a server outside the
 * mesh's trust): CA from caCertificates, else the agent-served `file-cert:<credentialName>-cacert`, else the
 * system bundle; client certificate from files or `file-cert:<credentialName>` (MUTUAL); SNI from tls.sni or the host.
 */
export function tlsOriginationSocket(tls: ClientTlsSettings, hostname: string): TransportSocket {
  const sans = (tls.subjectAltNames ?? []).map((s) => ({ san_type: 'DNS' as const, matcher: { exact: s } }));
  const sanCheck = sans.length > 0 ? { match_typed_subject_alt_names: sans } : {};
  let validation: CommonTlsContext = {};
  if (tls.insecureSkipVerify) validation = {};
  else if (tls.caCertificates !== undefined)
    validation = { validation_context: { trusted_ca: { filename: tls.caCertificates }, ...sanCheck } };
  else if (tls.credentialName !== undefined) {
    validation = {
      combined_validation_context: {
        default_validation_context: sanCheck,
        validation_context_sds_secret_config: sdsSecretConfig(`file-cert:${tls.credentialName}-cacert`),
      },
    };
  } else validation = { validation_context: { trusted_ca: { filename: SYSTEM_CA_BUNDLE }, ...sanCheck } };
  const sni = tls.sni ?? (hostname.includes('*') ? undefined : hostname);
  return {
    name: 'envoy.transport_sockets.tls',
    typed_config: typedConfig('upstreamTlsContext', {
      ...(sni !== undefined ? { sni } : {}),
      common_tls_context: { ...tlsFiles(tls), ...validation },
    }),
  };
}
