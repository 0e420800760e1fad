import { backoffDelay, sleep } from '../../lib/backoff.js';
import { ConsulHttp, type ConsulQueryResult, type KvEntry, type TxnKvOp, type TxnOutcome } from '../../lib/consul/consul-client.js';
import { runBlockingLoop } from '../../lib/consul/consul-loop.js';
import { ErrorCode, vmeshError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import { checkKey, type Store, type StoreOp, type StoreValue } from '../store.js';
import { applyOps, b64, changedKeys, chunks, encodeOp, MAX_TXN_BYTES, MAX_TXN_OPS, txnSize } from './consul-store-ops.js';

export interface ConsulStoreOptions {
  /** e.g. http://127.0.0.1:8500 (the local Consul agent). */
  readonly url: string;
  readonly token?: string;
  readonly datacenter?: string;
  /** Every key lives under it; `vmesh/` by default. Consul ACLs must keep it to the controllers. */
  readonly prefix?: string;
  /** Blocking `wait` of the watch, seconds; default 30. */
  readonly waitSeconds?: number;
  readonly logger: Logger;
}

/** The store's own key: its ModifyIndex versions the whole store. Store keys start with a letter or digit, never a dot. */
const REV_KEY = '.store/rev';
const MAX_ATTEMPTS = 32;

/** The revision key's value: a counter, and a committed transaction too big for one Consul txn, until written out. */
interface Rev {
  readonly seq: number;
  readonly pending?: readonly StoreOp[];
}

/**
 * The controller's store in Consul KV, shared by several controllers. Reads come from a mirror of the prefix,
 * kept current by a blocking query on `/v1/kv/<prefix>?recurse`; other controllers' writes reach it within one
 * round trip and are announced through `onRemoteChange`. Writes are `/v1/txn` transactions that check-and-set
 * the revision key on the ModifyIndex the mirror was read at: every write moves that key, so a transaction
 * computed from a state another controller has since changed is rolled back by Consul, and is computed again
 * from a fresh read. Consul does the consensus; this only orders writes by its indexes.
 *
 * A batch larger than one Consul transaction allows is committed first as a whole, as the revision key's
 * `pending` operations (one CAS: the commit point, overlaid by every reader), then written out in chunks that
 * each check the revision key is still that commit; whoever writes next finishes an interrupted write-out.
 */
export class ConsulStore implements Store {
  private readonly http: ConsulHttp;
  private readonly prefix: string;
  private readonly waitSeconds: number;
  private readonly logger: Logger;
  /** The keys as stored, and what reads see: the same, with a pending batch overlaid. */
  private data = new Map<string, StoreValue>();
  /** The ModifyIndex each value of `data` was read at: a key read again at the same index keeps its decoded value. */
  private indexes = new Map<string, number>();
  private view = new Map<string, StoreValue>();
  private rev: { index: number; value: Rev } = { index: 0, value: { seq: 0 } };
  /** X-Consul-Index of the last read taken: one lower than it means Consul was restored from a snapshot. */
  private listIndex = 0;
  private queue: Promise<void> = Promise.resolve();
  private closed = false;
  private readonly abort = new AbortController();
  private loop: Promise<void> | undefined;
  private readonly listeners = new Set<(keys: readonly string[]) => void>();
  private readonly badKeys = new Set<string>();
  private failing = false;

  private constructor(opts: ConsulStoreOptions) {
    const prefix = opts.prefix ?? 'vmesh/';
    if (!/^[A-Za-z0-9][A-Za-z0-9._\-/]*\/$/.test(prefix)) {
      throw vmeshError(ErrorCode.InvalidConfig, `consul store prefix "${prefix}": want a KV path ending in "/", e.g. vmesh/`);
    }
    this.prefix = prefix;
    this.waitSeconds = opts.waitSeconds ?? 30;
    this.logger = opts.logger;
    this.http = new ConsulHttp({
      url: opts.url,
      ...(opts.token ? { token: opts.token } : {}),
      ...(opts.datacenter ? { datacenter: opts.datacenter } : {}),
    });
  }

  /** Reads the prefix (Consul must answer) and starts following it. */
  static async open(opts: ConsulStoreOptions): Promise<ConsulStore> {
    const s = new ConsulStore(opts);
    try {
      await s.refresh(false);
    } catch (e) {
      s.http.destroy();
      throw vmeshError(ErrorCode.ConsulUnavailable, `store: cannot read ${s.prefix} from Consul: ${(e as Error).message}`);
    }
    s.logger.info({ url: s.http.url, prefix: s.prefix, keys: s.view.size }, 'store: shared state in Consul KV');
    s.loop = runBlockingLoop({
      signal: s.abort.signal,
      backoff: { baseMs: 250, maxMs: 15_000 },
      query: (index, signal) => s.http.kvList(s.prefix, { index, waitSeconds: s.waitSeconds, signal }),
      onResult: (r) => {
        if (s.failing) s.logger.info('store: Consul reachable again');
        s.failing = false;
        s.accept(r, true);
      },
      onError: (e) => {
        if (!s.failing) s.logger.warn({ err: e.message }, 'store: Consul unreachable; serving the last state read, writes fail');
        s.failing = true;
      },
    });
    return s;
  }

  get(key: string): StoreValue | undefined {
    return this.view.get(key);
  }

  list(prefix: string): Array<{ key: string; value: StoreValue }> {
    return [...this.view.entries()]
      .filter(([k]) => k.startsWith(prefix))
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([key, value]) => ({ key, value }));
  }

  onRemoteChange(cb: (keys: readonly string[]) => void): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }

  txn(ops: readonly StoreOp[] | ((s: Pick<Store, 'get' | 'list'>) => readonly StoreOp[])): Promise<void> {
    const run = async () => {
      let rechecked = false;
      for (let attempt = 0; ; attempt++) {
        if (this.closed || this.abort.signal.aborted) throw vmeshError(ErrorCode.Internal, 'store is closed');
        if (attempt >= MAX_ATTEMPTS) {
          throw vmeshError(
            ErrorCode.StoreFailed,
            `store: consul ${this.http.url} ${this.prefix}: ${MAX_ATTEMPTS} attempts were each overtaken by another controller's write`,
          );
        }
        if (this.rev.value.pending) {
          await this.rollForward();
          continue;
        }
        let list: readonly StoreOp[];
        try {
          list = typeof ops === 'function' ? ops(this) : ops;
        } catch (e) {
          // The mirror may lag another controller's write by a moment (a token made there, used here): a refusal
          // stands only against a fresh read.
          // The check is one small transaction, taken after the refusal was decided (a read shared with an
          // earlier refusal could predate the very write that would change the answer); the whole prefix is
          // read again only when something did change.
          if (rechecked || (await this.stillCurrent())) throw e;
          rechecked = true;
          await this.refresh();
          continue;
        }
        for (const o of list) checkKey(o.key);
        // Nothing to write was decided on the mirror, which may lag another controller's write (a resource it
        // deleted taken as there, unchanged): it stands only if the revision is still the one read. With Consul
        // unreachable it stands as any read does, on the last state read (a model build must not stop then).
        if (list.length === 0 && (await this.stillCurrent().catch(() => true))) return;
        if (list.length === 0) {
          await this.refresh();
          continue;
        }
        if (await this.commit(list)) return;
        await sleep(backoffDelay(attempt, { baseMs: 20, maxMs: 500 }), this.abort.signal);
        await this.refresh();
      }
    };
    const p = this.queue.then(run);
    this.queue = p.catch(() => {});
    return p;
  }

  async close(): Promise<void> {
    // Writes already queued finish (bounded: a Consul that stopped answering does not hold the shutdown).
    await Promise.race([this.queue, sleep(5000)]);
    this.closed = true;
    this.abort.abort();
    await this.loop;
    this.http.destroy();
  }

  // ---- reading ----

  private async refresh(notify = true): Promise<void> {
    const r = await this.http.kvList(this.prefix, { index: 0, waitSeconds: this.waitSeconds, signal: this.abort.signal, consistent: true });
    // Consistent, and never concurrent with a write of ours (both run in the write queue, or before it): current.
    this.accept(r, notify, true);
  }

  private accept(r: ConsulQueryResult, notify: boolean, current = false): void {
    let rev: { index: number; value: Rev } = { index: 0, value: { seq: 0 } };
    const data = new Map<string, StoreValue>();
    const indexes = new Map<string, number>();
    for (const e of r.body as KvEntry[]) {
      if (!e.key.startsWith(this.prefix)) continue;
      const key = e.key.slice(this.prefix.length);
      if (key === REV_KEY) rev = { index: e.modifyIndex, value: this.parseRev(e.value) };
      else {
        const known = this.indexes.get(key) === e.modifyIndex ? this.data.get(key) : undefined;
        const v = known ?? this.decode(key, e.value);
        if (v === undefined) continue;
        data.set(key, v);
        indexes.set(key, e.modifyIndex);
      }
    }
    const restored = r.index < this.listIndex;
    // A watch read that started before our last write answered after it: it is older than what we hold. (A
    // revision key deleted by hand also looks older: the next consistent read takes it.)
    if (rev.index < this.rev.index && !restored && !current) return;
    if (restored)
      this.logger.warn({ index: r.index, previous: this.listIndex }, 'store: Consul index went back (restore?): taking its state');
    this.listIndex = r.index;
    this.data = data;
    this.indexes = indexes;
    this.rev = rev;
    this.publish(notify);
  }

  private publish(notify: boolean): void {
    const next = applyOps(new Map(this.data), this.rev.value.pending ?? []);
    const changed = changedKeys(this.view, next);
    this.view = next;
    if (!notify || changed.length === 0) return;
    for (const cb of this.listeners) {
      try {
        cb(changed);
      } catch (e) {
        this.logger.error({ err: e }, 'store: change listener threw');
      }
    }
  }

  private decode(key: string, value: string | null): StoreValue | undefined {
    try {
      checkKey(key);
      if (value === null) throw new Error('empty value');
      return JSON.parse(value) as StoreValue;
    } catch (e) {
      // Not written by vmesh (an operator's `consul kv put`?): said once, and left out.
      if (!this.badKeys.has(key))
        this.logger.warn({ key: this.prefix + key, err: (e as Error).message }, 'store: ignoring a key that is not vmesh JSON');
      this.badKeys.add(key);
      return undefined;
    }
  }

  private parseRev(value: string | null): Rev {
    try {
      const v = JSON.parse(value ?? '') as Rev;
      if (typeof v.seq === 'number' && (v.pending === undefined || Array.isArray(v.pending))) return v;
    } catch {
      // fall through
    }
    this.logger.warn({ key: this.prefix + REV_KEY }, 'store: revision key is malformed; the next write replaces it');
    return { seq: 0 };
  }

  // ---- writing ----

  private encode(o: StoreOp): TxnKvOp {
    return encodeOp(this.prefix, o);
  }

  /** Check-and-set of the revision key on the index the mirror was read at (0: it must not exist yet). */
  private revOp(value: Rev, index = this.rev.index): TxnKvOp {
    return { Verb: 'cas', Key: this.prefix + REV_KEY, Value: b64(JSON.stringify(value)), Index: index };
  }

  /** Whether Consul's revision key is still at the index the mirror was read at. */
  private async stillCurrent(): Promise<boolean> {
    const key = this.prefix + REV_KEY;
    const check: TxnKvOp =
      this.rev.index === 0 ? { Verb: 'check-not-exists', Key: key } : { Verb: 'check-index', Key: key, Index: this.rev.index };
    const out = await this.http.txn([check], this.abort.signal);
    return out.ok || this.conflicted(out);
  }

  /** True when applied; false when another controller wrote first (the caller reads again and recomputes). */
  private async commit(list: readonly StoreOp[]): Promise<boolean> {
    const writes = list.map((o) => this.encode(o));
    const seq = this.rev.value.seq + 1;
    if (writes.length < MAX_TXN_OPS && txnSize(writes) <= MAX_TXN_BYTES) {
      const out = await this.http.txn([this.revOp({ seq }), ...writes], this.abort.signal);
      if (!out.ok) return this.conflicted(out);
      this.committed(out, { seq }, list);
      return true;
    }
    const intent = this.revOp({ seq, pending: list });
    if ((intent.Value?.length ?? 0) > MAX_TXN_BYTES) {
      throw vmeshError(
        ErrorCode.StoreFailed,
        `store: a transaction of ${list.length} operations is ${intent.Value?.length} bytes encoded, more than Consul takes at once (${MAX_TXN_BYTES})`,
      );
    }
    const out = await this.http.txn([intent], this.abort.signal);
    if (!out.ok) return this.conflicted(out);
    this.committed(out, { seq, pending: list }, []);
    // Committed: what is left is bookkeeping that the next writer (here or elsewhere) completes if this fails.
    await this.rollForward().catch((e: unknown) =>
      this.logger.warn({ err: (e as Error).message }, 'store: writing out a large transaction failed; the next write finishes it'),
    );
    return true;
  }

  /** Writes out a committed batch held in the revision key, then clears it; stops if someone else did. */
  private async rollForward(): Promise<void> {
    // Everything below is tied to this commit: once the revision key moves on, it is someone else's to finish.
    const { index, value } = this.rev;
    const pending = value.pending;
    if (!pending) return;
    const check: TxnKvOp = { Verb: 'check-index', Key: this.prefix + REV_KEY, Index: index };
    for (const chunk of chunks(
      pending.map((o) => this.encode(o)),
      MAX_TXN_OPS - 1,
      MAX_TXN_BYTES,
    )) {
      const out = await this.http.txn([check, ...chunk], this.abort.signal);
      if (!out.ok) {
        this.conflicted(out);
        await this.refresh();
        return;
      }
    }
    const out = await this.http.txn([this.revOp({ seq: value.seq }, index)], this.abort.signal);
    if (!out.ok) {
      this.conflicted(out);
      await this.refresh();
      return;
    }
    this.committed(out, { seq: value.seq }, pending);
  }

  private conflicted(out: Extract<TxnOutcome, { ok: false }>): false {
    const other = out.errors.filter((e) => e.opIndex !== 0);
    if (other.length > 0) {
      throw vmeshError(ErrorCode.StoreFailed, `store: Consul refused the transaction: ${other.map((e) => e.what).join('; ')}`);
    }
    return false;
  }

  /** Our write is in: the mirror takes it, unless a read already brought it (and maybe later writes too). */
  private committed(out: Extract<TxnOutcome, { ok: true }>, rev: Rev, applied: readonly StoreOp[]): void {
    const index = out.results[0]?.modifyIndex ?? 0;
    if (index <= this.rev.index) return;
    applyOps(this.data, applied);
    // Their new ModifyIndex is not known here: the next read decodes them.
    for (const o of applied) this.indexes.delete(o.key);
    this.rev = { index, value: rev };
    this.publish(false);
  }
}
