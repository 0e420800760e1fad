import type { ErrorCode } from '../lib/errors.js';
import type { DestinationRuleSpec } from './resources/networking-destination-rule.js';
import type { GatewaySpec } from './resources/networking-gateway.js';
import type { ServiceEntrySpec } from './resources/networking-service-entry.js';
import type { SidecarSpec } from './resources/networking-sidecar.js';
import type { VirtualServiceSpec } from './resources/networking-virtual-service.js';
import type { WorkloadEntrySpec, WorkloadGroupSpec } from './resources/networking-workload.js';
import type { AuthorizationPolicySpec } from './resources/security-authorization-policy.js';
import type { PeerAuthenticationSpec } from './resources/security-peer-authentication.js';
import type { TelemetrySpec } from './resources/telemetry.js';
import type { HealthCheckSpec } from './resources/vmesh-health-check.js';
import type { LocalRateLimitSpec } from './resources/vmesh-local-rate-limit.js';

export type {
  AuthorizationPolicySpec,
  DestinationRuleSpec,
  GatewaySpec,
  HealthCheckSpec,
  LocalRateLimitSpec,
  PeerAuthenticationSpec,
  ServiceEntrySpec,
  SidecarSpec,
  TelemetrySpec,
  VirtualServiceSpec,
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
  | 'Telemetry'
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
  'Telemetry',
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
  Telemetry: TelemetrySpec;
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

/** One line: `${resource}: ${path}: ${message}` (the path part is left out when empty). */
export function formatIssue(i: ValidationIssue): string {
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
