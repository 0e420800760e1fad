/**
 * The controller's file store: what one small write costs on a large state, the journal store against the
 * whole-state rewrite it replaced (write the whole state to a temporary file, fsync, rename, fsync the directory),
 * one after another and 300 at once (as 300 hosts renewing together), side by side in one run.
 *
 *   npm run bench:store [-- --state-kb 1400 --writes 300]
 *
 * Prints a table, writes test/bench/results/store-<timestamp>.json.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { writeFileAtomic } from '../../../src/lib/atomic-file.js';
import { FileStore } from '../../../src/store/file/file-store.js';

const { values } = parseArgs({ options: { 'state-kb': { type: 'string', default: '1400' }, writes: { type: 'string', default: '300' } } });
const STATE_KB = Number(values['state-kb']);
const WRITES = Number(values.writes);
const filler = Array.from({ length: STATE_KB }, (_, i) => [`hosts/h${i}`, { facts: 'f'.repeat(1000) }] as const);
const small = (i: number) => ({ serial: `${i}`.padStart(32, '0'), notAfter: new Date(1e12 + i).toISOString() });

interface Figures {
  readonly sequentialMsP50: number;
  readonly sequentialMsP99: number;
  readonly concurrentTotalMs: number;
  /** The last of the concurrent writes to be acknowledged: what an admin write queued behind them waits. */
  readonly concurrentLastMs: number;
}

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))] ?? 0;

async function measure(write: (i: number) => Promise<void>): Promise<Figures> {
  const seq: number[] = [];
  for (let i = 0; i < WRITES; i++) {
    const t = performance.now();
    await write(i);
    seq.push(performance.now() - t);
  }
  const t0 = performance.now();
  const done = await Promise.all(Array.from({ length: WRITES }, (_, i) => write(WRITES + i).then(() => performance.now() - t0)));
  return {
    sequentialMsP50: pct(seq, 50),
    sequentialMsP99: pct(seq, 99),
    concurrentTotalMs: performance.now() - t0,
    concurrentLastMs: Math.max(...done),
  };
}

async function journal(): Promise<Figures> {
  const dir = mkdtempSync(join(tmpdir(), 'vmesh-bench-store-'));
  try {
    const s = await FileStore.open(dir);
    await s.txn(filler.map(([key, value]) => ({ op: 'put' as const, key, value })));
    const f = await measure((i) => s.txn([{ op: 'put', key: `hosts/h${i % STATE_KB}/cert`, value: small(i) }]));
    await s.close();
    return f;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function wholeState(): Promise<Figures> {
  const dir = mkdtempSync(join(tmpdir(), 'vmesh-bench-store-'));
  try {
    const state = new Map<string, unknown>(filler);
    let queue: Promise<void> = Promise.resolve();
    // Serialised like the store it replaced: one whole-state rewrite per transaction.
    const write = (i: number) => {
      const p = queue.then(async () => {
        const next = new Map(state);
        next.set(`hosts/h${i % STATE_KB}/cert`, small(i));
        await writeFileAtomic(join(dir, 'state.json'), JSON.stringify({ format: 1, data: Object.fromEntries(next) }), 0o600);
        state.set(`hosts/h${i % STATE_KB}/cert`, small(i));
      });
      queue = p.catch(() => {});
      return p;
    };
    return await measure(write);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const startedAt = new Date();
const rows: Array<[string, Figures]> = [];
// Interleaved twice, so a noisy moment does not land on one side only.
for (let round = 0; round < 2; round++) {
  rows.push(['whole-state rewrite (before)', await wholeState()]);
  rows.push(['journal + group commit (now)', await journal()]);
}
const r1 = (n: number) => (Math.round(n * 10) / 10).toFixed(1);
const head = ['store', 'one write p50 ms', 'p99 ms', `${WRITES} at once: last acked ms`];
const table = rows.map(([name, f]) => [name, r1(f.sequentialMsP50), r1(f.sequentialMsP99), r1(f.concurrentLastMs)]);
const widths = head.map((_, i) => Math.max(...[head, ...table].map((r) => String(r[i]).length)));
console.log(`state ~${STATE_KB} KB, ${WRITES} small writes`);
for (const r of [head, ...table]) console.log(r.map((x, i) => String(x).padEnd(widths[i] ?? 0)).join('  '));
const dir = join(import.meta.dirname, '..', 'results');
mkdirSync(dir, { recursive: true });
const file = join(dir, `store-${startedAt.toISOString().replace(/[:.]/g, '-')}.json`);
writeFileSync(
  file,
  JSON.stringify(
    {
      benchmark: 'store',
      startedAt,
      finishedAt: new Date(),
      machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model },
      stateKb: STATE_KB,
      writes: WRITES,
      rows,
    },
    null,
    2,
  ),
);
console.log(`wrote ${file}`);
