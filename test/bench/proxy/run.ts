/**
 * Data-plane benchmark (a measurement, not a test): in one lab, interleaved rounds over four paths from the same
 * client host to the same Node upstream (1 KiB answers): direct, an HAProxy pair in plaintext, an HAProxy pair with
 * mutual TLS 1.3, and the vmesh pair (agents with their proxies and capture on both hosts; PLAINTEXT between the
 * proxies until workload certificates are served). Prints a table; writes test/bench/results/proxy-<timestamp>.json.
 *
 *   npm run bench:proxy                                      3 rounds of 10 s runs (about 6 minutes)
 *   npm run bench:proxy -- --rounds 1 --seconds 3 --bulk-mib 128   a smoke run
 *   npm run bench:proxy -- --profile                         also --cpu-prof both agents and list the top costs
 *   npm run bench:proxy -- --paths vmesh,haproxy-plain       only these paths (of direct, haproxy-plain, haproxy-mtls, vmesh)
 *   npm run bench:proxy -- --loads h2,h1                     only these loads (of wrk, hey, bulk, h2, h1, grpc)
 *   npm run bench:proxy -- --vmesh-root /tmp/vmesh-before    run the controller and agents from another checkout (A/B)
 *   npm run bench:proxy -- --agent-node-args '--max-semi-space-size=16'   node flags for both agents and their workers
 */
import { mkdtempSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createLogger } from '../../../src/lib/logger.js';
import { requireLabTools } from '../../lab/lab.js';
import { cpuSeconds, cpuTimes, type H2loadResult, rssMb, runBulk, runGrpc, runH2load, runHey, runWrk } from './measure.js';
import { summarizeProfiles } from './profile.js';
import { formatH2Table, formatTable, LABELS, type ProxySample, type RoundSample, ratios, summarize, writeResult } from './report.js';
import { type BenchLab, type BenchPath, setupBenchLab, VMESH_PROXY_WORKERS } from './setup.js';

const RESULTS_DIR = join(import.meta.dirname, '..', 'results');
const { values: opt } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '10' },
    'bulk-mib': { type: 'string', default: '1024' },
    'max-minutes': { type: 'string', default: '12' },
    profile: { type: 'boolean', default: false },
    paths: { type: 'string', default: 'direct,haproxy-plain,haproxy-mtls,vmesh' },
    loads: { type: 'string', default: 'wrk,hey,bulk,h2,h1,grpc' },
    'vmesh-root': { type: 'string' },
    'agent-node-args': { type: 'string', default: '' },
  },
});
const ROUNDS = Number(opt.rounds);
const SECONDS = Number(opt.seconds);
const BULK_MIB = Number(opt['bulk-mib']);
const PATHS = new Set((opt.paths ?? '').split(',').filter(Boolean));
const LOADS = new Set((opt.loads ?? '').split(',').filter(Boolean));
const SKIPPED = { error: 'skipped' };
const log = (msg: string) => process.stderr.write(`[bench:proxy ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function sysShare(a: { user: number; sys: number } | undefined, b: { user: number; sys: number } | undefined): number {
  if (!a || !b) return Number.NaN;
  const sys = b.sys - a.sys;
  const all = sys + b.user - a.user;
  return all > 0 ? sys / all : Number.NaN;
}

async function attempt<T>(f: () => Promise<T>): Promise<T | { error: string }> {
  try {
    return await f();
  } catch (e) {
    return { error: (e as Error).message };
  }
}

async function measurePath(bench: BenchLab, path: BenchPath, round: number): Promise<RoundSample> {
  const cpu = () => path.proxies.map((p) => cpuSeconds(p.pid));
  const t0 = path.proxies.map((p) => cpuTimes(p.pid));
  const c0 = cpu();
  const wrk = LOADS.has('wrk') ? await runWrk(bench.client, path.httpUrl, SECONDS) : { rps: Number.NaN, requests: 0, errors: 0 };
  const c1 = cpu();
  const t1 = path.proxies.map((p) => cpuTimes(p.pid));
  const rss = path.proxies.map((p) => rssMb(p.pid));
  await sleep(500);
  const c1b = cpu();
  const hey = LOADS.has('hey')
    ? await runHey(bench.client, path.httpUrl, SECONDS)
    : { rps: Number.NaN, requests: 0, p50Ms: Number.NaN, p90Ms: Number.NaN, p99Ms: Number.NaN, errors: 0 };
  const c2 = cpu();
  const bulk = LOADS.has('bulk') ? await attempt(() => runBulk(bench.client, path.tcp, BULK_MIB, 60_000)) : SKIPPED;
  const c3 = cpu();
  await sleep(500);
  // HTTP/2 and HTTP/1.1 with the same client (h2load) and the same 100 requests in flight: 10 connections of 10
  // streams, against 100 keep-alive connections.
  const h2 = LOADS.has('h2') ? await attempt(() => runH2load(bench.client, path.h2Url, SECONDS, { conns: 10, streams: 10 })) : SKIPPED;
  const c4 = cpu();
  await sleep(500);
  const c4b = cpu();
  const h1 = LOADS.has('h1')
    ? await attempt(() => runH2load(bench.client, path.httpUrl, SECONDS, { conns: 100, streams: 1, h1: true }))
    : SKIPPED;
  const c5 = cpu();
  await sleep(500);
  const c5b = cpu();
  const grpc = LOADS.has('grpc')
    ? await attempt(() => runGrpc(bench.client, path.grpcTarget, SECONDS, { conns: 10, streams: 10 }))
    : SKIPPED;
  const c6 = cpu();
  const per1k = (a: number[], b: number[], i: number, r: H2loadResult | { error: string }) =>
    'rps' in r ? (((b[i] ?? 0) - (a[i] ?? 0)) / r.requests) * 1000 : Number.NaN;
  const proxies: ProxySample[] = path.proxies.map((p, i) => ({
    name: p.name,
    host: p.host,
    cpuPer1kMax: (((c1[i] ?? 0) - (c0[i] ?? 0)) / wrk.requests) * 1000,
    sysShareMax: sysShare(t0[i], t1[i]),
    cpuPer1kFixed: (((c2[i] ?? 0) - (c1b[i] ?? 0)) / hey.requests) * 1000,
    cpuPerGb: 'bytes' in bulk ? ((c3[i] ?? 0) - (c2[i] ?? 0)) / (bulk.bytes / 1e9) : Number.NaN,
    rssMb: rss[i] ?? Number.NaN,
    cpuPer1kH2: per1k(c3, c4, i, h2),
    cpuPer1kH1load: per1k(c4b, c5, i, h1),
    cpuPer1kGrpc: per1k(c5b, c6, i, grpc),
  }));
  const b = 'mbps' in bulk ? `${bulk.mbps.toFixed(0)} MB/s` : bulk.error;
  const l = (r: H2loadResult | { error: string }) => ('rps' in r ? `${r.rps.toFixed(0)} rps` : r.error);
  const us = proxies.map((p) => `${(p.cpuPer1kMax * 1000).toFixed(1)} µs/req (${(p.sysShareMax * 100).toFixed(0)}% sys)`).join(' + ');
  log(
    `round ${round} ${path.name}: ${wrk.rps.toFixed(0)} rps, p50 ${hey.p50Ms.toFixed(2)} ms p99 ${hey.p99Ms.toFixed(2)} ms, bulk ${b}, h2 ${l(h2)}, h1 ${l(h1)}, grpc ${l(grpc)}` +
      (us ? `, ${us}` : ''),
  );
  return { round, path: path.name, wrk, hey, bulk, h2, h1load: h1, grpc, proxies };
}

async function main(): Promise<void> {
  requireLabTools(['ip', 'nft', 'setpriv', 'haproxy', 'wrk', 'hey', 'h2load', 'curl']);
  const startedAt = new Date();
  const profileDir = opt.profile ? mkdtempSync(join(tmpdir(), 'vmesh-bench-prof-')) : undefined;
  const logger = createLogger({ level: 'warn', component: 'bench' });
  // A hung run must still end and tear the lab down.
  const deadline = setTimeout(() => {
    log(`run exceeded --max-minutes ${opt['max-minutes']}: aborting`);
    void (bench?.cleanup() ?? Promise.resolve()).finally(() => process.exit(2));
  }, Number(opt['max-minutes']) * 60_000);
  deadline.unref();
  let bench: BenchLab | undefined;
  const rounds: RoundSample[] = [];
  const notes: string[] = [];
  let profiles: ReturnType<typeof summarizeProfiles> = [];
  try {
    bench = await setupBenchLab({
      logger,
      log,
      ...(profileDir ? { profileDir } : {}),
      ...(opt['vmesh-root'] ? { vmeshRoot: opt['vmesh-root'] } : {}),
      agentNodeArgs: (opt['agent-node-args'] ?? '').split(' ').filter(Boolean),
    });
    log(
      `lab ready (${bench.paths.map((p) => p.name).join(', ')}); ${ROUNDS} rounds of wrk ${SECONDS}s + hey ${SECONDS}s + ${BULK_MIB} MiB`,
    );
    for (let r = 1; r <= ROUNDS; r++) {
      // Rotate the order each round so no path always runs first (warm caches) or last.
      const chosen = bench.paths.filter((p) => PATHS.has(p.name));
      const order = chosen.map((_, i) => chosen[(i + r - 1) % chosen.length] as BenchPath);
      for (const path of order) {
        rounds.push(await measurePath(bench, path, r));
        await sleep(1000);
      }
    }
    if (profileDir) {
      // --cpu-prof writes on a clean exit: stop the agents ourselves, with time to drain, before the lab kills them.
      for (const a of bench.agents) process.kill(a.pid, 'SIGTERM');
      await Promise.race([Promise.all(bench.agents.map((a) => a.exited)), sleep(15_000)]);
      profiles = [...summarizeProfiles(join(profileDir, 'h2')), ...summarizeProfiles(join(profileDir, 'h3'))];
    }
  } catch (e) {
    notes.push(`run failed: ${(e as Error).message}`);
    log(`FAILED: ${(e as Error).stack ?? e}`);
    process.exitCode = 1;
  } finally {
    await bench?.cleanup();
    clearTimeout(deadline);
  }
  const summaries = (['direct', 'haproxy-plain', 'haproxy-mtls', 'vmesh'] as const)
    .filter((p) => rounds.some((r) => r.path === p))
    .map((p) => summarize(p, rounds));
  notes.push(
    'vmesh pair runs mesh mTLS between the proxies (workload certificates); haproxy-mtls is mutual TLS 1.3, ECDSA P-256.',
    profileDir
      ? 'profiled run: the proxy runs inside each agent (--proxy-workers 0; workers do not inherit --cpu-prof); haproxy ' +
          `nbthread = ${VMESH_PROXY_WORKERS}.`
      : `haproxy nbthread = vmesh proxy workers = ${VMESH_PROXY_WORKERS}; vmesh CPU and RSS are each host's agent plus its ` +
          'proxy workers (xDS, DNS proxy and health reports included).',
    'CPU s/1k req: CPU seconds of each proxy process per 1000 requests, during the wrk run (max) and the hey run (@1000rps).',
    'HTTP/2: h2load -c10 -m10 (h2c prior knowledge from the client; h2 over mTLS between the pair, h2c to the upstream); ' +
      'HTTP/1.1 (h2load): h2load --h1 -c100, the same 100 requests in flight. gRPC unary: h2load POSTing bench.Echo/Get as ' +
      'gRPC (-c10 -m10, 16 B message, 1 KiB answer checked by size) to a grpc-js server; HAProxy routes it by ' +
      'content-type to the gRPC upstream.',
    'All processes share this machine’s cores: numbers are relative costs, not capacities.',
  );
  const ratio = ratios(summaries);
  const table = `${formatTable(summaries)}\n\n${formatH2Table(summaries)}`;
  process.stdout.write(`\n${table}\n\nratios: ${JSON.stringify(ratio)}\n`);
  for (const n of notes) process.stdout.write(`note: ${n}\n`);
  for (const p of profiles) {
    process.stdout.write(`\nprofile ${p.file} (${p.seconds.toFixed(0)} s, ${p.busySamples} busy samples), top self time (% of busy):\n`);
    for (const c of p.topFunctions) process.stdout.write(`  ${c.percent.toFixed(1).padStart(5)}%  ${c.name}\n`);
    process.stdout.write('  by file:\n');
    for (const c of p.topFiles.slice(0, 12)) process.stdout.write(`  ${c.percent.toFixed(1).padStart(5)}%  ${c.name}\n`);
  }
  const file = writeResult(
    RESULTS_DIR,
    {
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model, memoryGb: Math.round(totalmem() / 1e9), node: process.version },
      options: { rounds: ROUNDS, seconds: SECONDS, bulkMiB: BULK_MIB, profile: Boolean(profileDir) },
      labels: LABELS,
      summaries,
      ratios: ratio,
      table,
      rounds,
      notes,
      profiles,
    },
    startedAt,
  );
  process.stdout.write(`\nwrote ${file}\n`);
}

await main();
