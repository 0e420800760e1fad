import type { Logger } from '../lib/logger.js';
import type { Result } from '../lib/result.js';
import { checkConsistent, type Snapshot } from './snapshot.js';

export type SnapshotWatcher = (snapshot: Snapshot) => void;

/** The latest consistent snapshot of each node, and who wants to hear when it changes. */
export class SnapshotCache {
  private readonly snapshots = new Map<string, Snapshot>();
  private readonly watchers = new Map<string, Set<SnapshotWatcher>>();
  /** Snapshots already checked: alike nodes share one snapshot object, checked once. */
  private readonly consistent = new WeakSet<Snapshot>();

  constructor(private readonly opts: { readonly logger?: Logger } = {}) {}

  /**
   * Refuses an inconsistent snapshot (a node would wait forever for the missing piece) and keeps the previous one.
   * The caller says how much that matters: between the types of one update it is expected; from translation, a bug.
   */
  setSnapshot(nodeId: string, s: Snapshot): Result<void, string[]> {
    const check = this.consistent.has(s) ? ({ ok: true, value: undefined } as const) : checkConsistent(s);
    if (!check.ok) return check;
    this.consistent.add(s);
    this.snapshots.set(nodeId, s);
    for (const cb of [...(this.watchers.get(nodeId) ?? [])]) {
      try {
        cb(s);
      } catch (e) {
        this.opts.logger?.error({ nodeId, err: e }, 'xds: snapshot watcher failed');
      }
    }
    return check;
  }

  getSnapshot(nodeId: string): Snapshot | undefined {
    return this.snapshots.get(nodeId);
  }

  /** Calls `cb` with every snapshot set for `nodeId` from now on; returns the unsubscribe function. */
  watch(nodeId: string, cb: SnapshotWatcher): () => void {
    let set = this.watchers.get(nodeId);
    if (!set) {
      set = new Set();
      this.watchers.set(nodeId, set);
    }
    set.add(cb);
    return () => {
      const s = this.watchers.get(nodeId);
      if (!s) return;
      s.delete(cb);
      if (s.size === 0) this.watchers.delete(nodeId);
    };
  }

  /** Forgets the node's snapshot; streams keep what they last sent until a new snapshot arrives. */
  clear(nodeId: string): void {
    this.snapshots.delete(nodeId);
  }

  nodes(): string[] {
    return [...this.snapshots.keys()].sort();
  }
}
