// Load generators (wrk for throughput, hey for latency at a fixed rate, a Node sender for TCP bulk) and per-process
// CPU and RSS read from /proc: the proxies run inside the lab's namespaces, but /proc is the machine's.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LabHost } from '../../lab/lab.js';

const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
/** The client tools run as an ordinary app user, as the meshed app would. */
export const APP = { uid: 1500, gid: 1500 };

export interface WrkResult {
  readonly rps: number;
  readonly requests: number;
  readonly errors: number;
}
export interface HeyResult {
  readonly rps: number;
  readonly requests: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly errors: number;
}
export interface BulkResult {
  readonly mbps: number;
  readonly bytes: number;
  readonly seconds: number;
}

export async function runWrk(host: LabHost, url: string, seconds: number): Promise<WrkResult> {
  const r = await host.exec('wrk', ['-t1', '-c50', `-d${seconds}s`, '--timeout', '5s', url], { ...APP, timeoutMs: (seconds + 20) * 1000 });
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(r.stdout);
  const total = /(\d+) requests in/.exec(r.stdout);
  if (r.code !== 0 || !rps || !total)
    throw new Error(`wrk ${url} failed (code ${r.code}${r.timedOut ? ', timed out' : ''}): ${r.stdout}${r.stderr}`);
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(r.stdout)?.[1] ?? 0);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(r.stdout);
  const sockErrors = sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0;
  return { rps: Number(rps[1]), requests: Number(total[1]), errors: non2xx + sockErrors };
}

export interface H2loadResult {
  readonly rps: number;
  readonly requests: number;
  readonly errors: number;
}

/**
 * h2load for a fixed time: HTTP/2 with prior knowledge, `conns` connections of `streams` concurrent streams each, or
 * HTTP/1.1 keep-alive with `h1` (one request in flight per connection).
 */
export async function runH2load(
  host: LabHost,
  url: string,
  seconds: number,
  opts: { conns: number; streams: number; h1?: boolean; body?: string; headers?: readonly string[] },
): Promise<H2loadResult & { dataBytes: number }> {
  const args = [
    ...(opts.h1 ? ['--h1'] : []),
    ...(opts.body ? ['-d', opts.body] : []),
    ...(opts.headers ?? []).flatMap((h) => ['-H', h]),
    '-c',
    String(opts.conns),
    '-m',
    String(opts.streams),
    '-D',
    String(seconds),
    url,
  ];
  const r = await host.exec('h2load', args, { ...APP, timeoutMs: (seconds + 20) * 1000 });
  const rps = /finished in [\d.]+m?s, ([\d.]+) req\/s/.exec(r.stdout);
  const req = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(
    r.stdout,
  );
  if (r.code !== 0 || !rps || !req)
    throw new Error(`h2load ${args.join(' ')} failed (code ${r.code}${r.timedOut ? ', timed out' : ''}): ${r.stdout}${r.stderr}`);
  const ok2xx = Number(/status codes: (\d+) 2xx/.exec(r.stdout)?.[1] ?? 0);
  const succeeded = Number(req[4]);
  const failed = Number(req[5]) + Number(req[6]) + Number(req[7]);
  const dataBytes = Number(/\((\d+)\) data/.exec(r.stdout)?.[1] ?? Number.NaN);
  return { rps: Number(rps[1]), requests: Number(req[3]), errors: failed + Math.max(0, succeeded - ok2xx), dataBytes };
}

/** A gRPC unary request for bench.Echo/Get: a 16-byte message in gRPC's length-prefixed framing. */
const GRPC_REQUEST = Buffer.concat([Buffer.from([0, 0, 0, 0, 16]), Buffer.alloc(16, 'q')]);
/** What each answer's DATA carries: the 1 KiB message and its 5-byte prefix. */
const GRPC_ANSWER_BYTES = 5 + 1024;

/**
 * gRPC unary at load: h2load POSTs bench.Echo/Get as a gRPC client would (content-type application/grpc, te:
 * trailers); a call counts only if every answer carried the whole 1 KiB message. A Node gRPC client tops out near
 * 1k calls/s on this machine, below what the paths carry; grpc-load.mjs (grpc-js) checks each path once instead.
 */
export async function runGrpc(
  host: LabHost,
  target: string,
  seconds: number,
  opts: { conns: number; streams: number },
): Promise<H2loadResult> {
  const file = join(tmpdir(), `vmesh-bench-grpc-${process.pid}.bin`);
  writeFileSync(file, GRPC_REQUEST, { mode: 0o644 });
  const r = await runH2load(host, `http://${target}/bench.Echo/Get`, seconds, {
    ...opts,
    body: file,
    headers: ['content-type: application/grpc', 'te: trailers'],
  });
  const short = r.requests - Math.floor(r.dataBytes / GRPC_ANSWER_BYTES);
  return { rps: r.rps, requests: r.requests, errors: r.errors + Math.max(0, short) };
}

/** A few real gRPC calls (grpc-js): status OK and the 1 KiB answer, or why not. */
export async function checkGrpc(host: LabHost, target: string): Promise<void> {
  const script = join(import.meta.dirname, 'grpc-load.mjs');
  const r = await host.exec(process.execPath, [script, target, '1', '1', '1'], { ...APP, timeoutMs: 30_000 });
  const out = JSON.parse(r.stdout.trim().split('\n').pop() || '{}') as { requests?: number; errors?: number; firstError?: string };
  if (r.code !== 0 || !out.requests || out.errors !== 0) {
    throw new Error(`gRPC ${target}: ${out.firstError ?? `${r.stdout}${r.stderr}`.slice(0, 500)}`);
  }
}

export async function runHey(host: LabHost, url: string, seconds: number): Promise<HeyResult> {
  const r = await host.exec('hey', ['-z', `${seconds}s`, '-q', '100', '-c', '10', '-t', '5', url], {
    ...APP,
    timeoutMs: (seconds + 20) * 1000,
  });
  const pct = (p: number) => Number(new RegExp(`\\s${p}% in ([\\d.]+) secs`).exec(r.stdout)?.[1] ?? Number.NaN) * 1000;
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(r.stdout);
  if (r.code !== 0 || !rps) throw new Error(`hey ${url} failed (code ${r.code}${r.timedOut ? ', timed out' : ''}): ${r.stdout}${r.stderr}`);
  let ok = 0;
  let other = 0;
  for (const m of r.stdout.matchAll(/\[(\d+)\]\s+(\d+) responses/g)) {
    if (m[1] === '200') ok += Number(m[2]);
    else other += Number(m[2]);
  }
  const errBlock = r.stdout.split('Error distribution:')[1] ?? '';
  const errs = [...errBlock.matchAll(/\[(\d+)\]/g)].reduce((a, m) => a + Number(m[1]), 0);
  return { rps: Number(rps[1]), requests: ok + other, p50Ms: pct(50), p90Ms: pct(90), p99Ms: pct(99), errors: other + errs };
}

export async function runBulk(host: LabHost, target: { host: string; port: number }, mib: number, timeoutMs: number): Promise<BulkResult> {
  const script = join(import.meta.dirname, 'bulk-send.mjs');
  const out = await host.execOk(process.execPath, [script, target.host, String(target.port), String(mib), String(timeoutMs)], {
    ...APP,
    timeoutMs: timeoutMs + 10_000,
  });
  const r = JSON.parse(out.trim().split('\n').pop() ?? '{}') as Partial<BulkResult> & { error?: string };
  if (r.error !== undefined || r.mbps === undefined) throw new Error(`bulk ${target.host}:${target.port}: ${r.error ?? out}`);
  if (r.bytes !== mib * 1024 * 1024)
    throw new Error(`bulk ${target.host}:${target.port}: sink got ${r.bytes} bytes of ${mib * 1024 * 1024}`);
  return { mbps: r.mbps, bytes: r.bytes, seconds: r.seconds ?? Number.NaN };
}

/** utime + stime of one process, in seconds. */
export function cpuSeconds(pid: number): number {
  const t = cpuTimes(pid);
  return t.user + t.sys;
}

/** utime and stime of one process, in seconds: how much of a proxy's CPU is the kernel's (socket calls). */
/** A process and its descendants (the agent and its proxy workers): what one host's mesh costs. */
function tree(pid: number): number[] {
  const out = [pid];
  for (let i = 0; i < out.length; i++) {
    const p = out[i] as number;
    try {
      for (const t of readdirSync(`/proc/${p}/task`)) {
        const kids = readFileSync(`/proc/${p}/task/${t}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
        out.push(...kids);
      }
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** utime and stime of a process tree, in seconds: how much of a proxy's CPU is the kernel's (socket calls). */
export function cpuTimes(pid: number): { user: number; sys: number } {
  let user = 0;
  let sys = 0;
  for (const p of tree(pid)) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      // The command name may hold spaces and parentheses: fields are counted after its closing parenthesis.
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      user += Number(f[11]) / CLK_TCK;
      sys += Number(f[12]) / CLK_TCK;
    } catch {
      // gone meanwhile
    }
  }
  return { user, sys };
}

/** Resident memory of a process tree (agent plus proxy workers), in MB. */
export function rssMb(pid: number): number {
  let kb = 0;
  for (const p of tree(pid)) {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${p}/status`, 'utf8'));
      kb += m ? Number(m[1]) : 0;
    } catch {
      // gone meanwhile
    }
  }
  return kb > 0 ? kb / 1024 : Number.NaN;
}

function comm(pid: number): string {
  return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
}

/** The real program behind a lab spawn: `ip netns exec` and `setpriv` exec in place, but follow children to be sure. */
export function programPid(pid: number, want: RegExp): number {
  let cur = pid;
  for (let i = 0; i < 5; i++) {
    if (want.test(comm(cur))) return cur;
    const kids = readFileSync(`/proc/${cur}/task/${cur}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
    if (kids.length !== 1) break;
    cur = kids[0] as number;
  }
  throw new Error(`process ${pid} (${comm(pid)}) runs no ${want}`);
}
