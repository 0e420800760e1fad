import type { Endpoint } from '../../api/model.js';
import type { Resource } from '../../api/resource.js';
import type { TranslateInput } from './input.js';

/** What an inbound port accepts: mTLS only, mTLS or plaintext, or plaintext only. */
export type MtlsMode = 'STRICT' | 'PERMISSIVE' | 'DISABLE';

type PeerAuthentication = Resource<'PeerAuthentication'>;
type ModeSetting = 'UNSET' | MtlsMode | undefined;

/** Istio's default when no policy says anything: accept both, so meshes can be adopted one host at a time. */
const DEFAULT_MODE: MtlsMode = 'PERMISSIVE';

function hasSelector(pa: PeerAuthentication): boolean {
  return Object.keys(pa.spec.selector?.matchLabels ?? {}).length > 0;
}

function selects(pa: PeerAuthentication, labels: Readonly<Record<string, string>>): boolean {
  return Object.entries(pa.spec.selector?.matchLabels ?? {}).every(([k, v]) => labels[k] === v);
}

/**
 * Istio lets the oldest policy win when several apply at one level; vmesh has no creation times, so the first by
 * name wins: the choice then does not depend on the order resources arrived in.
 */
function first(list: readonly PeerAuthentication[]): PeerAuthentication | undefined {
  return [...list].sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : a.metadata.name > b.metadata.name ? 1 : 0))[0];
}

function namespaceWide(input: TranslateInput, namespace: string): PeerAuthentication | undefined {
  return first(input.config.peerAuthentications.filter((pa) => pa.metadata.namespace === namespace && !hasSelector(pa)));
}

/** UNSET (or no policy) inherits from the level above. */
function inherit(setting: ModeSetting, parent: MtlsMode): MtlsMode {
  return setting === undefined || setting === 'UNSET' ? parent : setting;
}

/** The mode of a namespace-level policy over the mesh-wide one (root namespace), without workload selectors. */
export function namespaceMtlsMode(input: TranslateInput, namespace: string): MtlsMode {
  const mesh = inherit(namespaceWide(input, input.mesh.rootNamespace)?.spec.mtls?.mode, DEFAULT_MODE);
  return inherit(namespaceWide(input, namespace)?.spec.mtls?.mode, mesh);
}

/**
 * The mTLS mode a workload's inbound port enforces, resolved as Istio does: a PeerAuthentication selecting the
 * workload (in its namespace) over the namespace-wide one over the mesh-wide one in the root namespace, PERMISSIVE
 * when none says; UNSET inherits from the level above; the selecting policy's portLevelMtls entry for `port` (the
 * workload's own port, as Istio keys it by target port) overrides its workload-level mode.
 */
export function effectiveMtlsMode(input: TranslateInput, workload: Endpoint, port: number): MtlsMode {
  const nsMode = namespaceMtlsMode(input, workload.namespace);
  const selecting = first(
    input.config.peerAuthentications.filter(
      (pa) => pa.metadata.namespace === workload.namespace && hasSelector(pa) && selects(pa, workload.labels),
    ),
  );
  if (!selecting) return nsMode;
  const workloadMode = inherit(selecting.spec.mtls?.mode, nsMode);
  return inherit(selecting.spec.portLevelMtls?.[String(port)]?.mode, workloadMode);
}
