import type { TxnKvOp } from '../../lib/consul/consul-client.js';
import type { StoreOp, StoreValue } from '../store.js';

/** Consul refuses transactions of more than 64 operations (128 in recent versions): stay within the older limit. */
export const MAX_TXN_OPS = 64;
/** Consul's txn_max_req_len is 512 KiB by default; room is left for the JSON around the base64 values. */
export const MAX_TXN_BYTES = 384 * 1024;

export const b64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');

/** A store operation as a Consul transaction operation: values are JSON, base64-encoded. */
export function encodeOp(prefix: string, o: StoreOp): TxnKvOp {
  return o.op === 'put'
    ? { Verb: 'set', Key: prefix + o.key, Value: b64(JSON.stringify(o.value)) }
    : { Verb: 'delete', Key: prefix + o.key };
}

/** Applies `ops` to `map` in place; values are copied, so later changes by the caller do not leak in. */
export function applyOps(map: Map<string, StoreValue>, ops: readonly StoreOp[]): Map<string, StoreValue> {
  for (const o of ops) {
    if (o.op === 'put') map.set(o.key, structuredClone(o.value) as StoreValue);
    else map.delete(o.key);
  }
  return map;
}

/**
 * Keys whose value differs between two views. Values read again unchanged keep their object (the store reuses
 * what it decoded for a key whose ModifyIndex did not move), so most keys compare by identity and only the
 * others by content: a watch read or a write costs what changed, not the whole state.
 */
export function changedKeys(before: ReadonlyMap<string, StoreValue>, after: ReadonlyMap<string, StoreValue>): string[] {
  const changed: string[] = [];
  for (const [k, v] of after) {
    const b = before.get(k);
    if (b === v) continue;
    if (b === undefined || JSON.stringify(b) !== JSON.stringify(v)) changed.push(k);
  }
  for (const k of before.keys()) if (!after.has(k)) changed.push(k);
  return changed;
}

/** Roughly what the operations weigh in a /v1/txn body. */
export function txnSize(ops: readonly TxnKvOp[]): number {
  return ops.reduce((n, o) => n + o.Key.length + (o.Value?.length ?? 0) + 64, 0);
}

/** Splits operations into transactions of at most `count` operations and about `bytes` bytes. */
export function* chunks(ops: readonly TxnKvOp[], count: number, bytes: number): Generator<TxnKvOp[]> {
  let cur: TxnKvOp[] = [];
  let curSize = 0;
  for (const o of ops) {
    const s = txnSize([o]);
    if (cur.length > 0 && (cur.length >= count || curSize + s > bytes)) {
      yield cur;
      cur = [];
      curSize = 0;
    }
    cur.push(o);
    curSize += s;
  }
  if (cur.length > 0) yield cur;
}
