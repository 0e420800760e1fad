import { createHash } from 'node:crypto';
import type { Cluster__Output } from '../generated/envoy/config/cluster/v3/Cluster.js';
import type { Listener__Output } from '../generated/envoy/config/listener/v3/Listener.js';
import type { HttpConnectionManager__Output } from '../generated/envoy/extensions/filters/network/http_connection_manager/v3/HttpConnectionManager.js';
import type { Any__Output } from '../generated/google/protobuf/Any.js';
import { ErrorCode, vmeshError } from '../lib/errors.js';
import { err, ok, type Result } from '../lib/result.js';
import { type AnyMessage, protos } from './protos.js';
import { CDS, EDS, LDS, NAME_FIELD, RDS, TypedConfigUrl, typeLabel } from './type-urls.js';

/** One encoded resource; `version` is a hash of its bytes, the per-resource version of delta xDS. */
export interface XdsResource {
  readonly name: string;
  readonly typeUrl: string;
  readonly any: AnyMessage;
  readonly version: string;
}

/** Everything one node should see, by type URL then resource name. Immutable once made. */
export interface Snapshot {
  readonly version: string;
  readonly resources: ReadonlyMap<string, ReadonlyMap<string, XdsResource>>;
}

export interface ResourceInput {
  readonly name: string;
  /** The message as a plain object with proto field names, e.g. a Cluster `{ name, type: 'EDS', ... }`. */
  readonly message: object;
}

/**
 * Encodes one resource. Encoding is the expensive part of a snapshot: a translation that shares clusters
 * between many nodes can encode each once and assemble snapshots with `snapshotOf`.
 */
export function makeResource(typeUrl: string, name: string, message: object): XdsResource {
  if (!name) throw vmeshError(ErrorCode.InvalidResource, `${typeLabel(typeUrl)} resource with an empty name`);
  const field = NAME_FIELD[typeUrl];
  if (field) {
    const inner = (message as Record<string, unknown>)[field];
    if (inner !== name) {
      throw vmeshError(
        ErrorCode.InvalidResource,
        `${typeLabel(typeUrl)} resource "${name}": its ${field} is ${JSON.stringify(inner)}, must be "${name}"`,
      );
    }
  }
  const any = protos().encodeAny(typeUrl, message);
  const version = createHash('sha256').update(any.value).digest('hex').slice(0, 16);
  return Object.freeze({ name, typeUrl, any, version });
}

/**
 * A resource whose encoded form is at hand (as received from the controller): no encoding, the same version a
 * makeResource of the same bytes would get. The caller vouches that `any` is a `typeUrl` message named `name`.
 */
export function wireResource(typeUrl: string, name: string, any: AnyMessage): XdsResource {
  const value = Buffer.isBuffer(any.value) ? any.value : Buffer.from(any.value);
  const version = createHash('sha256').update(value).digest('hex').slice(0, 16);
  return Object.freeze({ name, typeUrl, any: { type_url: any.type_url, value }, version });
}

export function snapshotOf(version: string, resources: Iterable<XdsResource>): Snapshot {
  const byType = new Map<string, Map<string, XdsResource>>();
  for (const r of resources) {
    let m = byType.get(r.typeUrl);
    if (!m) {
      m = new Map();
      byType.set(r.typeUrl, m);
    }
    if (m.has(r.name))
      throw vmeshError(ErrorCode.InvalidResource, `snapshot ${version}: two ${typeLabel(r.typeUrl)} resources named "${r.name}"`);
    m.set(r.name, r);
  }
  return Object.freeze({ version, resources: byType });
}

export function makeSnapshot(version: string, byType: Readonly<Record<string, readonly ResourceInput[]>>): Snapshot {
  const all: XdsResource[] = [];
  for (const [typeUrl, list] of Object.entries(byType)) {
    for (const r of list) all.push(makeResource(typeUrl, r.name, r.message));
  }
  return snapshotOf(version, all);
}

/** Who needs whom: a ClusterLoadAssignment by the EDS clusters naming it, a RouteConfiguration by the RDS listeners. */
export interface SnapshotRefs {
  readonly edsParents: ReadonlyMap<string, readonly string[]>;
  readonly rdsParents: ReadonlyMap<string, readonly string[]>;
}

const refsOfSnapshot = new WeakMap<Snapshot, SnapshotRefs>();
// Resources are often shared between snapshots; decoding each once keeps pushes cheap.
const refsOfResource = new WeakMap<XdsResource, readonly string[]>();

export function snapshotRefs(s: Snapshot): SnapshotRefs {
  let refs = refsOfSnapshot.get(s);
  if (!refs) {
    refs = { edsParents: parents(s, CDS, clusterRefs), rdsParents: parents(s, LDS, listenerRefs) };
    refsOfSnapshot.set(s, refs);
  }
  return refs;
}

function parents(s: Snapshot, typeUrl: string, refsOf: (r: XdsResource) => string[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const r of s.resources.get(typeUrl)?.values() ?? []) {
    let children = refsOfResource.get(r);
    if (!children) {
      children = refsOf(r);
      refsOfResource.set(r, children);
    }
    for (const c of children) {
      const list = out.get(c);
      if (list) list.push(r.name);
      else out.set(c, [r.name]);
    }
  }
  return out;
}

// decodeAny renders one level (nested Anys stay { type_url, value }): exactly the generated __Output shapes.
function clusterRefs(r: XdsResource): string[] {
  const c = protos().decodeAny<Cluster__Output>(r.any);
  if (c.type !== 'EDS') return [];
  return [c.eds_cluster_config?.service_name || c.name];
}

function listenerRefs(r: XdsResource): string[] {
  const l = protos().decodeAny<Listener__Output>(r.any);
  const configs: Any__Output[] = [];
  for (const chain of [...(l.filter_chains ?? []), l.default_filter_chain]) {
    for (const f of chain?.filters ?? []) if (f.typed_config) configs.push(f.typed_config);
  }
  if (l.api_listener?.api_listener) configs.push(l.api_listener.api_listener);
  const routes = new Set<string>();
  for (const cfg of configs) {
    if (cfg.type_url !== TypedConfigUrl.httpConnectionManager) continue;
    const name = protos().decodeAny<HttpConnectionManager__Output>(cfg).rds?.route_config_name;
    if (name) routes.add(name);
  }
  return [...routes];
}

/**
 * Like go-control-plane's Consistent(): every EDS cluster has its ClusterLoadAssignment and every route
 * configuration a listener loads over RDS is present, so a node never warms forever waiting for one.
 */
export function checkConsistent(s: Snapshot): Result<void, string[]> {
  const refs = snapshotRefs(s);
  const problems: string[] = [];
  const endpoints = s.resources.get(EDS);
  for (const [cla, clusters] of refs.edsParents) {
    if (endpoints?.has(cla)) continue;
    for (const c of clusters) {
      problems.push(`snapshot ${s.version}: cluster "${c}" (type EDS) needs ClusterLoadAssignment "${cla}", which is missing`);
    }
  }
  const routes = s.resources.get(RDS);
  for (const [route, listeners] of refs.rdsParents) {
    if (routes?.has(route)) continue;
    for (const l of listeners) {
      problems.push(
        `snapshot ${s.version}: listener "${l}" loads RouteConfiguration "${route}" over RDS ` +
          '(HttpConnectionManager.rds.route_config_name), which is missing',
      );
    }
  }
  return problems.length > 0 ? err(problems) : ok(undefined);
}

/** What changed in one type between two snapshots: names added or with a new version, and names gone. */
export interface TypeDiff {
  readonly changed: readonly string[];
  readonly removed: readonly string[];
}

const EMPTY_DIFF: TypeDiff = Object.freeze({ changed: [], removed: [] });
// Streams of alike nodes move between the very same per-type maps: the diff is computed once per pair.
const diffs = new WeakMap<ReadonlyMap<string, XdsResource>, WeakMap<ReadonlyMap<string, XdsResource>, TypeDiff>>();

export function typeDiff(from: ReadonlyMap<string, XdsResource>, to: ReadonlyMap<string, XdsResource>): TypeDiff {
  if (from === to) return EMPTY_DIFF;
  let byTarget = diffs.get(from);
  let d = byTarget?.get(to);
  if (d) return d;
  const changed: string[] = [];
  const removed: string[] = [];
  for (const [n, r] of to) if (from.get(n)?.version !== r.version) changed.push(n);
  for (const n of from.keys()) if (!to.has(n)) removed.push(n);
  d = changed.length === 0 && removed.length === 0 ? EMPTY_DIFF : { changed, removed };
  if (!byTarget) {
    byTarget = new WeakMap();
    diffs.set(from, byTarget);
  }
  byTarget.set(to, d);
  return d;
}

/** A snapshot from per-type maps already built (and possibly shared with earlier snapshots). */
export function snapshotFromTypes(version: string, byType: ReadonlyMap<string, ReadonlyMap<string, XdsResource>>): Snapshot {
  return Object.freeze({ version, resources: byType });
}
