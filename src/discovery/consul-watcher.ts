import type { BackoffOptions } from '../lib/backoff.js';
import { ConsulHttp } from '../lib/consul/consul-client.js';
import { runBlockingLoop } from '../lib/consul/consul-loop.js';
import { ErrorCode, type VmeshError, vmeshError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { type ConsulInstance, type ConsulSnapshot, parseCatalogServices, parseHealthEntries } from './consul-instance.js';

export type { ConsulInstance, ConsulSnapshot } from './consul-instance.js';
export { consulLabels, consulServiceAccount } from './consul-instance.js';

export interface ConsulWatcherOptions {
  /** e.g. http://127.0.0.1:8500 (the local Consul agent). */
  url: string;
  token?: string;
  datacenter?: string;
  /** Blocking `wait` per request, seconds; default 30, at most 600 (Consul's cap). */
  waitSeconds?: number;
  logger: Logger;
  /** Retry delays after failures; defaults base 250 ms, max 15 s. */
  backoff?: { baseMs?: number; maxMs?: number };
  /** Services never watched, e.g. `consul` itself. */
  exclude?: readonly string[];
  /** Changes within this window become one notification; default 20 ms. */
  debounceMs?: number;
}

export interface ConsulWatcherStats {
  /** Failed requests since start. */
  readonly errors: number;
  readonly lastError?: string;
  /** The first complete snapshot has been built. */
  readonly synced: boolean;
}

interface ServiceWatch {
  readonly ctrl: AbortController;
  instances?: readonly ConsulInstance[];
  key?: string;
  skipped?: string;
  index: number;
}

const DEBOUNCE_MS = 20;
const CATALOG = 'catalog';

/**
 * Follows Consul's catalog with blocking queries: one loop on /v1/catalog/services and one loop per service
 * on /v1/health/service/:name (all instances, health flagged), loops started and stopped as services come
 * and go. Listeners get a snapshot after the first complete sync and after every change, debounced so a
 * burst of changes is one call. While Consul is unreachable the last snapshot stands and one error is
 * reported per outage.
 */
export class ConsulWatcher {
  private readonly http: ConsulHttp;
  private readonly waitSeconds: number;
  private readonly backoff: BackoffOptions;
  private readonly exclude: ReadonlySet<string>;
  private readonly log: Logger;
  private readonly root = new AbortController();
  private readonly services = new Map<string, ServiceWatch>();
  private readonly loops = new Set<Promise<void>>();
  private readonly failing = new Set<string>();
  private readonly changeListeners = new Set<(s: ConsulSnapshot) => void>();
  private readonly errorListeners = new Set<(e: VmeshError) => void>();
  private state: 'new' | 'running' | 'stopped' = 'new';
  private catalogSynced = false;
  private catalogIndex = 0;
  private current: ConsulSnapshot | undefined;
  private currentKey: string | undefined;
  private flushTimer: NodeJS.Timeout | undefined;
  private errorCount = 0;
  private lastErrorMessage: string | undefined;

  private readonly debounceMs: number;

  constructor(opts: ConsulWatcherOptions) {
    const wait = opts.waitSeconds ?? 30;
    if (!Number.isFinite(wait) || wait <= 0 || wait > 600) {
      throw vmeshError(ErrorCode.InvalidConfig, `consul.waitSeconds ${wait}: want a number of seconds in (0, 600]`);
    }
    this.http = new ConsulHttp({ url: opts.url, token: opts.token, datacenter: opts.datacenter });
    this.waitSeconds = wait;
    this.backoff = { baseMs: opts.backoff?.baseMs ?? 250, maxMs: opts.backoff?.maxMs ?? 15_000 };
    this.exclude = new Set(opts.exclude ?? []);
    this.log = opts.logger;
    this.debounceMs = opts.debounceMs ?? DEBOUNCE_MS;
  }

  get stats(): ConsulWatcherStats {
    return { errors: this.errorCount, lastError: this.lastErrorMessage, synced: this.current !== undefined };
  }

  start(): void {
    if (this.state === 'running') return;
    if (this.state === 'stopped') throw vmeshError(ErrorCode.Internal, 'consul watcher: start() after stop(); create a new watcher');
    this.state = 'running';
    this.log.info({ url: this.http.url, waitSeconds: this.waitSeconds }, 'consul: watching the catalog');
    this.track(
      runBlockingLoop({
        signal: this.root.signal,
        backoff: this.backoff,
        query: (index, signal) => this.http.catalogServices({ index, waitSeconds: this.waitSeconds, signal }),
        onResult: (r) => {
          const names = parseCatalogServices(r.body).filter((n) => !this.exclude.has(n));
          this.succeeded(CATALOG);
          this.catalogIndex = r.index;
          this.reconcile(names);
        },
        onError: (e) => this.failed(CATALOG, e),
      }),
    );
  }

  /** Aborts every in-flight request and resolves once all loops have ended. */
  async stop(): Promise<void> {
    if (this.state === 'stopped') return;
    this.state = 'stopped';
    this.root.abort();
    for (const w of this.services.values()) w.ctrl.abort();
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    await Promise.allSettled([...this.loops]);
    this.http.destroy();
  }

  snapshot(): ConsulSnapshot | undefined {
    return this.current;
  }

  onChange(cb: (s: ConsulSnapshot) => void): () => void {
    this.changeListeners.add(cb);
    return () => this.changeListeners.delete(cb);
  }

  onError(cb: (e: VmeshError) => void): () => void {
    this.errorListeners.add(cb);
    return () => this.errorListeners.delete(cb);
  }

  private track(p: Promise<void>): void {
    this.loops.add(p);
    void p.finally(() => this.loops.delete(p));
  }

  private reconcile(names: readonly string[]): void {
    const wanted = new Set(names);
    let changed = !this.catalogSynced;
    this.catalogSynced = true;
    for (const [name, w] of this.services) {
      if (wanted.has(name)) continue;
      w.ctrl.abort();
      this.services.delete(name);
      this.succeeded(`service ${name}`); // a loop that is gone can no longer be failing
      this.log.debug({ service: name }, 'consul: service gone, watch stopped');
      changed = true;
    }
    for (const name of names) if (!this.services.has(name)) this.watchService(name);
    if (changed) this.scheduleFlush();
  }

  private watchService(name: string): void {
    const ctrl = new AbortController();
    const w: ServiceWatch = { ctrl, index: 0 };
    this.services.set(name, w);
    const loopName = `service ${name}`;
    this.log.debug({ service: name }, 'consul: watching service');
    this.track(
      runBlockingLoop({
        signal: ctrl.signal,
        backoff: this.backoff,
        query: (index, signal) => this.http.healthService(name, { index, waitSeconds: this.waitSeconds, signal }),
        onResult: (r) => {
          const { instances, skipped } = parseHealthEntries(name, r.body);
          const skippedKey = skipped.join('\n');
          // Said once per distinct problem, not on every wake-up of the loop.
          if (skipped.length > 0 && skippedKey !== w.skipped) {
            this.log.warn({ service: name, skipped }, 'consul: skipped malformed health entries');
          }
          w.skipped = skippedKey;
          this.succeeded(loopName);
          w.index = r.index;
          const key = JSON.stringify(instances);
          if (key === w.key) return; // woke up, nothing changed
          w.key = key;
          w.instances = instances;
          this.scheduleFlush();
        },
        onError: (e) => this.failed(loopName, e),
      }),
    );
  }

  private failed(loop: string, e: VmeshError): void {
    this.errorCount += 1;
    this.lastErrorMessage = e.message;
    const outageStarts = this.failing.size === 0;
    this.failing.add(loop);
    if (!outageStarts) return;
    this.log.warn({ err: e.message, code: e.code }, 'consul: unavailable, keeping the last known services');
    for (const cb of this.errorListeners) {
      try {
        cb(e);
      } catch (err) {
        this.log.error({ err: String(err) }, 'consul: onError listener threw');
      }
    }
  }

  private succeeded(loop: string): void {
    if (this.failing.delete(loop) && this.failing.size === 0) this.log.info('consul: reachable again');
  }

  private scheduleFlush(): void {
    if (this.flushTimer || this.state !== 'running') return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined;
      this.flush();
    }, this.debounceMs);
  }

  private flush(): void {
    if (!this.catalogSynced || this.state !== 'running') return;
    const names = [...this.services.keys()].sort();
    // The first snapshot waits for every service's first read, so no one ever sees a half-loaded catalog.
    if (this.current === undefined && names.some((n) => this.services.get(n)?.instances === undefined)) return;
    const services = new Map<string, readonly ConsulInstance[]>();
    const keys: string[] = [];
    let index = this.catalogIndex;
    for (const name of names) {
      const w = this.services.get(name);
      if (!w?.instances || w.instances.length === 0) continue;
      services.set(name, w.instances);
      keys.push(`${JSON.stringify(name)}:${w.key}`);
      index = Math.max(index, w.index);
    }
    const key = keys.join(',');
    if (key === this.currentKey) return;
    this.currentKey = key;
    const snap: ConsulSnapshot = Object.freeze({ services, index });
    this.current = snap;
    for (const cb of this.changeListeners) {
      try {
        cb(snap);
      } catch (err) {
        this.log.error({ err: String(err) }, 'consul: onChange listener threw');
      }
    }
  }
}
