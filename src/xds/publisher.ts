import { createHash } from 'node:crypto';
import type { MeshModel } from '../api/model.js';
import { ErrorCode, vmeshError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { makeResource, type Snapshot, snapshotFromTypes, type XdsResource } from './snapshot.js';
import type { SnapshotCache } from './snapshot-cache.js';
import type { EnvoyResource, TranslateInput } from './translate/input.js';
import { typeLabel } from './type-urls.js';

/** Nodes published per turn of the event loop while a model change is pushed out. */
const SLICE = 100;

export type Translated = Readonly<Record<string, readonly EnvoyResource[]>>;

export interface PublisherOptions {
  readonly cache: SnapshotCache;
  /** Full translation of one node's input (pure). */
  readonly translate: (input: TranslateInput) => Translated;
  /**
   * Splits translation so that nodes with the same outbound view share one translation and one encoding:
   * the key says which nodes are alike; `local` picks the resources that belong to the node alone.
   */
  readonly sharing?: {
    readonly key: (input: TranslateInput) => string;
    readonly isLocal: (typeUrl: string, name: string) => boolean;
  };
  /** Changes made to a node's whole translation last (EnvoyFilter patches); pure, and must not change its argument. */
  readonly patch?: (input: TranslateInput, translated: Translated) => Translated;
  /** The node's translation input from the current model; undefined when the node is unknown. */
  readonly inputFor: (nodeId: string, model: MeshModel) => TranslateInput | undefined;
  readonly logger: Logger;
  readonly onPublished?: (ev: { nodeId: string; version: string; changed: boolean; ms: number }) => void;
}

/**
 * Turns the mesh model into a consistent snapshot per node. Nodes are published when they connect and
 * on every model change; a node whose resources did not change keeps its snapshot (no push).
 */
export class SnapshotPublisher {
  private readonly nodes = new Set<string>();
  private model: MeshModel | undefined;
  /** Encoded resources of the current generation, by message object (shared translations encode once). */
  private encodedByObject = new WeakMap<object, XdsResource>();
  /**
   * Encodings by type and name with the JSON of the message they came from, this generation's and the previous
   * one's. A model change re-translates everything into new objects, mostly with the same content: comparing
   * JSON (native, several times cheaper than protobuf encoding and hashing) keeps the previous encoding and its
   * version for what did not change.
   */
  private byContent = new Map<string, { readonly json: string; readonly resource: XdsResource }>();
  private previousByContent = new Map<string, { readonly json: string; readonly resource: XdsResource }>();
  private shared = new Map<string, Translated>();
  /** Snapshots of nodes without local resources, by sharing key: such nodes get the very same object. */
  private sharedSnapshots = new Map<string, Snapshot>();
  /**
   * Per-type maps by content (type and a hash of names and versions), this generation's and the previous one's:
   * a type whose content did not change keeps its map object, so streams see "same map" and skip it in O(1).
   */
  private typeMaps = new Map<string, ReadonlyMap<string, XdsResource>>();
  private previousTypeMaps = new Map<string, ReadonlyMap<string, XdsResource>>();
  /** Bumped by every setModel: a slower, older publishing pass stops when a newer one starts. */
  private generation = 0;
  private pass: Promise<void> = Promise.resolve();

  constructor(private readonly opts: PublisherOptions) {}

  tracked(): string[] {
    return [...this.nodes].sort();
  }

  /** A node connected: make sure it has a snapshot. */
  ensureNode(nodeId: string): void {
    if (this.nodes.has(nodeId)) return;
    this.nodes.add(nodeId);
    if (this.model) this.publish(nodeId);
  }

  removeNode(nodeId: string): void {
    this.nodes.delete(nodeId);
    this.opts.cache.clear(nodeId);
  }

  /**
   * Republishes every node. The first slice is published at once, the rest in slices of `SLICE` nodes with the
   * event loop free in between, so the first pushes go out (and ACKs come in) while later nodes are translated.
   */
  setModel(model: MeshModel): void {
    this.model = model;
    this.shared = new Map();
    this.sharedSnapshots = new Map();
    this.encodedByObject = new WeakMap();
    this.previousByContent = this.byContent;
    this.byContent = new Map();
    this.previousTypeMaps = this.typeMaps;
    this.typeMaps = new Map();
    this.generation += 1;
    const generation = this.generation;
    const nodes = this.tracked();
    let i = 0;
    const slice = (): boolean => {
      const end = Math.min(nodes.length, i + SLICE);
      for (; i < end; i += 1) {
        if (this.generation !== generation) return true;
        // A node removed meanwhile is skipped; one added meanwhile was published by ensureNode.
        const n = nodes[i];
        if (n !== undefined && this.nodes.has(n)) this.publish(n);
      }
      return i >= nodes.length;
    };
    if (slice()) {
      this.pass = Promise.resolve();
      return;
    }
    this.pass = new Promise<void>((resolve) => {
      const next = () => {
        try {
          if (slice()) return resolve();
        } catch (e) {
          this.opts.logger.error({ err: e }, 'xds: publishing pass failed');
          return resolve();
        }
        setImmediate(next);
      };
      setImmediate(next);
    });
  }

  /** Resolves when the publishing pass of the latest setModel has reached every node (or was superseded). */
  settled(): Promise<void> {
    return this.pass;
  }

  /** Rebuilds one node's snapshot from the current model; returns whether its content changed. */
  publish(nodeId: string): boolean {
    const model = this.model;
    if (!model) return false;
    const started = performance.now();
    const input = this.opts.inputFor(nodeId, model);
    if (!input) {
      this.opts.logger.warn({ nodeId }, 'xds: no such node in the mesh; nothing to serve');
      return false;
    }
    const key = this.opts.sharing && !hasLocal(input) ? this.opts.sharing.key(input) : undefined;
    let snapshot = key !== undefined ? this.sharedSnapshots.get(key) : undefined;
    if (!snapshot) {
      let translated: Translated;
      try {
        translated = this.translateShared(input);
      } catch (e) {
        this.opts.logger.error({ nodeId, err: e }, 'xds: translation failed; the node keeps its previous snapshot');
        return false;
      }
      snapshot = this.assemble(translated);
      if (key !== undefined) this.sharedSnapshots.set(key, snapshot);
    }
    const version = snapshot.version;
    const previous = this.opts.cache.getSnapshot(nodeId);
    const changed = previous?.version !== version;
    if (changed) {
      const set = this.opts.cache.setSnapshot(nodeId, snapshot);
      if (!set.ok) {
        this.opts.logger.error({ nodeId, problems: set.error }, 'xds: translation produced an inconsistent snapshot; not served');
        return false;
      }
    }
    this.opts.onPublished?.({ nodeId, version, changed, ms: performance.now() - started });
    return changed;
  }

  private assemble(translated: Translated): Snapshot {
    const resources: XdsResource[] = [];
    for (const [typeUrl, list] of Object.entries(translated)) {
      for (const r of list) resources.push(this.encode(typeUrl, r));
    }
    resources.sort((a, b) => (a.typeUrl + a.name < b.typeUrl + b.name ? -1 : 1));
    const h = createHash('sha256');
    const byType = new Map<string, ReadonlyMap<string, XdsResource>>();
    let start = 0;
    for (let i = 0; i <= resources.length; i += 1) {
      const r = resources[i];
      const prev = resources[i - 1];
      if (prev && r?.typeUrl !== prev.typeUrl) {
        byType.set(prev.typeUrl, this.typeMap(resources.slice(start, i)));
        start = i;
      }
      if (r) h.update(`${r.typeUrl}\0${r.name}\0${r.version}\n`);
    }
    return snapshotFromTypes(h.digest('hex').slice(0, 12), byType);
  }

  /** The map of one type's sorted resources: an existing map object when one with the same content exists. */
  private typeMap(list: readonly XdsResource[]): ReadonlyMap<string, XdsResource> {
    const typeUrl = list[0]?.typeUrl ?? '';
    const h = createHash('sha256');
    for (const r of list) h.update(`${r.name}\0${r.version}\n`);
    const key = `${typeUrl}\0${h.digest('hex')}`;
    let m = this.typeMaps.get(key) ?? this.previousTypeMaps.get(key);
    if (!m) {
      const fresh = new Map<string, XdsResource>();
      for (const r of list) {
        if (fresh.has(r.name)) {
          throw vmeshError(ErrorCode.InvalidResource, `snapshot: two ${typeLabel(typeUrl)} resources named "${r.name}"`);
        }
        fresh.set(r.name, r);
      }
      m = fresh;
    }
    this.typeMaps.set(key, m);
    return m;
  }

  private translateShared(input: TranslateInput): Translated {
    const translated = this.translateUnpatched(input);
    return this.opts.patch ? this.opts.patch(input, translated) : translated;
  }

  private translateUnpatched(input: TranslateInput): Translated {
    const sharing = this.opts.sharing;
    if (!sharing) return this.opts.translate(input);
    const key = sharing.key(input);
    let common = this.shared.get(key);
    if (!common) {
      // The shared part must not depend on this node's workloads (its locality is kept on the node itself).
      common = this.opts.translate({ ...input, node: { ...input.node, workloads: [], addresses: [], identities: [] } });
      this.shared.set(key, common);
    }
    if (!hasLocal(input)) return common;
    const local = this.opts.translate({ ...input, services: [] });
    const out: Record<string, EnvoyResource[]> = {};
    for (const typeUrl of new Set([...Object.keys(common), ...Object.keys(local)])) {
      const mine = (local[typeUrl] ?? []).filter((r) => sharing.isLocal(typeUrl, r.name));
      const names = new Set(mine.map((r) => r.name));
      out[typeUrl] = [...(common[typeUrl] ?? []).filter((r) => !names.has(r.name)), ...mine];
    }
    return out;
  }

  private encode(typeUrl: string, r: EnvoyResource): XdsResource {
    const hit = this.encodedByObject.get(r.message);
    if (hit && hit.typeUrl === typeUrl) return hit;
    const key = `${typeUrl}\0${r.name}`;
    const json = JSON.stringify(r.message);
    const same = this.byContent.get(key) ?? this.previousByContent.get(key);
    const enc = same?.json === json ? same.resource : makeResource(typeUrl, r.name, r.message);
    this.byContent.set(key, same?.json === json ? same : { json, resource: enc });
    this.encodedByObject.set(r.message, enc);
    return enc;
  }
}

/** A node with registered workloads (endpoints or pure clients) has resources of its own besides the shared ones. */
function hasLocal(input: TranslateInput): boolean {
  return input.node.workloads.length > 0 || (input.node.identities?.length ?? 0) > 0;
}
