import { type ChildProcess, fork } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { fileURLToPath } from 'node:url';
import { ErrorCode, vmeshError } from '../../../src/lib/errors.js';
import type { AgentCreds, FromAgents, Marker, SyncReport, ToAgents, WatchResult } from './agent-protocol.js';

const AGENT_MAIN = fileURLToPath(new URL('./agent-process.ts', import.meta.url));
const STOP_TIMEOUT_MS = 10_000;

interface ProcState {
  readonly child: ChildProcess;
  readonly size: number;
  progress: { synced: number; failed: number; open: number };
  synced?: SyncReport;
  watching: number;
  done: number;
  result?: WatchResult;
}

/** The agent processes, seen as one fleet: the agents are split between them in index order. */
export class AgentFleet {
  private readonly events = new EventEmitter();
  private fatal: Error | undefined;
  private watchSeq = 0;

  private constructor(private readonly procs: ProcState[]) {
    for (const p of procs) {
      p.child.on('message', (m: FromAgents) => this.onMessage(p, m));
      p.child.once('exit', (code, signal) => {
        this.fatal ??= vmeshError(ErrorCode.Internal, `agent process ${p.child.pid} exited (code ${code}, signal ${signal})`);
        this.events.emit('change');
      });
    }
  }

  /** Agents connect to `addresses` in turn (agent i of a process to address i mod n): a fleet split between controllers. */
  static start(opts: { procs: number; addresses: readonly string[]; caPem: string; creds: AgentCreds[]; concurrency: number }): AgentFleet {
    const per = Math.ceil(opts.creds.length / opts.procs);
    const states: ProcState[] = [];
    for (let i = 0; i < opts.procs; i++) {
      const agents = opts.creds.slice(i * per, (i + 1) * per);
      if (agents.length === 0) continue;
      const child = fork(AGENT_MAIN, [], {
        execArgv: ['--import', 'tsx'],
        serialization: 'advanced',
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      });
      const cmd: ToAgents = {
        cmd: 'start',
        addresses: opts.addresses,
        caPem: opts.caPem,
        agents,
        concurrency: Math.max(1, Math.round(opts.concurrency / opts.procs)),
      };
      child.send(cmd);
      states.push({ child, size: agents.length, progress: { synced: 0, failed: 0, open: 0 }, watching: 0, done: 0 });
    }
    return new AgentFleet(states);
  }

  get pids(): number[] {
    return this.procs.flatMap((p) => (p.child.pid === undefined ? [] : [p.child.pid]));
  }

  progress(): { synced: number; failed: number; open: number } {
    return this.procs.reduce(
      (s, p) => ({ synced: s.synced + p.progress.synced, failed: s.failed + p.progress.failed, open: s.open + p.progress.open }),
      { synced: 0, failed: 0, open: 0 },
    );
  }

  private onMessage(p: ProcState, m: FromAgents): void {
    switch (m.ev) {
      case 'progress':
        p.progress = { synced: m.synced, failed: m.failed, open: m.open };
        break;
      case 'synced':
        p.synced = m.report;
        p.progress = { synced: m.report.synced, failed: m.report.failed, open: m.report.agents };
        break;
      case 'watching':
        p.watching = m.watchId;
        break;
      case 'watch-done':
        p.done = m.watchId;
        break;
      case 'watch-result':
        p.result = m.result;
        break;
      case 'fatal':
        this.fatal ??= vmeshError(ErrorCode.Internal, m.message);
        break;
    }
    this.events.emit('change');
  }

  /** Resolves true when `cond` holds, false at `deadline`; rejects if an agent process failed. */
  private until(cond: () => boolean, deadline: number): Promise<boolean> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (this.fatal) finish(() => reject(this.fatal));
        else if (cond()) finish(() => resolve(true));
      };
      const timer = setTimeout(() => finish(() => resolve(cond())), Math.max(0, deadline - Date.now()));
      const finish = (f: () => void) => {
        clearTimeout(timer);
        this.events.off('change', check);
        f();
      };
      this.events.on('change', check);
      check();
    });
  }

  /** Every agent synced or failed; the reports merged. Undefined if the deadline came first. */
  async waitSynced(deadline: number): Promise<SyncReport | undefined> {
    if (!(await this.until(() => this.procs.every((p) => p.synced), deadline))) return undefined;
    const reports = this.procs.map((p) => p.synced as SyncReport);
    const types = reports[0]?.resourcesPerType.min.length ?? 0;
    return {
      agents: reports.reduce((s, r) => s + r.agents, 0),
      synced: reports.reduce((s, r) => s + r.synced, 0),
      failed: reports.reduce((s, r) => s + r.failed, 0),
      errors: reports.flatMap((r) => r.errors),
      syncedAt: reports.flatMap((r) => r.syncedAt),
      startedAt: reports.flatMap((r) => r.startedAt),
      resourcesPerType: {
        min: Array.from({ length: types }, (_, i) => Math.min(...reports.map((r) => r.resourcesPerType.min[i] ?? 0))),
        max: Array.from({ length: types }, (_, i) => Math.max(...reports.map((r) => r.resourcesPerType.max[i] ?? 0))),
      },
      bytes: reports.reduce((s, r) => s + r.bytes, 0),
      responses: reports.reduce((s, r) => s + r.responses, 0),
    };
  }

  /** Arms a watch in every agent process; resolves once all are armed (so no response can be missed). */
  async watch(markers: Marker[], deadline: number): Promise<number> {
    const watchId = ++this.watchSeq;
    for (const p of this.procs) p.child.send({ cmd: 'watch', watchId, markers } satisfies ToAgents);
    if (!(await this.until(() => this.procs.every((p) => p.watching === watchId), deadline))) {
      throw vmeshError(ErrorCode.Unavailable, `agent processes did not arm watch ${watchId} in time`);
    }
    return watchId;
  }

  /** True when every agent saw every marker (or failed), false at the deadline. */
  waitWatch(watchId: number, deadline: number): Promise<boolean> {
    return this.until(() => this.procs.every((p) => p.done === watchId), deadline);
  }

  /** Ends the watch and merges what the processes recorded; `elu` is the busiest process's. */
  async collect(watchId: number, deadline: number): Promise<WatchResult> {
    for (const p of this.procs) {
      p.result = undefined;
      p.child.send({ cmd: 'collect', watchId } satisfies ToAgents);
    }
    if (!(await this.until(() => this.procs.every((p) => p.result?.watchId === watchId), deadline))) {
      throw vmeshError(ErrorCode.Unavailable, `agent processes did not report watch ${watchId} in time`);
    }
    const results = this.procs.map((p) => p.result as WatchResult);
    const arrivals: Record<string, number[]> = {};
    for (const r of results) for (const [t, list] of Object.entries(r.arrivals)) arrivals[t] = (arrivals[t] ?? []).concat(list);
    return {
      watchId,
      times: results.flatMap((r) => r.times),
      arrivals,
      bytes: results.reduce((s, r) => s + r.bytes, 0),
      elu: Math.max(...results.map((r) => r.elu)),
      cpuSeconds: results.reduce((s, r) => s + r.cpuSeconds, 0),
      failedStreams: results.reduce((s, r) => s + r.failedStreams, 0),
    };
  }

  /** Asks each process to close its streams and exit; kills what is left after a timeout. */
  async stop(): Promise<void> {
    await Promise.all(
      this.procs.map(async (p) => {
        const c = p.child;
        if (c.exitCode !== null || c.signalCode !== null) return;
        const exited = new Promise<void>((r) => c.once('exit', () => r()));
        if (c.connected) c.send({ cmd: 'stop' } satisfies ToAgents);
        else c.kill('SIGTERM');
        const killer = setTimeout(() => c.kill('SIGKILL'), STOP_TIMEOUT_MS);
        await exited;
        clearTimeout(killer);
      }),
    );
  }
}
