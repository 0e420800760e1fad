import { createHash } from 'node:crypto';
import type { MeshModel } from '../api/model.js';
import type { Logger } from '../lib/logger.js';
import { makeResource, type Snapshot, snapshotOf, type XdsResource } from './snapshot.js';
import type { SnapshotCache } from './snapshot-cache.js';
import type { EnvoyResource, TranslateInput } from './translate/input.js';

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
  private shared = new Map<string, Translated>();
  /** Snapshots of nodes without local resources, by sharing key: such nodes get the very same object. */
  private sharedSnapshots = new Map<string, Snapshot>();

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

  setModel(model: MeshModel): void {
    this.model = model;
    this.shared = new Map();
    this.sharedSnapshots = new Map();
    this.encodedByObject = new WeakMap();
    for (const n of this.tracked()) this.publish(n);
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
    const key = this.opts.sharing && input.node.workloads.length === 0 ? this.opts.sharing.key(input) : undefined;
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
    for (const r of resources) h.update(`${r.typeUrl}\0${r.name}\0${r.version}\n`);
    return snapshotOf(h.digest('hex').slice(0, 12), resources);
  }

  private translateShared(input: TranslateInput): Translated {
    const sharing = this.opts.sharing;
    if (!sharing) return this.opts.translate(input);
    const key = sharing.key(input);
    let common = this.shared.get(key);
    if (!common) {
      // The shared part must not depend on this node's workloads (its locality is kept on the node itself).
      common = this.opts.translate({ ...input, node: { ...input.node, workloads: [], addresses: [] } });
      this.shared.set(key, common);
    }
    if (input.node.workloads.length === 0) return common;
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
    const enc = makeResource(typeUrl, r.name, r.message);
    this.encodedByObject.set(r.message, enc);
    return enc;
  }
}
