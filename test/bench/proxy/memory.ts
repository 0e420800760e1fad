/**
 * Memory per host (a measurement, not a test): one lab host runs an agent with its proxy workers, and 1, 10, then 50
 * workloads (each its own service and port) are registered on it. After each step, once the host's proxy serves the
 * new config, it reads every process's RSS and PSS from /proc and, through mem-probe.mjs, its V8 heap; optionally a
 * short wrk run through the mesh (host to itself: outbound, mTLS, inbound) and a second reading after it. Prints a
 * table beside what as many Istio sidecars would cost (60 MB each, Istio's published figure); writes
 * test/bench/results/memory-<timestamp>.json.
 *
 *   npm run build && node --import tsx test/bench/proxy/memory.ts                  the built agent (as deployed)
 *   node --import tsx test/bench/proxy/memory.ts --workloads 1 --load-seconds 5    one step, with load
 *   node --import tsx test/bench/proxy/memory.ts --runtime tsx                      the agent under tsx (as bench:proxy runs it)
 *
 * RSS counts the pages a process shares with the others (the node binary, mapped once for all of them) in each
 * process; PSS divides them among the processes sharing them, so the host's PSS is what the host really spends.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createLab, type LabHost, type LabProcess, requireLabTools } from '../../lab/lab.js';
import { APP, cpuSeconds, programPid, runWrk } from './measure.js';
import { writeResult } from './report.js';
import { adminGet, waitFor } from './setup.js';

const ROOT = join(import.meta.dirname, '..', '..', '..');
const RESULTS_DIR = join(import.meta.dirname, '..', 'results');
/** Istio's published sidecar figure: 60 MB per proxy, one proxy per workload. */
const ISTIO_SIDECAR_MB = 60;
const { values: opt } = parseArgs({
  options: {
    workloads: { type: 'string', default: '1,10,50' },
    runtime: { type: 'string', default: 'dist' },
    workers: { type: 'string', default: '2' },
    'settle-seconds': { type: 'string', default: '5' },
    'load-seconds': { type: 'string', default: '0' },
    'heap-snapshot': { type: 'boolean', default: false },
    /** Extra node flags for the agent, which its workers inherit (e.g. "--max-semi-space-size=2"). */
    'node-args': { type: 'string', default: '' },
  },
});
const STEPS = (opt.workloads ?? '').split(',').map(Number);
const SETTLE_MS = Number(opt['settle-seconds']) * 1000;
const LOAD_SECONDS = Number(opt['load-seconds']);
const log = (msg: string) => process.stderr.write(`[bench:memory ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const MB = 1024 * 1024;

interface ProcMemory {
  readonly role: 'agent' | 'worker';
  readonly pid: number;
  readonly rssMb: number;
  readonly pssMb: number;
  readonly heapUsedMb?: number;
  readonly heapTotalMb?: number;
  readonly externalMb?: number;
  readonly arrayBuffersMb?: number;
  readonly cjsModules?: number;
  readonly packages?: Record<string, number>;
  readonly threads: number;
  /** GC count and milliseconds since the process started, by kind. */
  readonly gc?: Record<string, { n: number; ms: number }>;
  /** V8's spaces: committed MB / used MB. */
  readonly heapSpaces?: Record<string, string>;
}
interface Reading {
  readonly workloads: number;
  readonly when: 'idle' | 'after-load';
  readonly processes: readonly ProcMemory[];
  readonly hostRssMb: number;
  readonly hostPssMb: number;
  readonly istioSidecarsMb: number;
  readonly wrkRps?: number;
  /** CPU time of the agent and its workers per request during the wrk run: less swayed by other load than req/s. */
  readonly cpuUsPerRequest?: number;
}

function cli(): string[] {
  if (opt.runtime === 'tsx') return ['--import', 'tsx', join(ROOT, 'src', 'cli', 'main.ts')];
  const main = join(ROOT, 'dist', 'src', 'cli', 'main.js');
  if (!existsSync(main)) throw new Error(`${main} is missing: run \`npm run build\` first (or --runtime tsx)`);
  return [main];
}

function smapsKb(pid: number, field: 'Rss' | 'Pss'): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
    return m ? Number(m[1]) : Number.NaN;
  } catch {
    // gone meanwhile (a worker restarted)
    return Number.NaN;
  }
}

function threadCount(pid: number): number {
  try {
    return Number(/^Threads:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
  } catch {
    return Number.NaN;
  }
}

/** The agent's proxy workers: its node children (it also runs nft and friends, briefly). */
function workerPids(pid: number): number[] {
  const comm = (p: number) => {
    try {
      return readFileSync(`/proc/${p}/comm`, 'utf8').trim();
    } catch {
      return '';
    }
  };
  return readdirSync(`/proc/${pid}/task`)
    .flatMap((t) => readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number))
    .filter((p) => /^node/.test(comm(p)));
}

/** Every process's own view (mem-probe.mjs answers SIGUSR2), beside what /proc says of it. */
async function readHost(agentPid: number, probeDir: string): Promise<ProcMemory[]> {
  const pids = [agentPid, ...workerPids(agentPid)];
  for (const f of readdirSync(probeDir)) if (f.endsWith('.json')) rmSync(join(probeDir, f));
  for (const p of pids) process.kill(p, 'SIGUSR2');
  const until = Date.now() + (opt['heap-snapshot'] ? 60_000 : 5000);
  while (Date.now() < until && !pids.every((p) => existsSync(join(probeDir, `${p}.json`)))) await sleep(100);
  return pids.map((pid) => {
    const file = join(probeDir, `${pid}.json`);
    const probe = existsSync(file)
      ? (JSON.parse(readFileSync(file, 'utf8')) as {
          memoryUsage: NodeJS.MemoryUsage;
          heapSpaces: { name: string; size: number; used: number }[];
          gc: Record<string, { n: number; ms: number }>;
          cjsModules: number;
          packages: Record<string, number>;
        })
      : undefined;
    const u = probe?.memoryUsage;
    return {
      role: pid === agentPid ? 'agent' : 'worker',
      pid,
      rssMb: smapsKb(pid, 'Rss') / 1024,
      pssMb: smapsKb(pid, 'Pss') / 1024,
      threads: threadCount(pid),
      ...(u
        ? {
            heapUsedMb: u.heapUsed / MB,
            heapTotalMb: u.heapTotal / MB,
            externalMb: u.external / MB,
            arrayBuffersMb: u.arrayBuffers / MB,
            cjsModules: probe.cjsModules,
            packages: probe.packages,
            gc: probe.gc,
            heapSpaces: Object.fromEntries(
              probe.heapSpaces.map((h) => [h.name, `${(h.size / MB).toFixed(1)} / ${(h.used / MB).toFixed(1)}`]),
            ),
          }
        : {}),
    };
  });
}

const fmt = (n: number | undefined) => (n === undefined || Number.isNaN(n) ? '-' : n.toFixed(0));

function table(readings: readonly Reading[]): string {
  const head = [
    'workloads',
    'when',
    'agent RSS/PSS/heap',
    'workers RSS/PSS/heap (each)',
    'host RSS',
    'host PSS',
    `Istio sidecars (${ISTIO_SIDECAR_MB} MB each)`,
  ];
  const rows = readings.map((r) => {
    const agent = r.processes.find((p) => p.role === 'agent');
    const workers = r.processes.filter((p) => p.role === 'worker');
    return [
      String(r.workloads),
      r.when,
      agent ? `${fmt(agent.rssMb)} / ${fmt(agent.pssMb)} / ${fmt(agent.heapUsedMb)}` : '-',
      workers.map((w) => `${fmt(w.rssMb)} / ${fmt(w.pssMb)} / ${fmt(w.heapUsedMb)}`).join(', '),
      `${fmt(r.hostRssMb)} MB`,
      `${fmt(r.hostPssMb)} MB`,
      `${r.istioSidecarsMb} MB`,
    ];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ')} |`;
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

async function main(): Promise<void> {
  requireLabTools(['ip', 'nft', 'iptables', 'setpriv', ...(LOAD_SECONDS > 0 ? ['wrk'] : [])]);
  const startedAt = new Date();
  const base = cli();
  const lab = await createLab({ hosts: 2 });
  const [h1, h2] = lab.hosts as [LabHost, LabHost];
  const ctlDir = mkdtempSync(join(tmpdir(), 'vmesh-mem-ctl-'));
  const agentDir = mkdtempSync(join(tmpdir(), 'vmesh-mem-h2-'));
  // The workers run as the proxy user: they must be able to write their answers here.
  const probeDir = mkdtempSync(join(tmpdir(), 'vmesh-mem-probe-'));
  const resolvDir = `/etc/netns/${h2.netns}`;
  const readings: Reading[] = [];
  let agent: LabProcess | undefined;
  try {
    chmodSync(probeDir, 0o777);
    mkdirSync(resolvDir, { recursive: true });
    writeFileSync(join(resolvDir, 'resolv.conf'), 'nameserver 198.18.0.254\n');
    const api = 'https://127.0.0.1:15014';
    const run = (args: string[]) =>
      h1.execOk(process.execPath, [...base, ...args, '--controller', api, '--data-dir', ctlDir], { timeoutMs: 30_000 });
    log(`starting the controller (${opt.runtime})`);
    const controller = h1.spawn(process.execPath, [...base, 'controller', '--data-dir', ctlDir, '--advertise', h1.ipv4]);
    await controller.waitForLine(/"ready":true/, 30_000);
    writeFileSync(join(agentDir, 'token'), (await run(['token', 'create', '--host', 'h2'])).trim(), { mode: 0o600 });
    if (LOAD_SECONDS > 0) {
      await run([
        'workload',
        'register',
        '--name',
        'load-client',
        '--address',
        h2.ipv4,
        '--host',
        'h2',
        '--uid',
        String(APP.uid),
        '--no-wait',
      ]);
      h2.spawn(process.execPath, [join(import.meta.dirname, 'upstream.mjs'), '10000', '']);
    }
    const probe = join(import.meta.dirname, 'mem-probe.mjs');
    agent = h2.spawn(
      process.execPath,
      [
        '--import',
        probe,
        ...(opt['node-args'] ?? '').split(' ').filter(Boolean),
        ...base,
        'agent',
        '--controller',
        `${h1.ipv4}:15012`,
        '--token-file',
        join(agentDir, 'token'),
        '--proxy-workers',
        opt.workers ?? '2',
        '--data-dir',
        agentDir,
        '--host-name',
        'h2',
      ],
      { uid: 0, gid: 1337, env: { VMESH_BENCH_MEM_DIR: probeDir, ...(opt['heap-snapshot'] ? { VMESH_BENCH_MEM_SNAPSHOT: '1' } : {}) } },
    );
    await agent.waitForLine(/"ready":true/, 60_000);
    const agentPid = programPid(agent.pid, /^node/);
    let registered = 0;
    for (const n of STEPS) {
      log(`registering workloads ${registered + 1}..${n}`);
      for (; registered < n; registered++) {
        await run([
          'workload',
          'register',
          '--name',
          `app-${registered}`,
          '--service',
          `app-${registered}`,
          '--address',
          h2.ipv4,
          '--port',
          `http:${10000 + registered}`,
          '--host',
          'h2',
          '--no-wait',
        ]);
      }
      const last = `inbound|${10000 + n - 1}`;
      await waitFor(
        'the last workload in the host proxy config',
        async () => (await adminGet(h2, '/config_dump')).includes(last),
        60_000,
        () => agent?.stderr().slice(-2000) ?? '',
      );
      await sleep(SETTLE_MS);
      const idle = await readHost(agentPid, probeDir);
      const sum = (ps: readonly ProcMemory[], k: 'rssMb' | 'pssMb') => ps.reduce((a, p) => a + p[k], 0);
      readings.push({
        workloads: n,
        when: 'idle',
        processes: idle,
        hostRssMb: sum(idle, 'rssMb'),
        hostPssMb: sum(idle, 'pssMb'),
        istioSidecarsMb: n * ISTIO_SIDECAR_MB,
      });
      log(`${n} workloads idle: host RSS ${fmt(sum(idle, 'rssMb'))} MB, PSS ${fmt(sum(idle, 'pssMb'))} MB`);
      if (LOAD_SECONDS > 0) {
        const cpu = () => [agentPid, ...workerPids(agentPid)].reduce((a, p) => a + cpuSeconds(p), 0);
        const c0 = cpu();
        const wrk = await runWrk(h2, 'http://app-0.default.mesh:10000/', LOAD_SECONDS);
        const cpuUsPerRequest = ((cpu() - c0) / wrk.requests) * 1e6;
        await sleep(1000);
        const after = await readHost(agentPid, probeDir);
        readings.push({
          workloads: n,
          when: 'after-load',
          processes: after,
          hostRssMb: sum(after, 'rssMb'),
          hostPssMb: sum(after, 'pssMb'),
          istioSidecarsMb: n * ISTIO_SIDECAR_MB,
          wrkRps: wrk.rps,
          cpuUsPerRequest,
        });
        log(
          `${n} workloads after ${LOAD_SECONDS} s of wrk (${fmt(wrk.rps)} req/s, ${wrk.errors} errors): host RSS ${fmt(sum(after, 'rssMb'))} MB`,
        );
      }
    }
  } catch (e) {
    log(`agent stderr: ${agent?.stderr().slice(-3000)}`);
    throw e;
  } finally {
    await lab.teardown();
    for (const d of [ctlDir, agentDir, resolvDir]) rmSync(d, { recursive: true, force: true });
    if (!opt['heap-snapshot']) rmSync(probeDir, { recursive: true, force: true });
    else log(`heap snapshots kept in ${probeDir}`);
  }
  const text = table(readings);
  process.stdout.write(
    `\n${text}\n\nagent/workers: RSS / PSS / V8 heap used, MB. host = agent + ${opt.workers} workers. runtime: ${opt.runtime}${opt['node-args'] ? `, node ${opt['node-args']}` : ''}.\n`,
  );
  const file = writeResult(
    RESULTS_DIR,
    {
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      machine: { cpus: cpus().length, memoryGb: Math.round(totalmem() / 1e9), node: process.version },
      options: {
        workloads: STEPS,
        runtime: opt.runtime,
        nodeArgs: opt['node-args'],
        workers: Number(opt.workers),
        settleSeconds: SETTLE_MS / 1000,
        loadSeconds: LOAD_SECONDS,
      },
      istioSidecarMb: ISTIO_SIDECAR_MB,
      readings,
      table: text,
    },
    startedAt,
    'memory',
  );
  process.stdout.write(`wrote ${file}\n`);
}

await main();
