import { z } from 'zod';
import { ErrorCode, vmeshError } from '../lib/errors.js';
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
});

const MIN_CERT_TTL_SECONDS = 600;
const MAX_CERT_TTL_SECONDS = 90 * 86_400;

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
  defaultConfig: notImplemented(),
  extensionProviders: notImplemented(),
  defaultProviders: notImplemented(),
  enableTracing: notImplemented(),
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
  if (m.defaultCertTtlSeconds < MIN_CERT_TTL_SECONDS || m.defaultCertTtlSeconds > MAX_CERT_TTL_SECONDS) {
    add('defaultCertTtlSeconds', `${m.defaultCertTtlSeconds} is out of range (${MIN_CERT_TTL_SECONDS}-${MAX_CERT_TTL_SECONDS} seconds)`);
  }
  return out;
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
  };
  const issues = semanticIssues(merged);
  if (issues.length > 0) fail(issues);
  return deepFreeze(merged);
}
