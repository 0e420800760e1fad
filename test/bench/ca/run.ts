/**
 * Certificate signing benchmark (a measurement, not a test): how many workload CSRs the CA signs per second.
 *   1. the CA core on one core: verify each CSR's self-signature and sign an SVID (DER template + node:crypto);
 *   2. end to end: SignWorkload over mutual-TLS gRPC against a controller in its own process, from an agent-side
 *      client in another process (controller-child.ts, client-child.ts). The client joins as `--hosts` hosts
 *      (real Join, one channel per host) and makes every key and CSR before the timed window (key generation is
 *      reported apart); `--inflight` calls are in flight in all. Controller CPU per signing comes from the
 *      controller process's own process.cpuUsage over the window.
 * SignWorkload is rate-limited per host (20/s, burst 200 by default); this measures past the limit, so the
 * controller runs with the config's signRate/signBurst raised (`--sign-rate`, `--sign-burst`; the defaults stay).
 * Prints a table, writes test/bench/results/ca-<timestamp>.json.
 *
 *   npm run bench:ca                       5000 CSRs for the core, 4000 RPCs from 4 hosts with 64 in flight
 *   npm run bench:ca -- --csrs 1000 --rpcs 500 --hosts 2 --inflight 32
 *   npm run bench:ca -- --skip-core --cpu-prof /tmp/prof     profile the controller (writes a .cpuprofile there)
 */
import { type ChildProcess, fork } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { CertificateAuthority } from '../../../src/ca/index.js';
import { buildCsr, derToPem } from '../../../src/ca/x509.js';
import { createLogger } from '../../../src/lib/logger.js';
import type { Setup } from './client-child.js';

const { values: opt } = parseArgs({
  options: {
    csrs: { type: 'string', default: '5000' },
    rpcs: { type: 'string', default: '4000' },
    warmup: { type: 'string', default: '400' },
    inflight: { type: 'string', default: '64' },
    hosts: { type: 'string', default: '4' },
    'sign-rate': { type: 'string', default: '1000000' },
    'sign-burst': { type: 'string', default: '1000000' },
    'skip-core': { type: 'boolean', default: false },
    'skip-e2e': { type: 'boolean', default: false },
    'cpu-prof': { type: 'string' },
  },
});
const CSRS = Number(opt.csrs);
const RPCS = Number(opt.rpcs);
const INFLIGHT = Number(opt.inflight);
const HOSTS = Number(opt.hosts);
const WORKLOADS_PER_HOST = 10;
const log = (m: string) => process.stderr.write(`[bench:ca] ${m}\n`);

async function core(): Promise<{ perSecond: number; seconds: number; cpuSeconds: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'vmesh-bench-ca-'));
  try {
    const ca = await CertificateAuthority.loadOrCreate({ dir, trustDomain: 'cluster.local', logger: createLogger({ level: 'silent' }) });
    log(`making ${CSRS} CSRs (agent side, not timed)`);
    const csrs = Array.from({ length: CSRS }, (_, i) => {
      const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
      return { pem: derToPem(buildCsr(privateKey, `w${i}`), 'CERTIFICATE REQUEST'), sa: `sa-${i % 100}` };
    });
    const cpu0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    for (const c of csrs) ca.signCsr(c.pem, { uris: [`spiffe://cluster.local/ns/default/sa/${c.sa}`], ttlSeconds: 86400, usage: 'both' });
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const cpu = process.cpuUsage(cpu0);
    return { perSecond: CSRS / seconds, seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6 };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

interface Cpu {
  user: number;
  system: number;
}

/** The next IPC message from `child` that has `key`; fails if the child reports a failure or exits first. */
function next<T>(child: ChildProcess, key: string, timeoutMs = 600_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMsg = (m: Record<string, unknown>) => {
      if (m.failed) done(new Error(`child failed: ${m.failed}`));
      else if (key in m) done(undefined, m as T);
    };
    const onExit = (code: number | null) => done(new Error(`child exited (${code}) before "${key}"`));
    const timer = setTimeout(() => done(new Error(`no "${key}" from the child within ${timeoutMs} ms`)), timeoutMs);
    function done(e?: Error, v?: T) {
      clearTimeout(timer);
      child.off('message', onMsg);
      child.off('exit', onExit);
      if (e) reject(e);
      else resolve(v as T);
    }
    child.on('message', onMsg);
    child.on('exit', onExit);
  });
}

function forkChild(file: string, args: string[], extraExecArgv: string[] = []): ChildProcess {
  return fork(join(import.meta.dirname, file), args, {
    execArgv: ['--import', 'tsx', ...extraExecArgv],
    env: Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('VMESH_'))),
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
}

const cpuOf = async (controller: ChildProcess): Promise<Cpu> => {
  const m = next<{ cpu: Cpu }>(controller, 'cpu');
  controller.send({ cpu: true });
  return (await m).cpu;
};

async function endToEnd() {
  const prof = opt['cpu-prof'] ? ['--cpu-prof', '--cpu-prof-dir', opt['cpu-prof']] : [];
  const controller = forkChild(
    'controller-child.ts',
    ['--hosts', String(HOSTS), '--sign-rate', String(opt['sign-rate']), '--sign-burst', String(opt['sign-burst'])],
    prof,
  );
  const client = forkChild('client-child.ts', []);
  try {
    const clientUp = next(client, 'up');
    const ready = await next<{ grpcAddress: string; hosts: Setup['hosts'] }>(controller, 'ready');
    await clientUp;
    const setup: Setup = {
      grpcAddress: ready.grpcAddress,
      hosts: ready.hosts,
      workloadsPerHost: WORKLOADS_PER_HOST,
      rpcs: RPCS,
      warmup: Number(opt.warmup),
      inflight: INFLIGHT,
    };
    log(`client: joining as ${HOSTS} hosts, making ${RPCS + setup.warmup} keys and CSRs (not timed with signing)`);
    const prepared = next<{ prepared: { keygen: { count: number; seconds: number; perSecond: number } } }>(client, 'prepared');
    client.send({ start: setup });
    const { keygen } = (await prepared).prepared;
    log(`${setup.warmup} warm-up calls, then ${RPCS} SignWorkload calls, ${INFLIGHT} in flight on ${HOSTS} channels`);
    const warmed = next(client, 'warmedUp');
    client.send({ go: true });
    await warmed;
    const cpu0 = await cpuOf(controller);
    const done = next<{ done: { lat: number[]; seconds: number; errors: Record<string, number>; cpuSeconds: number } }>(client, 'done');
    client.send({ window: true });
    const r = (await done).done;
    const cpu1 = await cpuOf(controller);
    const failed = Object.values(r.errors).reduce((a, b) => a + b, 0);
    const lat = r.lat.sort((a, b) => a - b);
    const q = (p: number) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] ?? 0;
    const cpuSeconds = (cpu1.user - cpu0.user + cpu1.system - cpu0.system) / 1e6;
    return {
      perSecond: (RPCS - failed) / r.seconds,
      seconds: r.seconds,
      p50Ms: q(0.5),
      p99Ms: q(0.99),
      failed,
      errors: r.errors,
      controllerCpuSeconds: cpuSeconds,
      controllerCpuUsPerSigning: (cpuSeconds / Math.max(1, RPCS - failed)) * 1e6,
      controllerCpuCores: cpuSeconds / r.seconds,
      clientCpuUsPerSigning: (r.cpuSeconds / Math.max(1, RPCS - failed)) * 1e6,
      loadAverage: loadavg()[0],
      keygen,
    };
  } finally {
    const exited = new Promise((r) => (controller.exitCode === null ? controller.once('exit', r) : r(null)));
    controller.send({ stop: true });
    client.kill();
    await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000))]);
    if (controller.exitCode === null) controller.kill('SIGKILL');
  }
}

const startedAt = new Date();
const c = opt['skip-core'] ? undefined : await core();
const e = opt['skip-e2e'] ? undefined : await endToEnd();
const r1 = (n: number) => Math.round(n * 10) / 10;
const rows = [
  ...(c
    ? [
        [
          'CA core (verify CSR + sign SVID), one core',
          `${Math.round(c.perSecond)}/s`,
          `${r1((c.cpuSeconds / CSRS) * 1e6)} us CPU each`,
          '-',
        ],
      ]
    : []),
  ...(e
    ? [
        [
          `SignWorkload over mTLS gRPC, client in another process, ${HOSTS} hosts, ${INFLIGHT} in flight`,
          `${Math.round(e.perSecond)}/s`,
          `p50 ${r1(e.p50Ms)} ms, p99 ${r1(e.p99Ms)} ms; CPU each: controller ${Math.round(e.controllerCpuUsPerSigning)} us (${r1(e.controllerCpuCores)} cores), client ${Math.round(e.clientCpuUsPerSigning)} us`,
          String(e.failed),
        ],
        ['agent side: EC P-256 key + CSR (not in the window above)', `${Math.round(e.keygen.perSecond)}/s`, '-', '-'],
      ]
    : []),
];
const head = ['path', 'rate', 'cost', 'failed'];
const widths = [0, 1, 2, 3].map((i) => Math.max(...[head, ...rows].map((r) => String(r[i]).length)));
for (const r of [head, ...rows]) console.log(r.map((x, i) => String(x).padEnd(widths[i] ?? 0)).join('  '));
if (e && e.failed > 0) console.log(`failures: ${JSON.stringify(e.errors)}`);
if (c)
  console.log(`target: >= 500 CSRs/s on one core (Consul's default limit is 50/s); core ${c.perSecond >= 500 ? 'meets' : 'misses'} it`);
if (e)
  console.log(
    `target: >= 1000 SignWorkload/s end to end; ${e.perSecond >= 1000 ? 'meets' : 'misses'} it (1-minute load average at the end: ${r1(e.loadAverage)} on ${cpus().length} CPUs)`,
  );
const dir = join(import.meta.dirname, '..', 'results');
mkdirSync(dir, { recursive: true });
const file = join(dir, `ca-${startedAt.toISOString().replace(/[:.]/g, '-')}.json`);
writeFileSync(
  file,
  JSON.stringify(
    {
      benchmark: 'ca',
      startedAt,
      finishedAt: new Date(),
      machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model },
      options: {
        csrs: CSRS,
        rpcs: RPCS,
        warmup: Number(opt.warmup),
        inflight: INFLIGHT,
        hosts: HOSTS,
        signRate: opt['sign-rate'],
        signBurst: opt['sign-burst'],
      },
      core: c,
      endToEnd: e,
    },
    null,
    2,
  ),
);
log(`wrote ${file}`);
