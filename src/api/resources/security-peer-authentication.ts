import { z } from 'zod';
import type { Checker } from './checker.js';
import { quote } from './names.js';
import { type DeepReadonly, matchLabelsSelector } from './schema-helpers.js';

const mtls = z.strictObject({ mode: z.enum(['UNSET', 'DISABLE', 'PERMISSIVE', 'STRICT']).default('UNSET') });

export const peerAuthenticationSpec = z.strictObject({
  selector: matchLabelsSelector.optional(),
  /** Absent: inherit (UNSET) from the namespace-wide, then the mesh-wide policy; PERMISSIVE when none says. */
  mtls: mtls.optional(),
  /** Port number (as a string key, as YAML maps have) -> mode, for the selected workloads' ports. */
  portLevelMtls: z.record(z.string(), mtls).optional(),
});

export type PeerAuthenticationSpec = DeepReadonly<z.output<typeof peerAuthenticationSpec>>;

/** A policy without selector (or with an empty one) applies to a whole namespace, or to the mesh in the root namespace. */
export function isNamespaceWide(spec: PeerAuthenticationSpec | { readonly selector?: { readonly matchLabels?: object } }): boolean {
  return Object.keys(spec.selector?.matchLabels ?? {}).length === 0;
}

export function checkPeerAuthentication(spec: PeerAuthenticationSpec, c: Checker): void {
  c.labels('spec.selector.matchLabels', spec.selector?.matchLabels);
  const ports = Object.keys(spec.portLevelMtls ?? {});
  if (spec.portLevelMtls && isNamespaceWide(spec)) {
    c.report('spec.portLevelMtls', 'port-level mTLS needs a selector (namespace-wide and mesh-wide policies cannot set it)');
  }
  if (spec.portLevelMtls && ports.length === 0) c.report('spec.portLevelMtls', 'must have at least one port when set');
  for (const k of ports) {
    const p = `spec.portLevelMtls[${JSON.stringify(k)}]`;
    if (!/^\d+$/.test(k)) c.report(p, `${quote(k)} is not a port number`);
    else c.port(p, Number(k));
  }
}
