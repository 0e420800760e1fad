import { err, ok, type Result } from '../lib/result.js';

/**
 * SPIFFE ids vmesh issues. Hosts: `spiffe://<td>/vmesh/host/<host>` (the agent's control-plane identity);
 * workloads: `spiffe://<td>/ns/<ns>/sa/<sa>` (Istio's shape, so AuthorizationPolicy principals match);
 * the controller's serving certificate: `spiffe://<td>/vmesh/controller`.
 */
export type SpiffeId =
  | { readonly kind: 'host'; readonly trustDomain: string; readonly host: string; readonly uri: string }
  | {
      readonly kind: 'workload';
      readonly trustDomain: string;
      readonly namespace: string;
      readonly serviceAccount: string;
      readonly uri: string;
    }
  | { readonly kind: 'controller'; readonly trustDomain: string; readonly uri: string };

// SPIFFE spec: trust domain chars [a-z0-9.-_]; path segments [A-Za-z0-9.-_], not "." or "..".
const TRUST_DOMAIN = /^[a-z0-9._-]{1,255}$/;
const SEGMENT = /^[A-Za-z0-9._-]+$/;

export function isValidTrustDomain(td: string): boolean {
  return TRUST_DOMAIN.test(td);
}

function segment(s: string): boolean {
  return SEGMENT.test(s) && s !== '.' && s !== '..';
}

export function hostSpiffeId(trustDomain: string, host: string): string {
  return `spiffe://${trustDomain}/vmesh/host/${host}`;
}

export function workloadSpiffeId(trustDomain: string, namespace: string, serviceAccount: string): string {
  return `spiffe://${trustDomain}/ns/${namespace}/sa/${serviceAccount}`;
}

export function controllerSpiffeId(trustDomain: string): string {
  return `spiffe://${trustDomain}/vmesh/controller`;
}

/** Parses the ids above; any other SPIFFE path (or a non-SPIFFE URI) is an error naming the URI. */
export function parseSpiffeId(uri: string): Result<SpiffeId, string> {
  const m = /^spiffe:\/\/([^/?#]+)(\/[^?#]*)$/.exec(uri);
  if (!m) return err(`"${uri}" is not a SPIFFE id (want spiffe://<trust-domain>/<path>)`);
  const trustDomain = m[1] ?? '';
  if (!isValidTrustDomain(trustDomain)) return err(`"${uri}": trust domain "${trustDomain}" has characters outside [a-z0-9._-]`);
  const parts = (m[2] ?? '').slice(1).split('/');
  if (!parts.every(segment)) return err(`"${uri}": path segments must be non-empty [A-Za-z0-9._-], not "." or ".."`);
  if (parts.length === 3 && parts[0] === 'vmesh' && parts[1] === 'host') {
    return ok({ kind: 'host', trustDomain, host: parts[2] ?? '', uri });
  }
  if (parts.length === 4 && parts[0] === 'ns' && parts[2] === 'sa') {
    return ok({ kind: 'workload', trustDomain, namespace: parts[1] ?? '', serviceAccount: parts[3] ?? '', uri });
  }
  if (parts.length === 2 && parts[0] === 'vmesh' && parts[1] === 'controller') return ok({ kind: 'controller', trustDomain, uri });
  return err(`"${uri}": unknown SPIFFE path, want /vmesh/host/<host>, /ns/<ns>/sa/<sa> or /vmesh/controller`);
}
