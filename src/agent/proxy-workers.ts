import cluster, { type Worker } from 'node:cluster';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { proxyWorkerArgs } from '../config/proxy-worker.js';
import { backoffDelay } from '../lib/backoff.js';
import type { Logger } from '../lib/logger.js';
import type { MetricsSnapshot } from '../lib/metrics-registry.js';
import type { ListeningPort } from '../proxy/listener/listener-manager.js';

/** What a worker tells the agent over the cluster channel. */
export type WorkerMessage =
  | { readonly kind: 'started'; readonly pid: number }
  | { readonly kind: 'listening'; readonly listeners: ListeningPort[]; readonly version: string }
  /** The answer to the agent's `{kind:'metrics', id}`. */
  | { readonly kind: 'metrics'; readonly id: number; readonly snapshot: MetricsSnapshot }
  /** The answer to the agent's liveness `{kind:'ping'}`, sent from the worker's event loop. */
  | { readonly kind: 'pong' };

export interface ProxyWorkersOptions {
  readonly count: number;
  readonly socketPath: string;
  /** The unprivileged user the workers run as (only when the agent runs as root). */
  readonly uid?: number;
  readonly gid?: number;
  readonly logLevel: string;
  readonly logger: Logger;
  /** A worker reported its listeners, or exited (capture follows whether any worker listens). */
  readonly onListening?: () => void;
  /** A worker silent this long after a ping is hung: it no longer serves and is killed (then restarted). */
  readonly livenessTimeoutMs?: number;
  /**
   * A worker that has not even reported `started` (its modules still loading) this long after its fork is hung
   * at birth and is killed likewise. Default: three liveness timeouts, at least 30 s.
   */
  readonly startupTimeoutMs?: number;
  /** The worker's entry file (tests substitute a fake worker). */
  readonly entry?: string;
  /** V8's young generation per semi-space, in MB (default WORKER_SEMI_SPACE_MB). */
  readonly semiSpaceMb?: number;
}

/**
 * Node's default young generation (16 MB per semi-space, 32 MB in all) is reached while a worker loads its protos
 * and is never given back, and under load all of it is resident: 2 workers x 32 MB of a host's memory. Measured
 * (test/bench/proxy/memory.ts, 1 workload, 5 s of wrk through the host's proxy): with 8 MB the host's RSS after
 * load fell from ~372 to ~321 MB, while GC time rose from ~1.2 to ~3.8 ms per 1000 requests (of ~90 ms of CPU per
 * 1000 requests); with 2 MB it fell to ~282 MB but GC took ~8 ms per 1000 requests.
 */
export const WORKER_SEMI_SPACE_MB = 8;

interface Slot {
  worker?: Worker;
  listeners: ListeningPort[];
  restarts: number;
  timer?: NodeJS.Timeout;
  forkedAt: number;
  /**
   * When the worker last showed its event loop runs: its `started` message (sent once its ping handler is in
   * place, before it fetches and compiles its first config) or its last answer to a ping.
   */
  lastPong?: number;
}

/**
 * The proxy as `count` processes (node:cluster) sharing each listening socket, one per core. The kernel spreads
 * accepted connections over them (SCHED_NONE: no hand-off through the agent). A worker that dies is started
 * again with backoff; the agent holds the sockets meanwhile, so the others keep serving.
 */
export class ProxyWorkers {
  private readonly slots: Slot[] = [];
  private stopping = false;
  private metricsId = 0;
  private liveness: NodeJS.Timeout | undefined;

  constructor(private readonly opts: ProxyWorkersOptions) {}

  start(): void {
    // Must be set before the first fork; the agent forks nothing else.
    cluster.schedulingPolicy = cluster.SCHED_NONE;
    for (let i = 0; i < this.opts.count; i++) {
      const slot: Slot = { listeners: [], restarts: 0, forkedAt: Date.now() };
      this.slots.push(slot);
      this.fork(i, slot);
    }
    const timeout = this.opts.livenessTimeoutMs ?? 10_000;
    const startup = this.opts.startupTimeoutMs ?? Math.max(3 * timeout, 30_000);
    // Five pings per timeout: a worker is judged on several missed answers, not one late one.
    this.liveness = setInterval(() => this.checkLiveness(timeout, startup), Math.max(100, Math.floor(timeout / 5)));
    this.liveness.unref();
  }

  /**
   * A dead worker is seen by its exit; a hung one (stopped, or its event loop stuck) only by its silence. Such a
   * worker may still hold accepted connections and its share of new ones, so it stops counting as serving at
   * once (capture comes off if no other worker serves: virtual IPs are then refused, not left hanging), and is
   * killed; its exit restarts it (with backoff while it never gets to serve). A worker hung at birth (stuck
   * loading, or compiling its first config) is judged the same way: from its `started` message, or from its fork
   * when it never sends one.
   */
  private checkLiveness(timeoutMs: number, startupMs: number): void {
    const now = Date.now();
    this.slots.forEach((slot, index) => {
      const w = slot.worker;
      if (this.stopping || !w || w.isDead() || !w.isConnected()) return;
      const silentMs = now - (slot.lastPong ?? slot.forkedAt);
      if (silentMs > (slot.lastPong === undefined ? startupMs : timeoutMs)) {
        this.opts.logger.error(
          { worker: index, pid: w.process.pid, silentMs },
          slot.lastPong === undefined
            ? 'proxy worker did not start (hung at birth); killing it'
            : 'proxy worker answers no liveness ping; killing it',
        );
        slot.lastPong = undefined;
        slot.listeners = [];
        this.opts.onListening?.();
        w.process.kill('SIGKILL');
        return;
      }
      w.send({ kind: 'ping' }, undefined, {}, () => {});
    });
  }

  /** Listeners every live worker reported (the union). */
  listening(): ListeningPort[] {
    const seen = new Map<string, ListeningPort>();
    for (const s of this.slots) for (const l of s.listeners) seen.set(`${l.name}:${l.port}`, l);
    return [...seen.values()];
  }

  /** Every live worker's metrics snapshot; a worker that does not answer within `timeoutMs` is left out. */
  metrics(timeoutMs = 2000): Promise<MetricsSnapshot[]> {
    const id = ++this.metricsId;
    const asks = this.slots.map((s) => {
      const w = s.worker;
      if (!w || w.isDead() || !w.isConnected()) return Promise.resolve(undefined);
      return new Promise<MetricsSnapshot | undefined>((resolve) => {
        const done = (v: MetricsSnapshot | undefined) => {
          clearTimeout(timer);
          w.off('message', onMessage);
          w.off('exit', onExit);
          resolve(v);
        };
        const onMessage = (m: WorkerMessage) => {
          if (m?.kind === 'metrics' && m.id === id) done(m.snapshot);
        };
        const onExit = () => done(undefined);
        const timer = setTimeout(() => done(undefined), timeoutMs);
        w.on('message', onMessage);
        w.once('exit', onExit);
        try {
          w.send({ kind: 'metrics', id });
        } catch {
          done(undefined);
        }
      });
    });
    return Promise.all(asks).then((xs) => xs.filter((x): x is MetricsSnapshot => x !== undefined));
  }

  /** Workers that have applied a config and serve (they reported their listeners). */
  serving(): number {
    return this.slots.filter((s) => s.listeners.length > 0 && s.worker && !s.worker.isDead()).length;
  }

  pids(): number[] {
    return this.slots.flatMap((s) => (s.worker?.process.pid !== undefined && !s.worker.isDead() ? [s.worker.process.pid] : []));
  }

  /** Asks every worker to drain and exit; kills those still there after the deadline. */
  async stop(drainMs: number): Promise<void> {
    this.stopping = true;
    if (this.liveness) clearInterval(this.liveness);
    const exits = this.slots.map((s) => {
      if (s.timer) clearTimeout(s.timer);
      const w = s.worker;
      if (!w || w.isDead()) return Promise.resolve();
      return new Promise<void>((resolve) => {
        const kill = setTimeout(() => {
          w.process.kill('SIGKILL');
          resolve();
        }, drainMs + 2000);
        w.once('exit', () => {
          clearTimeout(kill);
          resolve();
        });
        // A worker that died meanwhile fails the send asynchronously (EPIPE): end it by signal instead.
        w.send({ kind: 'drain', drainMs }, undefined, {}, (e) => {
          if (e) w.process.kill('SIGTERM');
        });
      });
    });
    await Promise.all(exits);
  }

  private fork(index: number, slot: Slot): void {
    const args = { socketPath: this.opts.socketPath, index, count: this.opts.count, logLevel: this.opts.logLevel };
    const root = process.getuid?.() === 0;
    cluster.setupPrimary({
      exec: this.opts.entry ?? workerEntry(),
      // The agent's own heap sizing is not the workers': theirs is set here, last, so it wins.
      execArgv: [
        ...process.execArgv.filter((a) => !a.startsWith('--cpu-prof') && !a.startsWith('--max-semi-space-size')),
        `--max-semi-space-size=${this.opts.semiSpaceMb ?? WORKER_SEMI_SPACE_MB}`,
      ],
      args: proxyWorkerArgs(args),
      ...(root && this.opts.uid !== undefined ? { uid: this.opts.uid } : {}),
      ...(root && this.opts.gid !== undefined ? { gid: this.opts.gid } : {}),
    });
    const worker = cluster.fork();
    slot.worker = worker;
    // IPC errors (a send racing the worker's death) must not take the agent down; 'exit' handles the rest.
    worker.on('error', (e) => this.opts.logger.warn({ worker: index, err: e.message }, 'proxy worker channel error'));
    slot.listeners = [];
    slot.lastPong = undefined;
    slot.forkedAt = Date.now();
    worker.on('message', (m: WorkerMessage) => {
      if (m?.kind === 'pong' || m?.kind === 'started') slot.lastPong = Date.now();
      else if (m?.kind === 'listening') {
        slot.listeners = m.listeners;
        slot.restarts = 0;
        this.opts.onListening?.();
      }
    });
    worker.on('exit', (code, signal) => {
      slot.listeners = [];
      if (this.stopping) return;
      this.opts.onListening?.();
      // Not reset until a worker serves again: a worker that never gets there waits longer each time.
      const attempt = slot.restarts++;
      const wait = backoffDelay(attempt, { baseMs: 200, maxMs: 10_000 });
      this.opts.logger.error(
        { worker: index, pid: worker.process.pid, code, signal, attempt, restartInMs: wait },
        'proxy worker exited; restarting',
      );
      slot.timer = setTimeout(() => this.fork(index, slot), wait);
    });
  }
}

/** The worker's entry file, beside this one (`.ts` under tsx, `.js` once built). */
function workerEntry(): string {
  const here = fileURLToPath(import.meta.url);
  return here.slice(0, -extname(here).length).replace(/proxy-workers$/, 'proxy-worker-main') + extname(here);
}
