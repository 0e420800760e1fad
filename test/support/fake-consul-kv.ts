/**
 * The KV half of the fake Consul, from Consul's documented semantics (api-docs/kv, api-docs/txn) and its state
 * store (agent/consul/state/kvs.go, txn.go):
 *
 * - Entries carry CreateIndex, ModifyIndex, LockIndex, Flags and a byte Value (base64 in JSON, null when empty).
 *   A write that changes nothing keeps the entry's ModifyIndex.
 * - Deletes leave tombstones, so a recursive read's index never slides backwards: a `?recurse` read reports the
 *   highest ModifyIndex under the prefix or of a tombstone under it, else the KV table's index; a single-key read
 *   reports the entry's ModifyIndex, else the table's index.
 * - `cas`: 0 means create-if-absent; otherwise the entry's ModifyIndex must match. DELETE with `cas=0` does nothing.
 * - Transactions: at most 64 operations (413 otherwise), every operation is tried and every failure reported as
 *   `{OpIndex, What}` with Consul's wording, nothing applied unless all succeed (409 with `Results: null`), one
 *   raft index for the whole transaction, results for every verb but deletes, Value null except for gets.
 * Sessions (lock, unlock, acquire, release, check-session) are not implemented and refused as such.
 */

export interface KvEntry {
  readonly key: string;
  readonly value: Buffer;
  readonly flags: number;
  readonly createIndex: number;
  readonly modifyIndex: number;
  readonly lockIndex: number;
}

export interface TxnKvOp {
  readonly Verb?: unknown;
  readonly Key?: unknown;
  readonly Value?: unknown;
  readonly Flags?: unknown;
  readonly Index?: unknown;
  readonly Session?: unknown;
}

export const MAX_TXN_OPS = 64;
export const MAX_VALUE_BYTES = 512 * 1024;

export class KvHttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** The JSON form Consul gives an entry. */
export function entryJson(e: KvEntry, withValue = true) {
  return {
    LockIndex: e.lockIndex,
    Key: e.key,
    Flags: e.flags,
    Value: withValue && e.value.length > 0 ? e.value.toString('base64') : null,
    CreateIndex: e.createIndex,
    ModifyIndex: e.modifyIndex,
  };
}

interface Tables {
  entries: Map<string, KvEntry>;
  tombstones: Map<string, number>;
}

export class FakeKv {
  private t: Tables = { entries: new Map(), tombstones: new Map() };
  /** The kvs + tombstones tables' index: the raft index of the last write that changed them. */
  private tableIndex = 0;

  /** `peek` is the index the next write would get; `commit` takes it (moving the raft index, waking watchers). */
  constructor(private readonly raft: { peek(): number; commit(): number }) {}

  // ---- reads ----

  get(key: string): { index: number; entry?: KvEntry } {
    const entry = this.t.entries.get(key);
    return entry ? { index: entry.modifyIndex, entry } : { index: this.tableIndex };
  }

  list(prefix: string): { index: number; entries: KvEntry[] } {
    const entries = [...this.t.entries.values()].filter((e) => e.key.startsWith(prefix)).sort((a, b) => (a.key < b.key ? -1 : 1));
    let index = 0;
    if (prefix === '') index = this.tableIndex;
    else {
      for (const e of entries) index = Math.max(index, e.modifyIndex);
      for (const [k, i] of this.t.tombstones) if (k.startsWith(prefix)) index = Math.max(index, i);
    }
    return { index: index !== 0 ? index : this.tableIndex, entries };
  }

  /** `?keys` with an optional separator: keys, cut after the first separator past the prefix, deduplicated. */
  keys(prefix: string, separator: string): { index: number; keys: string[] } {
    const { index, entries } = this.list(prefix);
    const out = new Set<string>();
    for (const e of entries) {
      const at = separator === '' ? -1 : e.key.indexOf(separator, prefix.length);
      out.add(at < 0 ? e.key : e.key.slice(0, at + separator.length));
    }
    return { index, keys: [...out] };
  }

  // ---- single writes ----

  put(key: string, value: Buffer, opts: { cas?: number; flags?: number }): boolean {
    checkValue(key, value);
    return this.write((t, idx) => {
      if (opts.cas !== undefined && !casAllows(t.entries.get(key), opts.cas)) return false;
      set(t, idx, key, value, opts.flags ?? 0);
      return true;
    });
  }

  delete(key: string, opts: { recurse?: boolean; cas?: number }): boolean {
    return this.write((t, idx) => {
      if (opts.recurse) {
        for (const k of [...t.entries.keys()]) if (k.startsWith(key)) del(t, idx, k);
        return true;
      }
      if (opts.cas !== undefined) {
        const e = t.entries.get(key);
        if (!e) return true; // Consul: nothing to delete counts as done
        if (opts.cas === 0 || e.modifyIndex !== opts.cas) return false;
      }
      del(t, idx, key);
      return true;
    });
  }

  // ---- transactions ----

  txn(ops: readonly unknown[]): { status: 200 | 409; body: unknown } {
    if (ops.length > MAX_TXN_OPS) {
      throw new KvHttpError(413, `Transaction contains too many operations (${ops.length} > ${MAX_TXN_OPS})`);
    }
    const kvOps = ops.map((o, i) => {
      const kv = (o as { KV?: TxnKvOp } | null)?.KV;
      if (!kv || typeof kv !== 'object') throw new KvHttpError(400, `fake-consul: operation ${i} is not a KV operation`);
      let value = Buffer.alloc(0);
      if (kv.Value !== undefined && kv.Value !== null) {
        if (typeof kv.Value !== 'string') throw new KvHttpError(400, `Failed to parse body: unexpected value type: ${typeof kv.Value}`);
        value = Buffer.from(kv.Value, 'base64');
      }
      checkValue(String(kv.Key ?? ''), value);
      return { verb: String(kv.Verb ?? ''), key: String(kv.Key ?? ''), value, flags: Number(kv.Flags ?? 0), index: Number(kv.Index ?? 0) };
    });
    const results: unknown[] = [];
    const errors: Array<{ OpIndex: number; What: string }> = [];
    const writes = kvOps.some((o) => ['set', 'cas', 'delete', 'delete-cas', 'delete-tree', 'lock', 'unlock'].includes(o.verb));
    const run = (t: Tables, idx: number) => {
      kvOps.forEach((o, i) => {
        const fail = (what: string) => errors.push({ OpIndex: i, What: what });
        const cur = t.entries.get(o.key);
        switch (o.verb) {
          case 'set':
            results.push({ KV: entryJson(set(t, idx, o.key, o.value, o.flags), false) });
            break;
          case 'cas':
            if (!casAllows(cur, o.index)) fail(`failed to set key "${o.key}", index is stale`);
            else results.push({ KV: entryJson(set(t, idx, o.key, o.value, o.flags), false) });
            break;
          case 'delete':
            del(t, idx, o.key);
            break;
          case 'delete-cas':
            if (cur && cur.modifyIndex !== o.index) fail(`failed to delete key "${o.key}", index is stale`);
            else del(t, idx, o.key);
            break;
          case 'delete-tree':
            for (const k of [...t.entries.keys()]) if (k.startsWith(o.key)) del(t, idx, k);
            break;
          case 'get':
            if (!cur) fail(`key "${o.key}" doesn't exist`);
            else results.push({ KV: entryJson(cur) });
            break;
          case 'get-tree':
            for (const e of [...t.entries.values()].filter((x) => x.key.startsWith(o.key)).sort((a, b) => (a.key < b.key ? -1 : 1)))
              results.push({ KV: entryJson(e) });
            break;
          case 'check-index':
            if (!cur) fail(`failed to check index, key "${o.key}" doesn't exist`);
            else if (cur.modifyIndex !== o.index)
              fail(`failed index check for key "${o.key}", current modify index ${cur.modifyIndex} != ${o.index}`);
            else results.push({ KV: entryJson(cur, false) });
            break;
          case 'check-not-exists':
            if (cur) fail(`key "${o.key}" exists`);
            break;
          case 'lock':
          case 'unlock':
          case 'check-session':
            fail(`fake-consul: sessions are not implemented (verb "${o.verb}")`);
            break;
          default:
            fail(`unknown KV verb "${o.verb}"`);
        }
      });
    };
    if (!writes) {
      run(this.t, 0);
      return errors.length > 0
        ? { status: 409, body: { Results: null, Errors: errors } }
        : { status: 200, body: { Results: results, Errors: null } };
    }
    let failed = false;
    this.write((t, idx) => {
      run(t, idx);
      failed = errors.length > 0;
      return !failed;
    });
    return failed ? { status: 409, body: { Results: null, Errors: errors } } : { status: 200, body: { Results: results, Errors: null } };
  }

  /** A restore: indexes drop to at most `to`, data unchanged. */
  resetIndex(to: number): void {
    this.tableIndex = Math.min(this.tableIndex, to);
    for (const [k, e] of this.t.entries) {
      this.t.entries.set(k, { ...e, createIndex: Math.min(e.createIndex, to), modifyIndex: Math.min(e.modifyIndex, to) });
    }
    for (const [k, i] of this.t.tombstones) this.t.tombstones.set(k, Math.min(i, to));
  }

  /**
   * Runs `fn` on a copy of the tables at the next raft index; keeps the copy only when `fn` returns true. Like a
   * raft apply, a committed write moves the raft index even when it changed nothing in the tables.
   */
  private write(fn: (t: Tables, idx: number) => boolean): boolean {
    const idx = this.raft.peek();
    const copy: Tables = { entries: new Map(this.t.entries), tombstones: new Map(this.t.tombstones) };
    if (!fn(copy, idx)) return false;
    const changed =
      copy.entries.size !== this.t.entries.size ||
      copy.tombstones.size !== this.t.tombstones.size ||
      [...copy.entries].some(([k, e]) => this.t.entries.get(k) !== e) ||
      [...copy.tombstones].some(([k, i]) => this.t.tombstones.get(k) !== i);
    this.t = copy;
    if (changed) this.tableIndex = idx;
    this.raft.commit();
    return true;
  }
}

function casAllows(cur: KvEntry | undefined, index: number): boolean {
  if (index === 0) return cur === undefined;
  return cur !== undefined && cur.modifyIndex === index;
}

function set(t: Tables, idx: number, key: string, value: Buffer, flags: number): KvEntry {
  const cur = t.entries.get(key);
  if (cur && cur.flags === flags && cur.value.equals(value)) return cur;
  const e: KvEntry = { key, value, flags, createIndex: cur?.createIndex ?? idx, modifyIndex: idx, lockIndex: cur?.lockIndex ?? 0 };
  t.entries.set(key, e);
  t.tombstones.delete(key);
  return e;
}

function del(t: Tables, idx: number, key: string): void {
  if (!t.entries.has(key)) return;
  t.entries.delete(key);
  t.tombstones.set(key, idx);
}

function checkValue(key: string, value: Buffer): void {
  if (value.length > MAX_VALUE_BYTES) {
    throw new KvHttpError(413, `Value for key "${key}" is too large (${value.length} > ${MAX_VALUE_BYTES} bytes)`);
  }
}
