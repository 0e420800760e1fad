import type { z } from 'zod';
import type { Checker } from './checker.js';
import { checkWasmPlugin, wasmPluginSpec } from './extensions-wasm-plugin.js';
import { checkDestinationRule, destinationRuleSpec } from './networking-destination-rule.js';
import { checkEnvoyFilter, envoyFilterSpec } from './networking-envoy-filter.js';
import { checkGateway, gatewaySpec } from './networking-gateway.js';
import { checkProxyConfig, proxyConfigSpec } from './networking-proxy-config.js';
import { checkServiceEntry, serviceEntrySpec } from './networking-service-entry.js';
import { checkSidecar, sidecarSpec } from './networking-sidecar.js';
import { virtualServiceSpec } from './networking-virtual-service.js';
import { checkVirtualService } from './networking-virtual-service-check.js';
import { checkWorkloadEntry, checkWorkloadGroup, workloadEntrySpec, workloadGroupSpec } from './networking-workload.js';
import { authorizationPolicySpec, checkAuthorizationPolicy } from './security-authorization-policy.js';
import { checkPeerAuthentication, peerAuthenticationSpec } from './security-peer-authentication.js';
import { checkRequestAuthentication, requestAuthenticationSpec } from './security-request-authentication.js';
import { checkTelemetry, telemetrySpec } from './telemetry.js';
import { checkHealthCheck, healthCheckSpec } from './vmesh-health-check.js';
import { checkLocalRateLimit, localRateLimitSpec } from './vmesh-local-rate-limit.js';

export interface KindInfo<S extends z.ZodType = z.ZodType> {
  readonly group: string;
  /** Versions served, preferred first. The shapes do not differ between versions that vmesh reads. */
  readonly versions: readonly string[];
  readonly schema: S;
  readonly check: (spec: z.output<S>, c: Checker) => void;
  /** Kinds whose `metadata.name` must be a DNS label (no dots), as Istio requires for Gateways. */
  readonly nameIsLabel?: boolean;
  /** Istio's CRD requires `spec` (ServiceEntry, WorkloadEntry, WorkloadGroup); for the others a missing spec is empty. */
  readonly specRequired?: boolean;
}

function kind<S extends z.ZodType>(info: KindInfo<S>): KindInfo<S> {
  return info;
}

const NETWORKING = { group: 'networking.istio.io', versions: ['v1', 'v1beta1', 'v1alpha3'] } as const;
const SECURITY = { group: 'security.istio.io', versions: ['v1', 'v1beta1'] } as const;
const VMESH = { group: 'vmesh.io', versions: ['v1alpha1'] } as const;

/** Every kind vmesh reads, with its API group, versions, schema and semantic check. */
export const KINDS = {
  ServiceEntry: kind({ ...NETWORKING, schema: serviceEntrySpec, check: checkServiceEntry, specRequired: true }),
  WorkloadEntry: kind({ ...NETWORKING, schema: workloadEntrySpec, check: checkWorkloadEntry, specRequired: true }),
  WorkloadGroup: kind({ ...NETWORKING, schema: workloadGroupSpec, check: checkWorkloadGroup, specRequired: true }),
  VirtualService: kind({ ...NETWORKING, schema: virtualServiceSpec, check: checkVirtualService }),
  DestinationRule: kind({ ...NETWORKING, schema: destinationRuleSpec, check: checkDestinationRule }),
  Gateway: kind({ ...NETWORKING, schema: gatewaySpec, check: checkGateway, nameIsLabel: true }),
  Sidecar: kind({ ...NETWORKING, schema: sidecarSpec, check: checkSidecar }),
  PeerAuthentication: kind({ ...SECURITY, schema: peerAuthenticationSpec, check: checkPeerAuthentication }),
  AuthorizationPolicy: kind({ ...SECURITY, schema: authorizationPolicySpec, check: checkAuthorizationPolicy }),
  RequestAuthentication: kind({ ...SECURITY, schema: requestAuthenticationSpec, check: checkRequestAuthentication }),
  Telemetry: kind({ group: 'telemetry.istio.io', versions: ['v1', 'v1alpha1'], schema: telemetrySpec, check: checkTelemetry }),
  // Validated as Istio does, then: WasmPlugin accepted (its traffic denied or passed per failStrategy, as Envoy
  // does for a module it cannot load), ProxyConfig accepted with no effect (Istio applies it only to Kubernetes
  // pods), EnvoyFilter refused by name after its own checks (vmesh does not patch the config it serves).
  WasmPlugin: kind({
    group: 'extensions.istio.io',
    versions: ['v1alpha1'],
    schema: wasmPluginSpec,
    check: checkWasmPlugin,
    specRequired: true,
  }),
  ProxyConfig: kind({ group: 'networking.istio.io', versions: ['v1beta1'], schema: proxyConfigSpec, check: checkProxyConfig }),
  EnvoyFilter: kind({ group: 'networking.istio.io', versions: ['v1alpha3'], schema: envoyFilterSpec, check: checkEnvoyFilter }),
  LocalRateLimit: kind({ ...VMESH, schema: localRateLimitSpec, check: checkLocalRateLimit }),
  HealthCheck: kind({ ...VMESH, schema: healthCheckSpec, check: checkHealthCheck }),
} as const;

export type KindName = keyof typeof KINDS;

export function isKindName(k: string): k is KindName {
  return Object.hasOwn(KINDS, k);
}

/** Istio kinds that vmesh knows of and does not implement: refused as unsupported rather than unknown. */
export const UNIMPLEMENTED_ISTIO_KINDS: Readonly<Record<string, string>> = {
  TrafficExtension: 'vmesh has no Wasm or Lua extensions; use LocalRateLimit (vmesh.io) or the route features of VirtualService',
};
