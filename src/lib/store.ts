import { readdir, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from './atomic-file.js';
import { ErrorCode, vmeshError } from './errors.js';

/** JSON-serialisable values only: the store's content must survive a restart unchanged. */
export type StoreValue = null | boolean | number | string | readonly StoreValue[] | { readonly [k: string]: StoreValue };

export type StoreOp =
  | { readonly op: 'put'; readonly key: string; readonly value: StoreValue }
  | { readonly op: 'delete'; readonly key: string };

/**
 * The controller's durable state: registrations, tokens, VIPs, hosts, config. Keys are `/`-separated
 * paths. A transaction applies all of its operations or none, and is durable when its promise resolves.
 * The embedded file store holds one controller's state; the Consul KV store (discovery/consul-store) is
 * shared by several controllers.
 */
export interface Store {
  get(key: string): StoreValue | undefined;
  /** Entries whose key starts with `prefix`, sorted by key. */
  list(prefix: string): Array<{ key: string; value: StoreValue }>;
  /**
   * Applies `ops` atomically. Given a function, it runs against the current state inside the write lock
   * (and may throw to abort), so a read-modify-write such as "consume this token once" cannot interleave.
   * A shared store runs it again after a conflicting write by another controller: it must only compute
   * the operations (and note its result), nothing else.
   */
  txn(ops: readonly StoreOp[] | ((s: StoreReader) => readonly StoreOp[])): Promise<void>;
  /**
   * Changes other writers made (another controller sharing the store), once `get`/`list` show them: the keys
   * that changed. A store only this process writes has none and leaves this out.
   */
  onRemoteChange?(cb: (keys: readonly string[]) => void): () => void;
  close(): Promise<void>;
}

export type StoreReader = Pick<Store, 'get' | 'list'>;

const STATE_FILE = 'state.json';
const FORMAT = 1;

/** Keys are `/`-separated paths of [A-Za-z0-9._-:@], starting with a letter or digit. */
export function checkKey(key: string): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9._\-/:@]*$/.test(key)) throw vmeshError(ErrorCode.Internal, `store: invalid key "${key}"`);
}

/**
 * A whole-state snapshot rewritten atomically on every transaction. Writes are serialised; a kill -9
 * at any point leaves the previous or the new state. Good for the thousands of records one controller
 * holds; not for high write rates.
 */
export class FileStore implements Store {
  private state = new Map<string, StoreValue>();
  private queue: Promise<void> = Promise.resolve();
  private closed = false;

  private constructor(private readonly dir: string) {}

  static async open(dir: string): Promise<FileStore> {
    const s = new FileStore(dir);
    await s.load();
    return s;
  }

  private async load(): Promise<void> {
    let text: string | undefined;
    try {
      text = await readFile(join(this.dir, STATE_FILE), 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    if (text !== undefined) {
      let doc: { format?: number; data?: Record<string, StoreValue> };
      try {
        doc = JSON.parse(text);
      } catch {
        throw vmeshError(ErrorCode.InvalidConfig, `store ${join(this.dir, STATE_FILE)} is not valid JSON`);
      }
      if (doc.format !== FORMAT) throw vmeshError(ErrorCode.InvalidConfig, `store ${this.dir}: unknown format ${doc.format}`);
      if (typeof doc.data !== 'object' || doc.data === null || Array.isArray(doc.data)) {
        // Read as empty, it would start a controller that has forgotten every host, token and resource.
        throw vmeshError(
          ErrorCode.StoreFailed,
          `store ${join(this.dir, STATE_FILE)}: "data" is ${doc.data === null ? 'null' : typeof doc.data}, not the state object: the file is damaged; restore it from a backup, or move it away and start with --fresh-state`,
        );
      }
      this.state = new Map(Object.entries(doc.data));
    }
    // Temporary files of writes a crash interrupted are garbage: the rename never happened.
    for (const f of await readdir(this.dir).catch(() => [] as string[])) {
      if (f.startsWith(`.${STATE_FILE}.`) && f.endsWith('.tmp')) await unlink(join(this.dir, f)).catch(() => {});
    }
  }

  get(key: string): StoreValue | undefined {
    return this.state.get(key);
  }

  list(prefix: string): Array<{ key: string; value: StoreValue }> {
    return [...this.state.entries()]
      .filter(([k]) => k.startsWith(prefix))
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([key, value]) => ({ key, value }));
  }

  txn(ops: readonly StoreOp[] | ((s: StoreReader) => readonly StoreOp[])): Promise<void> {
    const run = async () => {
      if (this.closed) throw vmeshError(ErrorCode.Internal, 'store is closed');
      const list = typeof ops === 'function' ? ops(this) : ops;
      // A function that decided to change nothing has nothing to make durable (an explicit empty list still
      // writes: the controller's first start makes state.json so that a later start can tell it was lost).
      if (typeof ops === 'function' && list.length === 0) return;
      const next = new Map(this.state);
      for (const o of list) {
        checkKey(o.key);
        if (o.op === 'put') next.set(o.key, structuredClone(o.value) as StoreValue);
        else next.delete(o.key);
      }
      const doc = { format: FORMAT, data: Object.fromEntries([...next.entries()].sort(([a], [b]) => (a < b ? -1 : 1))) };
      await writeFileAtomic(join(this.dir, STATE_FILE), JSON.stringify(doc), 0o600);
      this.state = next;
    };
    const p = this.queue.then(run);
    this.queue = p.catch(() => {});
    return p;
  }

  async close(): Promise<void> {
    await this.queue;
    this.closed = true;
  }
}
