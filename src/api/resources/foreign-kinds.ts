import { type ValidationWarning, WarningCode } from '../resource.js';

/**
 * Documents from other APIs that Istio samples mix with mesh config (`Service`, `Deployment`,
 * `ServiceAccount`, cert-manager's `Certificate`...). vmesh has no Kubernetes to give them to: they are
 * skipped with a warning each, so one file brings its Istio resources in as it does on Kubernetes.
 */

/**
 * API groups whose kinds vmesh reads or refuses by name; any other group's documents are skipped, including
 * Istio's installation config (install.istio.io IstioOperator: the controller's --config file plays its part).
 */
const MESH_GROUP = /^(networking|security|telemetry|extensions)\.istio\.io$|^vmesh\.io$/;
/** The Kubernetes Gateway API routes traffic: ignoring it would silently drop routing, so it is refused. */
export const GATEWAY_API_GROUP = /^gateway\.networking\.(x-)?k8s\.io$/;

function groupOf(apiVersion: string): string {
  const slash = apiVersion.indexOf('/');
  return slash < 0 ? '' : apiVersion.slice(0, slash);
}

/** Why a document is skipped, or undefined when vmesh reads (or refuses) it. */
export function foreignKind(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const { apiVersion, kind } = value as { apiVersion?: unknown; kind?: unknown };
  if (typeof apiVersion !== 'string' || typeof kind !== 'string' || apiVersion === '' || kind === '') return undefined;
  const group = groupOf(apiVersion);
  if (MESH_GROUP.test(group) || GATEWAY_API_GROUP.test(group)) return undefined;
  const name = (value as { metadata?: { name?: unknown } }).metadata?.name;
  const what = `${kind}${typeof name === 'string' ? ` ${name}` : ''} (${apiVersion})`;
  return `skipped ${what}: not mesh config, vmesh does not read ${group === '' ? 'Kubernetes core' : group} resources`;
}

/** Splits documents into those to parse and a warning for each skipped one. */
export function skipForeign<D extends { readonly label: string; readonly value: unknown }>(
  documents: readonly D[],
): { kept: D[]; skipped: ValidationWarning[] } {
  const kept: D[] = [];
  const skipped: ValidationWarning[] = [];
  for (const d of documents) {
    const why = foreignKind(d.value);
    if (why === undefined) kept.push(d);
    else skipped.push({ resource: d.label, path: '', message: why, code: WarningCode.SkippedKind });
  }
  return { kept, skipped };
}
