import { type FileHandle, open, readdir, readFile, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { noSpaceError, writeFileAtomic } from '../../lib/atomic-file.js';
import { ErrorCode, vmeshError } from '../../lib/errors.js';
import { checkKey, type Store, type StoreOp, type StoreReader, type StoreValue } from '../store.js';

const SNAPSHOT = 'state.json';
const JOURNAL = 'state.journal';
/** Format 1 had no journal; format 2 snapshots say which journal records they already hold. */
const FORMAT = 2;
/** Compaction rewrites the snapshot once the journal is this big and bigger than the snapshot (amortised O(change)). */
const COMPACT_MIN_BYTES = 1 << 20;
/** Transactions made durable by one journal write and one fdatasync. */
const MAX_BATCH = 512;

interface Pending {
  readonly ops: readonly StoreOp[] | ((s: StoreReader) => readonly StoreOp[]);
  readonly resolve: () => void;
  readonly reject: (e: unknown) => void;
}

/** A journal record: the operations of one transaction, numbered from the snapshot's `seq` on. */
interface JournalRecord {
  readonly seq: number;
  readonly ops: readonly StoreOp[];
}

/**
 * The embedded store: a snapshot (`state.json`) plus an append-only journal (`state.journal`) of the
 * transactions made since. A transaction costs what it changes: one record appended and fdatasync'd, and
 * concurrent transactions share that write (group commit). Once the journal outgrows the snapshot it is
 * folded into a new snapshot (written atomically), then emptied. A kill -9 at any point loses no
 * acknowledged transaction and leaves no half-applied one: a torn last record was never acknowledged and is
 * dropped on open; records the snapshot already holds are skipped.
 */
export class FileStore implements Store {
  private state = new Map<string, StoreValue>();
  private seq = 0;
  private snapshotBytes = 0;
  private journalBytes = 0;
  private journal: FileHandle | undefined;
  private pending: Pending[] = [];
  private flushing: Promise<void> | undefined;
  private closed = false;
  /** Set when the journal could not be put back after a failed write: refuse writes rather than corrupt it. */
  private broken: Error | undefined;

  private constructor(private readonly dir: string) {}

  static async open(dir: string): Promise<FileStore> {
    const s = new FileStore(dir);
    try {
      await s.load();
    } catch (e) {
      await s.journal?.close();
      throw e;
    }
    return s;
  }

  private path(name: string): string {
    return join(this.dir, name);
  }

  private async load(): Promise<void> {
    const text = await readFile(this.path(SNAPSHOT), 'utf8').catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return undefined;
      throw e;
    });
    const journalText = await readFile(this.path(JOURNAL), 'utf8').catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return undefined;
      throw e;
    });
    if (text !== undefined) this.readSnapshot(text);
    else if (journalText !== undefined && journalText.length > 0) {
      throw vmeshError(
        ErrorCode.StoreFailed,
        `store ${this.path(JOURNAL)} is there but ${this.path(SNAPSHOT)} is not: the snapshot was lost; restore it from a backup`,
      );
    }
    const goodBytes = journalText === undefined ? 0 : this.replay(journalText);
    this.journal = await open(this.path(JOURNAL), 'a', 0o600);
    // A record torn by a crash was never acknowledged: cut it off so the next record starts on a line of its own.
    const size = (await this.journal.stat()).size;
    if (size > goodBytes) {
      await this.journal.truncate(goodBytes);
      await this.journal.datasync();
    }
    this.journalBytes = goodBytes;
    // The snapshot exists from the first start on, so a later start can tell that it was lost.
    if (text === undefined) await this.compact();
    // Temporary files of snapshots a crash interrupted are garbage: the rename never happened.
    for (const f of await readdir(this.dir).catch(() => [] as string[])) {
      if (f.startsWith(`.${SNAPSHOT}.`) && f.endsWith('.tmp')) await unlink(this.path(f)).catch(() => {});
    }
  }

  private readSnapshot(text: string): void {
    const file = this.path(SNAPSHOT);
    let doc: { format?: number; seq?: number; data?: Record<string, StoreValue> };
    try {
      doc = JSON.parse(text);
    } catch {
      throw vmeshError(ErrorCode.InvalidConfig, `store ${file} is not valid JSON`);
    }
    if (doc.format !== 1 && doc.format !== FORMAT)
      throw vmeshError(ErrorCode.InvalidConfig, `store ${this.dir}: unknown format ${doc.format}`);
    if (typeof doc.data !== 'object' || doc.data === null || Array.isArray(doc.data)) {
      // Read as empty, it would start a controller that has forgotten every host, token and resource.
      throw vmeshError(
        ErrorCode.StoreFailed,
        `store ${file}: "data" is ${doc.data === null ? 'null' : typeof doc.data}, not the state object: the file is damaged; restore it from a backup, or move it away and start with --fresh-state`,
      );
    }
    this.state = new Map(Object.entries(doc.data));
    this.seq = doc.format === FORMAT && Number.isSafeInteger(doc.seq) ? (doc.seq as number) : 0;
    this.snapshotBytes = Buffer.byteLength(text);
  }

  /** Applies the journal's records after the snapshot's; returns the length of its whole, valid records. */
  private replay(text: string): number {
    let at = 0;
    let line = 0;
    while (at < text.length) {
      const end = text.indexOf('\n', at);
      if (end < 0) break; // torn: the crash came before the newline
      line++;
      let rec: JournalRecord | undefined;
      try {
        rec = JSON.parse(text.slice(at, end)) as JournalRecord;
      } catch {
        rec = undefined;
      }
      if (!rec || !Number.isSafeInteger(rec.seq) || !Array.isArray(rec.ops)) {
        // Only the last record can be torn; damage before it is not a crash's doing.
        if (text.indexOf('\n', end + 1) < 0) break;
        throw vmeshError(
          ErrorCode.StoreFailed,
          `store ${this.path(JOURNAL)}: record ${line} is damaged; restore the data dir from a backup`,
        );
      }
      if (rec.seq > this.seq) {
        if (rec.seq !== this.seq + 1) {
          throw vmeshError(
            ErrorCode.StoreFailed,
            `store ${this.path(JOURNAL)}: record ${line} is number ${rec.seq}, want ${this.seq + 1}: records are missing`,
          );
        }
        applyOps(this.state, rec.ops);
        this.seq = rec.seq;
      }
      at = end + 1;
    }
    return Buffer.byteLength(text.slice(0, at));
  }

  get(key: string): StoreValue | undefined {
    return this.state.get(key);
  }

  list(prefix: string): Array<{ key: string; value: StoreValue }> {
    return listOf(this.state, prefix);
  }

  txn(ops: readonly StoreOp[] | ((s: StoreReader) => readonly StoreOp[])): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (this.closed) {
        reject(vmeshError(ErrorCode.Internal, 'store is closed'));
        return;
      }
      this.pending.push({ ops, resolve, reject });
      this.kick();
    });
  }

  private kick(): void {
    if (this.flushing) return;
    this.flushing = (async () => {
      try {
        await this.flush();
      } finally {
        this.flushing = undefined;
        // A transaction may have arrived after flush() last looked.
        if (this.pending.length > 0) this.kick();
      }
    })();
  }

  private async flush(): Promise<void> {
    while (this.pending.length > 0) {
      const batch = this.pending.splice(0, MAX_BATCH);
      await this.commit(batch);
      if (this.journalBytes >= COMPACT_MIN_BYTES && this.journalBytes >= this.snapshotBytes) {
        await this.compact().catch(() => {
          // The journal still holds everything; the next commit tries again.
        });
      }
    }
  }

  /** Runs each transaction against the state the earlier ones in the batch leave, then makes them durable at once. */
  private async commit(batch: readonly Pending[]): Promise<void> {
    const overlay = new Map<string, StoreValue | undefined>();
    const reader: StoreReader = {
      get: (k) => (overlay.has(k) ? overlay.get(k) : this.state.get(k)),
      list: (prefix) => listOf(merged(this.state, overlay), prefix),
    };
    const records: string[] = [];
    const done: Pending[] = [];
    let seq = this.seq;
    for (const t of batch) {
      let list: readonly StoreOp[];
      try {
        if (this.broken) throw this.broken;
        list = typeof t.ops === 'function' ? t.ops(reader) : t.ops;
        for (const o of list) checkKey(o.key);
      } catch (e) {
        t.reject(e);
        continue;
      }
      done.push(t);
      if (list.length === 0) continue;
      seq++;
      const copy = list.map((o): StoreOp => (o.op === 'put' ? { op: 'put', key: o.key, value: structuredClone(o.value) } : o));
      records.push(`${JSON.stringify({ seq, ops: copy })}\n`);
      for (const o of copy) overlay.set(o.key, o.op === 'put' ? o.value : undefined);
    }
    try {
      if (records.length > 0) await this.append(records.join(''));
    } catch (e) {
      for (const t of done) t.reject(e);
      return;
    }
    for (const [k, v] of overlay) {
      if (v === undefined) this.state.delete(k);
      else this.state.set(k, v);
    }
    this.seq = seq;
    for (const t of done) t.resolve();
  }

  private async append(data: string): Promise<void> {
    const fh = this.journal;
    if (!fh) throw vmeshError(ErrorCode.Internal, 'store is closed');
    const buf = Buffer.from(data);
    const before = this.journalBytes;
    try {
      let off = 0;
      while (off < buf.length) off += (await fh.write(buf, off)).bytesWritten;
      await fh.datasync();
    } catch (e) {
      // Put the journal back as it was, so that no record follows a torn one.
      await fh.truncate(before).catch((t: unknown) => {
        this.broken = vmeshError(
          ErrorCode.StoreFailed,
          `store ${this.path(JOURNAL)}: a failed write could not be undone (${String(t)}); restart the controller`,
        );
      });
      throw noSpaceError(e, this.path(JOURNAL));
    }
    this.journalBytes = before + buf.length;
  }

  /** Folds the journal into a new snapshot, then empties the journal (a crash between the two only re-reads old records). */
  private async compact(): Promise<void> {
    const data = Object.fromEntries([...this.state.entries()].sort(([a], [b]) => (a < b ? -1 : 1)));
    const text = JSON.stringify({ format: FORMAT, seq: this.seq, data });
    await writeFileAtomic(this.path(SNAPSHOT), text, 0o600);
    this.snapshotBytes = Buffer.byteLength(text);
    if (this.journal && this.journalBytes > 0) {
      await this.journal.truncate(0);
      await this.journal.datasync();
      this.journalBytes = 0;
    }
  }

  /** Sizes on disk, for tests and `vmesh` diagnostics. */
  async sizes(): Promise<{ snapshotBytes: number; journalBytes: number }> {
    const size = async (f: string) => (await stat(this.path(f)).catch(() => ({ size: 0 }))).size;
    return { snapshotBytes: await size(SNAPSHOT), journalBytes: await size(JOURNAL) };
  }

  async close(): Promise<void> {
    this.closed = true;
    while (this.flushing) await this.flushing;
    await this.journal?.close();
    this.journal = undefined;
  }
}

function applyOps(state: Map<string, StoreValue>, ops: readonly StoreOp[]): void {
  for (const o of ops) {
    if (o.op === 'put') state.set(o.key, o.value);
    else state.delete(o.key);
  }
}

function merged(state: ReadonlyMap<string, StoreValue>, overlay: ReadonlyMap<string, StoreValue | undefined>): Map<string, StoreValue> {
  if (overlay.size === 0) return state as Map<string, StoreValue>;
  const m = new Map(state);
  for (const [k, v] of overlay) {
    if (v === undefined) m.delete(k);
    else m.set(k, v);
  }
  return m;
}

function listOf(state: ReadonlyMap<string, StoreValue>, prefix: string): Array<{ key: string; value: StoreValue }> {
  const out: Array<{ key: string; value: StoreValue }> = [];
  for (const [key, value] of state) if (key.startsWith(prefix)) out.push({ key, value });
  return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}
