import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ErrorCode, vmeshError } from '../../../src/lib/errors.js';

export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const CLI_MAIN = join(REPO_ROOT, 'src', 'cli', 'main.ts');
const STOP_TIMEOUT_MS = 20_000;
const STDERR_TAIL = 8192;

/** One reading of a process from /proc: resident memory now and at its peak, and CPU used so far. */
export interface ProcSample {
  /** ms since the epoch */
  readonly t: number;
  readonly rssBytes: number;
  /** VmHWM: the peak resident set size since the process started. */
  readonly hwmBytes: number;
  /** utime + stime */
  readonly cpuSeconds: number;
}

let clockTicks: number | undefined;

function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

function statusKb(status: string, field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
  return m ? Number(m[1]) : 0;
}

/** Reads /proc/<pid>/status and /proc/<pid>/stat; undefined once the process is gone. */
export function readProc(pid: number): ProcSample | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which may itself hold spaces and parentheses: state is field 3.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(rest[11]) + Number(rest[12]);
    return {
      t: Date.now(),
      rssBytes: statusKb(status, 'VmRSS') * 1024,
      hwmBytes: statusKb(status, 'VmHWM') * 1024,
      cpuSeconds: ticks / ticksPerSecond(),
    };
  } catch {
    return undefined;
  }
}

/** Samples a process at a fixed interval, keeping every sample so phases can be cut out afterwards. */
export class ProcSampler {
  readonly samples: ProcSample[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly pid: number,
    private readonly intervalMs = 250,
  ) {}

  start(): void {
    this.sample();
    this.timer ??= setInterval(() => this.sample(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Takes a sample now (phase boundaries want an exact reading). */
  sample(): ProcSample | undefined {
    const s = readProc(this.pid);
    if (s) this.samples.push(s);
    return s;
  }

  /**
   * Resolves once the process used less than `maxBusy` of a core over the last `windowMs` (true), or at
   * `deadline` (false): a change starts, and its CPU is counted, only from and to a quiet controller.
   */
  async waitIdle(opts: { windowMs: number; maxBusy: number; deadline: number }): Promise<boolean> {
    const step = 100;
    const recent: ProcSample[] = [];
    for (;;) {
      const s = readProc(this.pid);
      if (!s) return false;
      recent.push(s);
      while (recent.length > 1 && (recent[0]?.t ?? 0) < s.t - opts.windowMs) recent.shift();
      const first = recent[0];
      if (first && s.t - first.t >= opts.windowMs - step && s.cpuSeconds - first.cpuSeconds <= (opts.maxBusy * (s.t - first.t)) / 1000) {
        return true;
      }
      if (Date.now() >= opts.deadline) return false;
      await new Promise((r) => setTimeout(r, step));
    }
  }

  /** The highest RSS sampled in [from, to]. */
  maxRss(from: number, to: number): number {
    let max = 0;
    for (const s of this.samples) if (s.t >= from && s.t <= to && s.rssBytes > max) max = s.rssBytes;
    return max;
  }
}

export interface ControllerProcess {
  readonly pid: number;
  readonly grpcPort: number;
  readonly apiPort: number;
  readonly child: ChildProcess;
  stderrTail(): string;
  /** SIGTERM, then SIGKILL after a timeout; a graceful exit lets --cpu-prof write its profile. */
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** `vmesh controller` as a subprocess on loopback with ports chosen by the kernel; resolves after its ready line. */
export async function startControllerProcess(opts: {
  dataDir: string;
  cpuProfDir?: string;
  nodeArgs?: readonly string[];
  /** Extra controller flags (e.g. --store consul --consul URL). */
  args?: readonly string[];
  timeoutMs: number;
}): Promise<ControllerProcess> {
  const nodeArgs = ['--import', 'tsx', ...(opts.nodeArgs ?? [])];
  if (opts.cpuProfDir) nodeArgs.push('--cpu-prof', '--cpu-prof-dir', opts.cpuProfDir);
  const args = ['controller', '--data-dir', opts.dataDir, '--listen', '127.0.0.1', '--grpc-port', '0', '--api-port', '0'];
  args.push('--log-level', 'warn', ...(opts.args ?? []));
  // Settings come from the flags alone: VMESH_* variables of the caller's shell must not change what is measured.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('VMESH_')));
  const child = spawn(process.execPath, [...nodeArgs, CLI_MAIN, ...args], { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (d: string) => {
    stderr = (stderr + d).slice(-STDERR_TAIL);
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const ready = await new Promise<{ grpcPort: number; apiPort: number }>((resolve, reject) => {
    let stdout = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(vmeshError(ErrorCode.Unavailable, `controller printed no ready line within ${opts.timeoutMs} ms: ${stderr.slice(-300)}`));
    }, opts.timeoutMs);
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      const nl = stdout.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      try {
        const line = JSON.parse(stdout.slice(0, nl)) as { ready?: boolean; grpcPort?: number; apiPort?: number };
        if (line.ready === true && typeof line.grpcPort === 'number' && typeof line.apiPort === 'number') {
          resolve({ grpcPort: line.grpcPort, apiPort: line.apiPort });
          return;
        }
      } catch {
        // reported below
      }
      child.kill('SIGKILL');
      reject(vmeshError(ErrorCode.Internal, `controller's first stdout line is not its ready line: ${stdout.slice(0, nl)}`));
    });
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(vmeshError(ErrorCode.Unavailable, `controller exited (code ${code}, signal ${signal}) before ready: ${stderr.slice(-300)}`));
    });
  });
  const pid = child.pid;
  if (pid === undefined) throw vmeshError(ErrorCode.Internal, 'controller subprocess has no pid');
  let result: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  return {
    pid,
    child,
    ...ready,
    stderrTail: () => stderr,
    async stop() {
      if (result) return result;
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
      result = await exited;
      clearTimeout(killer);
      return result;
    },
  };
}
