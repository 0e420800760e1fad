import { monitorEventLoopDelay } from 'node:perf_hooks';

/**
 * What the abuse suites share: how many cases to generate, a seeded generator so a failure can be replayed
 * (VMESH_FUZZ_SEED), and a probe of the event loop the controller under test runs on.
 */

/** Cases per entry point: a few thousand by default; VMESH_FUZZ_CASES=100000 for a long run. */
export function fuzzCases(defaultCount: number): number {
  const n = Number(process.env.VMESH_FUZZ_CASES ?? '');
  return Number.isInteger(n) && n > 0 ? n : defaultCount;
}

export function fuzzSeed(): number {
  const v = process.env.VMESH_FUZZ_SEED;
  return v && Number.isInteger(Number(v)) ? Number(v) : Date.now() & 0x7fffffff;
}

/** mulberry32: small, fast, good enough to pick cases. */
export function rng(seed: number): Rng {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1));
  return {
    next,
    int,
    pick: <T>(xs: readonly T[]): T => xs[int(0, xs.length - 1)] as T,
    /** Random bytes; past 4 KiB a random 4 KiB block repeats, so a megabyte case costs no more to make than to send. */
    bytes: (n: number) => {
      const block = Buffer.alloc(Math.min(n, 4096));
      for (let i = 0; i < block.length; i++) block[i] = int(0, 255);
      return n <= block.length ? block : Buffer.alloc(n, block);
    },
    /** A size skewed to small values, sometimes huge: most cases are cheap, some are oversized. */
    size: (max: number) => (next() < 0.05 ? int(0, max) : int(0, Math.min(max, 2048))),
    text: (n: number, alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789-.[]{}:,"\'#\n -----BEGIN END') => {
      let s = '';
      for (let i = 0; i < Math.min(n, 4096); i++) s += alphabet[int(0, alphabet.length - 1)];
      return n <= s.length ? s : s.repeat(Math.ceil(n / s.length)).slice(0, n);
    },
  };
}

export interface Rng {
  next(): number;
  int(lo: number, hi: number): number;
  pick<T>(xs: readonly T[]): T;
  bytes(n: number): Buffer;
  size(max: number): number;
  text(n: number, alphabet?: string): string;
}

/**
 * Watches this process's event loop (the controller under test runs in it): the longest single block seen.
 *
 * A late tick has two causes: this process kept its loop busy, or the machine gave it no CPU (other test files,
 * the abuser process, the kernel). Only the first is the controller's fault, so each gap between ticks is bounded
 * by the CPU this process used over it: a stall of 900 ms during which it ran 40 ms cannot be a 900 ms block of
 * its own. (CPU of every thread counts, so the bound can only overstate a block.) `rawMaxMs` is the plain
 * lateness, printed beside it. A block spent waiting in a synchronous syscall would use no CPU and escape this
 * bound; vmesh makes none on its request paths (its file and network I/O is asynchronous).
 */
export function eventLoopProbe(): { stop(): { maxMs: number; p99Ms: number; rawMaxMs: number } } {
  const h = monitorEventLoopDelay({ resolution: 10 });
  h.enable();
  const TICK_MS = 5;
  let lastWall = performance.now();
  let lastCpu = process.cpuUsage();
  let maxMs = 0;
  const timer = setInterval(() => {
    const wall = performance.now();
    const cpu = process.cpuUsage();
    const lateMs = wall - lastWall - TICK_MS;
    const cpuMs = (cpu.user - lastCpu.user + cpu.system - lastCpu.system) / 1000;
    maxMs = Math.max(maxMs, Math.min(lateMs, cpuMs));
    lastWall = wall;
    lastCpu = cpu;
  }, TICK_MS);
  return {
    stop() {
      clearInterval(timer);
      h.disable();
      return { maxMs, p99Ms: h.percentile(99) / 1e6, rawMaxMs: h.max / 1e6 };
    },
  };
}

/**
 * The bound the suites assert on the longest event-loop block. The target is 50 ms per request; on a
 * shared 2-core machine other processes steal whole scheduler slices, so the assertion is 250 ms and the
 * measured worst is printed for the README.
 */
export const MAX_BLOCK_MS = 250;

/** Runs `work` for every index with at most `concurrency` in flight. */
export async function pool(count: number, concurrency: number, work: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      await work(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
}
