import { ErrorCode, vmeshError } from '../lib/errors.js';

/** JSON-serialisable values only: the store's content must survive a restart unchanged. */
export type StoreValue = null | boolean | number | string | readonly StoreValue[] | { readonly [k: string]: StoreValue };

export type StoreOp =
  | { readonly op: 'put'; readonly key: string; readonly value: StoreValue }
  | { readonly op: 'delete'; readonly key: string };

/**
 * The controller's durable state: registrations, tokens, VIPs, hosts, config. Keys are `/`-separated
 * paths. A transaction applies all of its operations or none, and is durable when its promise resolves.
 * The embedded file store (store/file) holds one controller's state; the Consul KV store (store/consul) is
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

/** Keys are `/`-separated paths of [A-Za-z0-9._-:@], starting with a letter or digit. */
export function checkKey(key: string): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9._\-/:@]*$/.test(key)) throw vmeshError(ErrorCode.Internal, `store: invalid key "${key}"`);
}
