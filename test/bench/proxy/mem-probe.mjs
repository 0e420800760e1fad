// Loaded with --import by test/bench/proxy/memory.ts into an agent and, through the agent's execArgv, into each proxy
// worker it forks. On SIGUSR2 each process writes its own process.memoryUsage(), V8 heap spaces and how many
// modules it loaded into VMESH_BENCH_MEM_DIR/<pid>.json: only the process itself can tell its heap from its RSS.
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { constants, PerformanceObserver } from 'node:perf_hooks';
import { getHeapSpaceStatistics, writeHeapSnapshot } from 'node:v8';

const dir = process.env.VMESH_BENCH_MEM_DIR;
if (dir) {
  const require = createRequire(import.meta.url);
  // Time spent in GC since start, by kind: what a smaller young generation costs shows up here.
  const gc = { scavenge: { n: 0, ms: 0 }, markCompact: { n: 0, ms: 0 }, other: { n: 0, ms: 0 } };
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const k = e.detail?.kind;
      const slot =
        k === constants.NODE_PERFORMANCE_GC_MINOR ? gc.scavenge : k === constants.NODE_PERFORMANCE_GC_MAJOR ? gc.markCompact : gc.other;
      slot.n++;
      slot.ms += e.duration;
    }
  }).observe({ entryTypes: ['gc'] });
  process.on('SIGUSR2', () => {
    // CommonJS modules are listed in require.cache; ES modules (vmesh's own files) are not, and are left out.
    const packages = new Map();
    for (const f of Object.keys(require.cache)) {
      const m = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(f);
      if (m) packages.set(m[1], (packages.get(m[1]) ?? 0) + 1);
    }
    const snapshot = process.env.VMESH_BENCH_MEM_SNAPSHOT === '1' ? writeHeapSnapshot(`${dir}/${process.pid}.heapsnapshot`) : undefined;
    try {
      writeFileSync(
        `${dir}/${process.pid}.json`,
        JSON.stringify({
          pid: process.pid,
          argv: process.argv.slice(1),
          memoryUsage: process.memoryUsage(),
          heapSpaces: getHeapSpaceStatistics().map((s) => ({ name: s.space_name, size: s.space_size, used: s.space_used_size })),
          gc,
          cjsModules: Object.keys(require.cache).length,
          packages: Object.fromEntries([...packages].sort((a, b) => b[1] - a[1])),
          snapshot,
        }),
        { mode: 0o666 },
      );
    } catch (e) {
      process.stderr.write(`mem-probe: ${e}\n`);
    }
  });
}
