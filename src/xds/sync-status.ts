import { ErrorCode, vmeshError } from '../lib/errors.js';
import { decodeAnyDeep } from './decode-deep.js';
import type { StreamStatus } from './server-stream.js';
import type { SnapshotCache } from './snapshot-cache.js';
import { CDS, EDS, LDS, NDS, RDS, typeLabel, WDS } from './type-urls.js';

export interface ProxyStatusRow {
  readonly node: string;
  readonly connected: boolean;
  readonly mode?: 'sotw' | 'delta';
  readonly peer?: string;
  readonly connectedSince?: string;
  /** The snapshot version the controller holds for the node. */
  readonly snapshot?: string;
  readonly lastPush?: string;
  /** Per type (CDS, EDS, LDS, RDS, NDS, WDS): SYNCED (acked what was sent), STALE (sent, not acked yet), NACKED (with error). */
  readonly types: Readonly<
    Record<string, { state: 'SYNCED' | 'STALE' | 'NACKED' | 'NOT SENT'; sent?: string; acked?: string; error?: string }>
  >;
}

const TYPES = [CDS, EDS, LDS, RDS, NDS, WDS];

/** istioctl proxy-status, from the ADS streams and the snapshot cache. */
export function proxyStatus(opts: {
  nodes: readonly string[];
  streams: readonly StreamStatus[];
  cache: SnapshotCache;
  lastPush: ReadonlyMap<string, number>;
}): ProxyStatusRow[] {
  const ids = [...new Set([...opts.nodes, ...opts.streams.map((s) => s.nodeId)])].sort();
  return ids.map((node) => {
    const stream = opts.streams.find((s) => s.nodeId === node);
    const types: Record<string, ProxyStatusRow['types'][string]> = {};
    for (const t of TYPES) {
      const st = stream?.types[t];
      if (!st) continue;
      const state =
        st.nacked && st.nacked.version === st.sent
          ? 'NACKED'
          : st.sent === undefined
            ? 'NOT SENT'
            : st.acked === st.sent
              ? 'SYNCED'
              : 'STALE';
      types[typeLabel(t)] = {
        state,
        ...(st.sent !== undefined ? { sent: st.sent } : {}),
        ...(st.acked !== undefined ? { acked: st.acked } : {}),
        ...(st.nacked ? { error: st.nacked.error } : {}),
      };
    }
    const push = opts.lastPush.get(node);
    const snap = opts.cache.getSnapshot(node);
    return {
      node,
      connected: !!stream,
      ...(stream ? { mode: stream.mode, peer: stream.peer, connectedSince: stream.connectedSince } : {}),
      ...(snap ? { snapshot: snap.version } : {}),
      ...(push ? { lastPush: new Date(push).toISOString() } : {}),
      types,
    };
  });
}

const KIND_TYPES: Record<string, string> = { clusters: CDS, endpoints: EDS, listeners: LDS, routes: RDS, names: NDS, workloads: WDS };

/** Every SDS secret name a snapshot's clusters and listeners refer to. */
function secretNames(value: unknown, into: Set<string>): Set<string> {
  if (Array.isArray(value)) for (const v of value) secretNames(v, into);
  else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      if ((k === 'tls_certificate_sds_secret_configs' || k === 'validation_context_sds_secret_config') && v) {
        for (const c of [v].flat() as Array<{ name?: string }>) if (c.name) into.add(c.name);
      } else secretNames(v, into);
    }
  }
  return into;
}

/**
 * What the controller last built for a node, decoded (istioctl proxy-config). For secrets only the names
 * the config refers to: certificates and keys live on the host, served by its agent.
 */
export function proxyConfig(cache: SnapshotCache, node: string, kind: string): Array<{ name: string; version: string; resource: unknown }> {
  if (kind === 'secrets') {
    const snap = cache.getSnapshot(node);
    if (!snap) throw vmeshError(ErrorCode.NotFound, `no config built for node "${node}" (has its agent connected?)`);
    const names = new Set<string>();
    for (const t of [CDS, LDS]) for (const r of snap.resources.get(t)?.values() ?? []) secretNames(decodeAnyDeep(r.any), names);
    return [...names].sort().map((name) => ({ name, version: '-', resource: { name, heldBy: `the agent on ${node}` } }));
  }
  const typeUrl = KIND_TYPES[kind];
  if (!typeUrl) throw vmeshError(ErrorCode.Usage, `proxy-config: unknown kind "${kind}"; want ${Object.keys(KIND_TYPES).join(', ')}`);
  const snap = cache.getSnapshot(node);
  if (!snap) throw vmeshError(ErrorCode.NotFound, `no config built for node "${node}" (has its agent connected?)`);
  return [...(snap.resources.get(typeUrl)?.values() ?? [])].map((r) => ({
    name: r.name,
    version: r.version,
    resource: decodeAnyDeep(r.any),
  }));
}
