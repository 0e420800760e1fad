import { z } from 'zod';
import { ErrorCode, vmeshError } from '../lib/errors.js';
import { parseDuration } from './resources/duration.js';
import { hostProblem, isDns1123Label, isDns1123Subdomain, quote } from './resources/names.js';
import { deepFreeze, notImplemented } from './resources/schema-helpers.js';
import { type FieldIssue, parseFields } from './resources/zod-issues.js';

/** Mesh-wide settings, Istio's MeshConfig in vmesh's scope. */
export interface MeshConfig {
  /** SPIFFE trust domain of workload identities: `spiffe://<trustDomain>/ns/<ns>/sa/<sa>`. */
  readonly trustDomain: string;
  /** Other trust domains whose identities are treated as this one's (migrations, mesh mergers). */
  readonly trustDomainAliases: readonly string[];
  /** Where mesh-wide policy lives (Istio's istio-system): e.g. a PeerAuthentication without selector here applies to all. */
  readonly rootNamespace: string;
  readonly outboundTrafficPolicy: { readonly mode: 'ALLOW_ANY' | 'REGISTRY_ONLY' };
  readonly defaultAccessLog: { readonly enabled: boolean; readonly encoding: 'JSON' | 'TEXT' };
  /** Services are `<name>.<namespace>.<dnsDomain>`. */
  readonly dnsDomain: 'mesh' | string;
  /** Suffixes accepted as `dnsDomain`, so Istio YAML naming `*.svc.cluster.local` works unchanged. */
  readonly dnsDomainAliases: readonly string[];
  readonly defaultCertTtlSeconds: number;
  /** Use mTLS to endpoints that run an agent when no DestinationRule says otherwise. */
  readonly enableAutoMtls: boolean;
  /** Istio's extensionProviders: the tracing backends Telemetry resources and defaultProviders name. */
  readonly extensionProviders: readonly TracingProvider[];
  /** Providers in effect when no Telemetry resource names any (Istio's defaultProviders.tracing). */
  readonly defaultTracingProviders: readonly string[];
  /** Istio's enableTracing: off, no proxy touches trace headers or reports spans, whatever Telemetry says. */
  readonly enableTracing: boolean;
  /** Percentage of new traces sampled when no Telemetry sets randomSamplingPercentage (defaultConfig.tracing.sampling). */
  readonly defaultTracingSampling: number;
}

/** An OpenTelemetry collector reached with OTLP over gRPC, or over HTTP (protobuf) when `http` is set. */
export interface TracingProvider {
  readonly name: string;
  readonly kind: 'opentelemetry';
  /** A mesh host (ServiceEntry or registered service), as Istio requires: its cluster carries the spans. */
  readonly service: string;
  readonly port: number;
  readonly http?: { readonly path: string; readonly timeoutMs: number; readonly headers: Readonly<Record<string, string>> };
  /** Longest tag value sent (Istio's maxTagLength; 256 by default). */
  readonly maxTagLength: number;
}

export const DEFAULT_MESH_CONFIG: MeshConfig = deepFreeze({
  trustDomain: 'cluster.local',
  trustDomainAliases: [],
  rootNamespace: 'vmesh-system',
  outboundTrafficPolicy: { mode: 'ALLOW_ANY' },
  defaultAccessLog: { enabled: false, encoding: 'TEXT' },
  dnsDomain: 'mesh',
  dnsDomainAliases: ['svc.cluster.local'],
  defaultCertTtlSeconds: 86_400,
  enableAutoMtls: true,
  extensionProviders: [],
  defaultTracingProviders: [],
  enableTracing: true,
  defaultTracingSampling: 1,
});

const MIN_CERT_TTL_SECONDS = 600;
const MAX_CERT_TTL_SECONDS = 90 * 86_400;

const otelProvider = z.strictObject({
  service: z.string(),
  port: z.number().int(),
  maxTagLength: z.number().int().optional(),
  http: z
    .strictObject({
      path: z.string().optional(),
      timeout: z.string().optional(),
      headers: z.array(z.strictObject({ name: z.string(), value: z.string() })).optional(),
    })
    .optional(),
  resourceDetectors: notImplemented(),
  dynatraceSampler: notImplemented(),
});

const extensionProvider = z.strictObject({
  name: z.string(),
  opentelemetry: otelProvider.optional(),
  // Istio's other providers: named and refused, so a config written for Istio fails loudly, not half-works.
  zipkin: notImplemented('use opentelemetry'),
  datadog: notImplemented('use opentelemetry'),
  lightstep: notImplemented('use opentelemetry'),
  skywalking: notImplemented('use opentelemetry'),
  stackdriver: notImplemented('use opentelemetry'),
  opencensus: notImplemented('use opentelemetry'),
  envoyExtAuthzHttp: notImplemented(),
  envoyExtAuthzGrpc: notImplemented(),
  envoyFileAccessLog: notImplemented('use defaultAccessLog'),
  envoyHttpAls: notImplemented(),
  envoyTcpAls: notImplemented(),
  envoyOtelAls: notImplemented(),
  prometheus: notImplemented('the agent always serves Prometheus metrics'),
  sds: notImplemented(),
});

const meshSchema = z.strictObject({
  trustDomain: z.string().optional(),
  trustDomainAliases: z.array(z.string()).optional(),
  rootNamespace: z.string().optional(),
  outboundTrafficPolicy: z.strictObject({ mode: z.enum(['ALLOW_ANY', 'REGISTRY_ONLY']).optional() }).optional(),
  defaultAccessLog: z.strictObject({ enabled: z.boolean().optional(), encoding: z.enum(['JSON', 'TEXT']).optional() }).optional(),
  dnsDomain: z.string().optional(),
  dnsDomainAliases: z.array(z.string()).optional(),
  defaultCertTtlSeconds: z.number().int().optional(),
  enableAutoMtls: z.boolean().optional(),
  // Istio MeshConfig settings vmesh does not implement: named and refused rather than ignored.
  accessLogFile: notImplemented('use defaultAccessLog.enabled'),
  accessLogEncoding: notImplemented('use defaultAccessLog.encoding'),
  accessLogFormat: notImplemented(),
  extensionProviders: z.array(extensionProvider).optional(),
  defaultProviders: z
    .strictObject({
      tracing: z.array(z.string()).optional(),
      accessLogging: notImplemented('use defaultAccessLog'),
      metrics: notImplemented('the agent always serves Prometheus metrics'),
    })
    .optional(),
  enableTracing: z.boolean().optional(),
  // Of Istio's per-proxy defaults only the tracing sample rate has a meaning for vmesh's shared host proxy.
  defaultConfig: z.strictObject({ tracing: z.strictObject({ sampling: z.number().optional() }).optional() }).optional(),
  localityLbSetting: notImplemented('set it in a DestinationRule'),
  connectTimeout: notImplemented('set connectionPool.tcp.connectTimeout in a DestinationRule'),
  tcpKeepalive: notImplemented(),
  protocolDetectionTimeout: notImplemented(),
  discoverySelectors: notImplemented(),
  defaultServiceExportTo: notImplemented(),
  defaultVirtualServiceExportTo: notImplemented(),
  defaultDestinationRuleExportTo: notImplemented(),
  serviceSettings: notImplemented(),
  caCertificates: notImplemented(),
  certificates: notImplemented(),
  enablePrometheusMerge: notImplemented(),
  ingressClass: notImplemented(),
  ingressService: notImplemented(),
  ingressControllerMode: notImplemented(),
});

function semanticIssues(m: MeshConfig): FieldIssue[] {
  const out: FieldIssue[] = [];
  const add = (path: string, message: string) => out.push({ path, message, unsupported: false });
  const trustDomain = (path: string, td: string) => {
    if (!td.split('.').every(isDns1123Label)) add(path, `${quote(td)} is not a trust domain (want DNS labels, e.g. cluster.local)`);
  };
  trustDomain('trustDomain', m.trustDomain);
  m.trustDomainAliases.forEach((td, i) => {
    trustDomain(`trustDomainAliases[${i}]`, td);
  });
  if (!isDns1123Label(m.rootNamespace)) add('rootNamespace', `${quote(m.rootNamespace)} is not a namespace name (DNS-1123 label)`);
  const domain = (path: string, d: string) => {
    const p = isDns1123Subdomain(d) ? hostProblem(d, { short: true }) : `${quote(d)} is not a DNS domain`;
    if (p) add(path, p);
  };
  domain('dnsDomain', m.dnsDomain);
  m.dnsDomainAliases.forEach((d, i) => {
    domain(`dnsDomainAliases[${i}]`, d);
    if (d === m.dnsDomain) add(`dnsDomainAliases[${i}]`, `${quote(d)} is the dnsDomain itself, not an alias`);
  });
  const names = new Set<string>();
  m.extensionProviders.forEach((p, i) => {
    const at = `extensionProviders[${i}]`;
    if (!p.name) add(`${at}.name`, 'must not be empty');
    else if (names.has(p.name)) add(`${at}.name`, `${quote(p.name)} is defined twice`);
    names.add(p.name);
    const h = p.service.includes('/') ? p.service.slice(p.service.indexOf('/') + 1) : p.service;
    if (!isDns1123Subdomain(h)) add(`${at}.opentelemetry.service`, `${quote(p.service)} is not a host name`);
    if (p.port < 1 || p.port > 65535) add(`${at}.opentelemetry.port`, `${p.port} is not a port`);
    if (p.http && !p.http.path.startsWith('/')) add(`${at}.opentelemetry.http.path`, `${quote(p.http.path)} must start with /`);
  });
  m.defaultTracingProviders.forEach((n, i) => {
    if (!names.has(n)) add(`defaultProviders.tracing[${i}]`, `${quote(n)} is not one of extensionProviders`);
  });
  if (!(m.defaultTracingSampling >= 0 && m.defaultTracingSampling <= 100)) {
    add('defaultConfig.tracing.sampling', `${m.defaultTracingSampling} is not a percentage (0-100)`);
  }
  if (m.defaultCertTtlSeconds < MIN_CERT_TTL_SECONDS || m.defaultCertTtlSeconds > MAX_CERT_TTL_SECONDS) {
    add('defaultCertTtlSeconds', `${m.defaultCertTtlSeconds} is out of range (${MIN_CERT_TTL_SECONDS}-${MAX_CERT_TTL_SECONDS} seconds)`);
  }
  return out;
}

type ParsedProvider = z.output<typeof extensionProvider>;

function tracingProvider(p: ParsedProvider, i: number, fail: (issues: readonly FieldIssue[]) => never): TracingProvider {
  const o = p.opentelemetry;
  if (!o)
    return fail([
      { path: `extensionProviders[${i}]`, message: 'opentelemetry is required (the only provider vmesh implements)', unsupported: false },
    ]);
  let timeoutMs = 5000;
  if (o.http?.timeout !== undefined) {
    const t = parseDuration(o.http.timeout);
    if (!t.ok || t.value <= 0) {
      fail([
        {
          path: `extensionProviders[${i}].opentelemetry.http.timeout`,
          message: `${quote(o.http.timeout)} is not a duration`,
          unsupported: false,
        },
      ]);
    } else timeoutMs = t.value;
  }
  return {
    name: p.name,
    kind: 'opentelemetry',
    service: o.service,
    port: o.port,
    maxTagLength: o.maxTagLength ?? 256,
    ...(o.http
      ? {
          http: {
            path: o.http.path ?? '/v1/traces',
            timeoutMs,
            headers: Object.fromEntries((o.http.headers ?? []).map((h) => [h.name.toLowerCase(), h.value])),
          },
        }
      : {}),
  };
}

/**
 * Reads the controller's mesh config (camelCase keys, as Istio's MeshConfig), merged over the defaults
 * and deep-frozen. `obj` is the parsed `mesh:` section, or undefined/null for all defaults.
 * Throws VMESH_ERR_INVALID_CONFIG naming every bad field on one line.
 */
export function parseMeshConfig(obj: unknown, source: string): MeshConfig {
  const fail = (issues: readonly FieldIssue[]): never => {
    const text = issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join('; ');
    throw vmeshError(ErrorCode.InvalidConfig, `mesh config ${source}: ${text}`, { source, issues });
  };
  const parsed = parseFields(meshSchema, obj ?? {}, []);
  if (!parsed.ok) return fail(parsed.issues);
  const v = parsed.value;
  const d = DEFAULT_MESH_CONFIG;
  const merged: MeshConfig = {
    trustDomain: v.trustDomain ?? d.trustDomain,
    trustDomainAliases: [...(v.trustDomainAliases ?? d.trustDomainAliases)],
    rootNamespace: v.rootNamespace ?? d.rootNamespace,
    outboundTrafficPolicy: { mode: v.outboundTrafficPolicy?.mode ?? d.outboundTrafficPolicy.mode },
    defaultAccessLog: {
      enabled: v.defaultAccessLog?.enabled ?? d.defaultAccessLog.enabled,
      encoding: v.defaultAccessLog?.encoding ?? d.defaultAccessLog.encoding,
    },
    dnsDomain: (v.dnsDomain ?? d.dnsDomain).replace(/\.$/, ''),
    dnsDomainAliases: (v.dnsDomainAliases ?? d.dnsDomainAliases).map((a) => a.replace(/\.$/, '')),
    defaultCertTtlSeconds: v.defaultCertTtlSeconds ?? d.defaultCertTtlSeconds,
    enableAutoMtls: v.enableAutoMtls ?? d.enableAutoMtls,
    extensionProviders: (v.extensionProviders ?? []).map((p, i) => tracingProvider(p, i, fail)),
    defaultTracingProviders: [...(v.defaultProviders?.tracing ?? d.defaultTracingProviders)],
    enableTracing: v.enableTracing ?? d.enableTracing,
    defaultTracingSampling: v.defaultConfig?.tracing?.sampling ?? d.defaultTracingSampling,
  };
  const issues = semanticIssues(merged);
  if (issues.length > 0) fail(issues);
  return deepFreeze(merged);
}
