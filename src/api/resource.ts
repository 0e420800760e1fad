import type { ErrorCode } from '../lib/errors.js';
import type { WasmPluginSpec } from './resources/extensions-wasm-plugin.js';
import type { DestinationRuleSpec } from './resources/networking-destination-rule.js';
import type { EnvoyFilterSpec } from './resources/networking-envoy-filter.js';
import type { GatewaySpec } from './resources/networking-gateway.js';
import type { ProxyConfigSpec } from './resources/networking-proxy-config.js';
import type { ServiceEntrySpec } from './resources/networking-service-entry.js';
import type { SidecarSpec } from './resources/networking-sidecar.js';
import type { VirtualServiceSpec } from './resources/networking-virtual-service.js';
import type { WorkloadEntrySpec, WorkloadGroupSpec } from './resources/networking-workload.js';
import type { AuthorizationPolicySpec } from './resources/security-authorization-policy.js';
import type { PeerAuthenticationSpec } from './resources/security-peer-authentication.js';
import type { RequestAuthenticationSpec } from './resources/security-request-authentication.js';
import type { TelemetrySpec } from './resources/telemetry.js';
import type { HealthCheckSpec } from './resources/vmesh-health-check.js';
import type { LocalRateLimitSpec } from './resources/vmesh-local-rate-limit.js';

export type {
  AuthorizationPolicySpec,
  DestinationRuleSpec,
  EnvoyFilterSpec,
  GatewaySpec,
  HealthCheckSpec,
  LocalRateLimitSpec,
  PeerAuthenticationSpec,
  ProxyConfigSpec,
  RequestAuthenticationSpec,
  ServiceEntrySpec,
  SidecarSpec,
  TelemetrySpec,
  VirtualServiceSpec,
  WasmPluginSpec,
  WorkloadEntrySpec,
  WorkloadGroupSpec,
};

export type ResourceKind =
  | 'ServiceEntry'
  | 'WorkloadEntry'
  | 'WorkloadGroup'
  | 'VirtualService'
  | 'DestinationRule'
  | 'Gateway'
  | 'Sidecar'
  | 'PeerAuthentication'
  | 'AuthorizationPolicy'
  | 'RequestAuthentication'
  | 'Telemetry'
  | 'WasmPlugin'
  | 'ProxyConfig'
  | 'EnvoyFilter'
  | 'LocalRateLimit'
  | 'HealthCheck';

export const RESOURCE_KINDS: readonly ResourceKind[] = Object.freeze([
  'ServiceEntry',
  'WorkloadEntry',
  'WorkloadGroup',
  'VirtualService',
  'DestinationRule',
  'Gateway',
  'Sidecar',
  'PeerAuthentication',
  'AuthorizationPolicy',
  'RequestAuthentication',
  'Telemetry',
  'WasmPlugin',
  'ProxyConfig',
  'EnvoyFilter',
  'LocalRateLimit',
  'HealthCheck',
]);

/** The typed spec of each kind: Istio's field names; durations are numbers of milliseconds. */
export interface SpecByKind {
  ServiceEntry: ServiceEntrySpec;
  WorkloadEntry: WorkloadEntrySpec;
  WorkloadGroup: WorkloadGroupSpec;
  VirtualService: VirtualServiceSpec;
  DestinationRule: DestinationRuleSpec;
  Gateway: GatewaySpec;
  Sidecar: SidecarSpec;
  PeerAuthentication: PeerAuthenticationSpec;
  AuthorizationPolicy: AuthorizationPolicySpec;
  RequestAuthentication: RequestAuthenticationSpec;
  Telemetry: TelemetrySpec;
  WasmPlugin: WasmPluginSpec;
  ProxyConfig: ProxyConfigSpec;
  EnvoyFilter: EnvoyFilterSpec;
  LocalRateLimit: LocalRateLimitSpec;
  HealthCheck: HealthCheckSpec;
}

export type SpecOf<K> = K extends keyof SpecByKind ? SpecByKind[K] : never;

export interface ResourceMeta {
  readonly name: string;
  readonly namespace: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
  readonly resourceVersion?: string;
}

/** A parsed, schema-checked resource (deep-frozen when it comes from the parser). */
export interface Resource<K extends ResourceKind = ResourceKind> {
  readonly apiVersion: string;
  readonly kind: K;
  readonly metadata: ResourceMeta;
  readonly spec: SpecOf<K>;
}

/** A resource whose `kind` narrows its `spec` (`if (r.kind === 'VirtualService') r.spec.http`). */
export type AnyResource = { [K in ResourceKind]: Resource<K> }[ResourceKind];

export function isKind<K extends ResourceKind>(r: Resource, kind: K): r is Resource<K> {
  return r.kind === kind;
}

export interface ValidationIssue {
  /** `VirtualService default/reviews`, or `document 3 of file.yaml` before the resource is known. */
  readonly resource: string;
  /** `spec.http[0].route[1].weight`; empty when the issue is about the whole document. */
  readonly path: string;
  readonly message: string;
  /** VMESH_ERR_INVALID_RESOURCE, or VMESH_ERR_UNSUPPORTED_FIELD for Istio features vmesh does not implement. */
  readonly code: ErrorCode;
}

/**
 * The most config text one validate or apply reads (files joined): a real config set fits (24k ServiceEntries
 * are ~5 MB), and `vmesh config validate` refuses what the controller's API would, with the same words.
 */
export const MAX_CONFIG_BYTES = 16 * 1024 * 1024;

export function configTooLarge(bytes: number): string | undefined {
  return bytes > MAX_CONFIG_BYTES
    ? `config is ${bytes} bytes, over the ${MAX_CONFIG_BYTES}-byte limit of one apply; split it into several applies`
    : undefined;
}

/**
 * Warnings do not refuse anything: references to resources that are not there (yet), as `istioctl analyze`
 * reports them (IST0101 ReferencedResourceNotFound), and documents vmesh skips (Kubernetes kinds).
 */
export const WarningCode = {
  ReferenceNotFound: 'VMESH_WARN_REFERENCE_NOT_FOUND',
  SkippedKind: 'VMESH_WARN_SKIPPED_KIND',
  /** Several resources where one applies (as Istio: accepted, one used). */
  Conflict: 'VMESH_WARN_CONFLICT',
  /** Where Istio's own validation warns (and accepts). */
  Istio: 'VMESH_WARN_ISTIO',
  /** Accepted, but vmesh does not run the feature: the warning says what happens instead (WasmPlugin, ProxyConfig). */
  NotImplemented: 'VMESH_WARN_NOT_IMPLEMENTED',
} as const;

export type WarningCode = (typeof WarningCode)[keyof typeof WarningCode];

export interface ValidationWarning {
  readonly resource: string;
  readonly path: string;
  readonly message: string;
  readonly code: WarningCode;
}

/** One line: `${resource}: ${path}: ${message}` (the path part is left out when empty). */
export function formatIssue(i: Pick<ValidationIssue, 'resource' | 'path' | 'message'>): string {
  const line = i.path === '' ? `${i.resource}: ${i.message}` : `${i.resource}: ${i.path}: ${i.message}`;
  return line.replace(/\s*[\r\n]+\s*/g, ' ');
}

/** `${kind}/${namespace}/${name}`: the identity of a resource in a batch and in the store. */
export function resourceKey(r: Pick<Resource, 'kind' | 'metadata'>): string {
  return `${r.kind}/${r.metadata.namespace}/${r.metadata.name}`;
}

/** How issues name a resource: `VirtualService default/reviews`. */
export function resourceLabel(r: Pick<Resource, 'kind' | 'metadata'>): string {
  return `${r.kind} ${r.metadata.namespace}/${r.metadata.name}`;
}
