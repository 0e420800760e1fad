// Medians over the rounds, the printed table and the JSON file.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BulkResult, H2loadResult, HeyResult, WrkResult } from './measure.js';
import type { BenchPath } from './setup.js';

export interface ProxySample {
  readonly name: string;
  readonly host: 'client' | 'server';
  /** CPU seconds per 1000 requests, at max throughput (wrk) and at the fixed rate (hey). */
  readonly cpuPer1kMax: number;
  readonly cpuPer1kFixed: number;
  /** Kernel share (stime) of that CPU during the wrk run, 0..1. */
  readonly sysShareMax: number;
  /** CPU seconds per GB of bulk TCP. */
  readonly cpuPerGb: number;
  readonly rssMb: number;
  /** CPU seconds per 1000 requests under h2load over HTTP/2 and over HTTP/1.1. */
  readonly cpuPer1kH2: number;
  readonly cpuPer1kH1load: number;
  readonly cpuPer1kGrpc: number;
}
export interface RoundSample {
  readonly round: number;
  readonly path: BenchPath['name'];
  readonly wrk: WrkResult;
  readonly hey: HeyResult;
  readonly bulk: BulkResult | { error: string };
  readonly h2: H2loadResult | { error: string };
  readonly h1load: H2loadResult | { error: string };
  readonly grpc: H2loadResult | { error: string };
  readonly proxies: readonly ProxySample[];
}
export interface PathSummary {
  readonly path: BenchPath['name'];
  readonly rps: number;
  readonly rpsRange: readonly [number, number];
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly heyRps: number;
  readonly errors: number;
  readonly bulkMBps: number | null;
  readonly cpuPer1kMax: { client: number | null; server: number | null };
  readonly cpuPer1kFixed: { client: number | null; server: number | null };
  readonly sysShareMax: { client: number | null; server: number | null };
  readonly cpuPerGb: { client: number | null; server: number | null };
  readonly rssMb: { client: number | null; server: number | null };
  readonly h2Rps: number;
  readonly h2RpsRange: readonly [number, number];
  readonly h1loadRps: number;
  readonly h2Errors: number;
  readonly cpuPer1kH2: { client: number | null; server: number | null };
  readonly cpuPer1kH1load: { client: number | null; server: number | null };
  readonly grpcRps: number;
  readonly cpuPer1kGrpc: { client: number | null; server: number | null };
}

export function median(values: readonly number[]): number {
  const s = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

export function summarize(path: BenchPath['name'], rounds: readonly RoundSample[]): PathSummary {
  const mine = rounds.filter((r) => r.path === path);
  const side = (h: 'client' | 'server', f: (p: ProxySample) => number) => {
    const v = mine.flatMap((r) => r.proxies.filter((p) => p.host === h).map(f));
    return v.length ? median(v) : null;
  };
  const bulk = mine.flatMap((r) => ('mbps' in r.bulk ? [r.bulk.mbps] : []));
  const rps = mine.map((r) => r.wrk.rps);
  const h2 = mine.flatMap((r) => ('rps' in r.h2 ? [r.h2.rps] : []));
  const h1 = mine.flatMap((r) => ('rps' in r.h1load ? [r.h1load.rps] : []));
  const grpc = mine.flatMap((r) => ('rps' in r.grpc ? [r.grpc.rps] : []));
  const failed = (r: H2loadResult | { error: string }) => ('rps' in r ? r.errors : r.error === 'skipped' ? 0 : 1);
  return {
    path,
    rps: median(rps),
    rpsRange: [Math.min(...rps), Math.max(...rps)],
    p50Ms: median(mine.map((r) => r.hey.p50Ms)),
    p90Ms: median(mine.map((r) => r.hey.p90Ms)),
    p99Ms: median(mine.map((r) => r.hey.p99Ms)),
    heyRps: median(mine.map((r) => r.hey.rps)),
    errors: mine.reduce((a, r) => a + r.wrk.errors + r.hey.errors, 0),
    bulkMBps: bulk.length ? median(bulk) : null,
    cpuPer1kMax: { client: side('client', (p) => p.cpuPer1kMax), server: side('server', (p) => p.cpuPer1kMax) },
    cpuPer1kFixed: { client: side('client', (p) => p.cpuPer1kFixed), server: side('server', (p) => p.cpuPer1kFixed) },
    sysShareMax: { client: side('client', (p) => p.sysShareMax), server: side('server', (p) => p.sysShareMax) },
    cpuPerGb: { client: side('client', (p) => p.cpuPerGb), server: side('server', (p) => p.cpuPerGb) },
    rssMb: { client: side('client', (p) => p.rssMb), server: side('server', (p) => p.rssMb) },
    h2Rps: median(h2),
    h2RpsRange: [Math.min(...h2), Math.max(...h2)],
    h1loadRps: median(h1),
    h2Errors: mine.reduce((a, r) => a + failed(r.h2) + failed(r.h1load) + failed(r.grpc), 0),
    cpuPer1kH2: { client: side('client', (p) => p.cpuPer1kH2), server: side('server', (p) => p.cpuPer1kH2) },
    cpuPer1kH1load: { client: side('client', (p) => p.cpuPer1kH1load), server: side('server', (p) => p.cpuPer1kH1load) },
    grpcRps: median(grpc),
    cpuPer1kGrpc: { client: side('client', (p) => p.cpuPer1kGrpc), server: side('server', (p) => p.cpuPer1kGrpc) },
  };
}

const f = (v: number | null, d = 1): string => (v === null || !Number.isFinite(v) ? '–' : v.toFixed(d));
const pair = (o: { client: number | null; server: number | null }, d: number): string =>
  o.client === null ? '–' : `${f(o.client, d)} / ${f(o.server, d)}`;

export const LABELS: Record<BenchPath['name'], string> = {
  direct: 'direct',
  'haproxy-plain': 'HAProxy pair, plaintext',
  'haproxy-mtls': 'HAProxy pair, mTLS 1.3 P-256',
  vmesh: 'vmesh pair, mesh mTLS',
};

export function formatTable(summaries: readonly PathSummary[]): string {
  const direct = summaries.find((s) => s.path === 'direct');
  const head = [
    'path',
    'rps (min–max)',
    'x direct',
    'p50/p90/p99 ms @1000rps',
    'CPU s/1k req client/server (max)',
    'CPU s/1k req (@1000rps)',
    'RSS MB client/server',
    'TCP MB/s',
    'CPU s/GB',
    'errors',
  ];
  const rows = summaries.map((s) => [
    LABELS[s.path],
    `${(s.rps / 1000).toFixed(1)}k (${(s.rpsRange[0] / 1000).toFixed(1)}–${(s.rpsRange[1] / 1000).toFixed(1)}k)`,
    direct ? (s.rps / direct.rps).toFixed(2) : '–',
    `${f(s.p50Ms)} / ${f(s.p90Ms)} / ${f(s.p99Ms)}`,
    pair(s.cpuPer1kMax, 3),
    pair(s.cpuPer1kFixed, 3),
    pair(s.rssMb, 0),
    f(s.bulkMBps, 0),
    pair(s.cpuPerGb, 2),
    String(s.errors),
  ]);
  return tableOf(head, rows);
}

/** HTTP/2 against HTTP/1.1 with the same client and the same 100 requests in flight, and gRPC unary. */
export function formatH2Table(summaries: readonly PathSummary[]): string {
  const direct = summaries.find((s) => s.path === 'direct');
  const head = [
    'path (h2load)',
    'HTTP/2 rps -c10 -m10 (min–max)',
    'x direct',
    'HTTP/1.1 rps --h1 -c100',
    'h2 / h1',
    'CPU s/1k req client/server h2',
    'same, h1',
    'gRPC unary rps',
    'x direct',
    'CPU s/1k gRPC',
    'errors',
  ];
  const k = (v: number) => (Number.isFinite(v) ? `${(v / 1000).toFixed(1)}k` : '–');
  const rows = summaries.map((s) => [
    LABELS[s.path],
    `${k(s.h2Rps)} (${k(s.h2RpsRange[0])}–${k(s.h2RpsRange[1])})`,
    direct ? f(s.h2Rps / direct.h2Rps, 2) : '–',
    k(s.h1loadRps),
    f(s.h2Rps / s.h1loadRps, 2),
    pair(s.cpuPer1kH2, 3),
    pair(s.cpuPer1kH1load, 3),
    k(s.grpcRps),
    direct ? f(s.grpcRps / direct.grpcRps, 2) : '–',
    pair(s.cpuPer1kGrpc, 3),
    String(s.h2Errors),
  ]);
  return tableOf(head, rows);
}

function tableOf(head: string[], rows: string[][]): string {
  const all = [head, ...rows];
  const w = head.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(w[i] ?? 0)).join(' | ')} |`;
  return [line(head), `| ${w.map((n) => '-'.repeat(n)).join(' | ')} |`, ...rows.map(line)].join('\n');
}

export function ratios(summaries: readonly PathSummary[]): Record<string, number> {
  const by = Object.fromEntries(summaries.map((s) => [s.path, s])) as Partial<Record<BenchPath['name'], PathSummary>>;
  const r = (a?: number | null, b?: number | null) => (a && b ? Number((a / b).toFixed(3)) : Number.NaN);
  const cpu = (s?: PathSummary) => (s?.cpuPer1kMax.client ?? 0) + (s?.cpuPer1kMax.server ?? 0);
  return {
    rpsVmeshOverHaproxyPlain: r(by.vmesh?.rps, by['haproxy-plain']?.rps),
    rpsVmeshOverHaproxyMtls: r(by.vmesh?.rps, by['haproxy-mtls']?.rps),
    rpsVmeshOverDirect: r(by.vmesh?.rps, by.direct?.rps),
    rpsHaproxyPlainOverDirect: r(by['haproxy-plain']?.rps, by.direct?.rps),
    rpsHaproxyMtlsOverDirect: r(by['haproxy-mtls']?.rps, by.direct?.rps),
    cpuPerRequestVmeshOverHaproxyPlain: r(cpu(by.vmesh), cpu(by['haproxy-plain'])),
    cpuPerRequestVmeshOverHaproxyMtls: r(cpu(by.vmesh), cpu(by['haproxy-mtls'])),
    bulkVmeshOverHaproxyPlain: r(by.vmesh?.bulkMBps, by['haproxy-plain']?.bulkMBps),
    bulkVmeshOverHaproxyMtls: r(by.vmesh?.bulkMBps, by['haproxy-mtls']?.bulkMBps),
    bulkVmeshOverDirect: r(by.vmesh?.bulkMBps, by.direct?.bulkMBps),
    h2RpsVmeshOverHaproxyMtls: r(by.vmesh?.h2Rps, by['haproxy-mtls']?.h2Rps),
    h2RpsVmeshOverDirect: r(by.vmesh?.h2Rps, by.direct?.h2Rps),
    h2OverH1Vmesh: r(by.vmesh?.h2Rps, by.vmesh?.h1loadRps),
    grpcRpsVmeshOverHaproxyMtls: r(by.vmesh?.grpcRps, by['haproxy-mtls']?.grpcRps),
    h2OverH1HaproxyMtls: r(by['haproxy-mtls']?.h2Rps, by['haproxy-mtls']?.h1loadRps),
    p50VmeshOverHaproxyPlain: r(by.vmesh?.p50Ms, by['haproxy-plain']?.p50Ms),
  };
}

export function writeResult(dir: string, result: unknown, startedAt: Date, prefix = 'proxy'): string {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${prefix}-${startedAt.toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  return file;
}
