import type { Logger } from '../lib/logger.js';
import type { MetricsSnapshot } from '../lib/metrics-registry.js';
import { err, ok, type Result } from '../lib/result.js';
import type { AppliedConfig } from '../xds/index.js';
import { ProxyClusterManager } from './cluster/cluster-manager.js';
import { compileProxyConfig } from './compile/index.js';
import { shareAmongWorkers } from './compile/share.js';
import { createHttpHandler, type ProxyHttpHandler, type RequestStats } from './http/index.js';
import { ListenerManager, type ListeningPort } from './listener/listener-manager.js';
import type { ProxyConfig, SecretStore } from './proxy-config.js';
import type { TcpConnectionStats } from './tcp/tcp-proxy.js';
import { ProxyTelemetry } from './telemetry/proxy-telemetry.js';

export interface ProxyOptions {
  readonly secrets: SecretStore;
  readonly logger: Logger;
  /** Tests bind listeners on another host address or remap ports. */
  readonly bindHost?: string;
  readonly portMap?: (port: number) => number;
  readonly onRequestDone?: (stats: RequestStats) => void;
  readonly onConnectionClosed?: (stats: TcpConnectionStats) => void;
  /** Istio metrics and access logs (on unless false); access log lines go to `accessLog` (createAccessLogger). */
  readonly telemetry?: boolean;
  readonly accessLog?: Logger;
  /** The proxy's environment, for `environment` span tags (from the worker's config). */
  readonly environment?: Readonly<Record<string, string | undefined>>;
}

const EMPTY: ProxyConfig = { version: 'empty', listeners: new Map(), virtualByAddress: new Map(), clusters: new Map(), routes: new Map() };

/**
 * The host's proxy: compiles each applied xDS config and swaps it in (clusters first, then listeners); open
 * connections keep going unless the new config no longer admits them (then they are drained, listener/drain.ts).
 * `check` is what the agent uses to NACK a config the proxy cannot run.
 */
export class MeshProxy {
  private config: ProxyConfig = EMPTY;
  private readonly clusters: ProxyClusterManager;
  private readonly http: ProxyHttpHandler;
  private readonly listeners: ListenerManager;
  private applying: Promise<void> = Promise.resolve();
  private readonly telemetry: ProxyTelemetry | undefined;

  constructor(opts: ProxyOptions) {
    this.clusters = new ProxyClusterManager({
      secrets: opts.secrets,
      logger: opts.logger,
      // Loop guard: never connect back into this proxy's own listeners.
      ownPorts: () => [15001, 15006, ...this.listeners.listening().map((l) => l.port)],
    });
    const t = opts.telemetry === false ? undefined : this.makeTelemetry(opts);
    this.telemetry = t;
    const onRequestDone = both(t?.onRequestDone, opts.onRequestDone);
    const onConnectionClosed = both(t?.onConnectionClosed, opts.onConnectionClosed);
    this.http = createHttpHandler({
      clusters: this.clusters,
      config: () => this.config,
      logger: opts.logger,
      ...(onRequestDone ? { onRequestDone } : {}),
    });
    this.listeners = new ListenerManager({
      clusters: this.clusters,
      secrets: opts.secrets,
      http: this.http,
      logger: opts.logger,
      ...(opts.bindHost ? { bindHost: opts.bindHost } : {}),
      ...(opts.portMap ? { portMap: opts.portMap } : {}),
      ...(onConnectionClosed ? { onConnectionClosed } : {}),
      ...(t ? { onConnectionOpened: t.onConnectionOpened } : {}),
    });
  }

  private makeTelemetry(opts: ProxyOptions): ProxyTelemetry {
    const clusters = this.clusters;
    return new ProxyTelemetry({
      secrets: opts.secrets,
      logger: opts.logger,
      ...(opts.accessLog ? { accessLog: opts.accessLog } : {}),
      ...(opts.environment ? { environment: opts.environment } : {}),
      internals: {
        activeConnections: () => this.listeners.activeConnections(),
        clusters: () => this.config.clusters.keys(),
        inUse: (c, budget) => clusters.budgetInUse(c, budget),
        ejections: (c) => {
          let ejected = 0;
          let total = 0;
          for (const h of clusters.hosts(c)) {
            if (h.ejected) ejected++;
            total += h.timesEjected;
          }
          return { ejected, total };
        },
      },
    });
  }

  /** The proxy's metrics (Istio's and its own), for the agent to merge and serve; empty with telemetry off. */
  metrics(): MetricsSnapshot {
    return this.telemetry?.snapshot() ?? [];
  }

  /** Compiles an applied config (worker `index`'s share of `workers`); an error is what the agent NACKs. */
  static prepare(applied: AppliedConfig, workers = 1, index = 0): Result<ProxyConfig, string> {
    const r = compileProxyConfig(applied);
    return r.ok && workers > 1 ? ok(shareAmongWorkers(r.value, workers, index)) : r;
  }

  /** Compiles and applies; a config that does not compile leaves the running one in place. */
  apply(applied: AppliedConfig | ProxyConfig): Promise<Result<void, string>> {
    const compiled = 'listeners' in applied ? ok(applied) : compileProxyConfig(applied);
    if (!compiled.ok) return Promise.resolve(err(compiled.error));
    const config = compiled.value;
    const run = this.applying.then(async () => {
      this.config = config;
      this.telemetry?.setConfig(config);
      // The listener manager updates the clusters first, as Envoy does (CDS before LDS).
      await this.listeners.apply(config);
    });
    this.applying = run.catch(() => {});
    return run.then(
      () => ok(undefined),
      (e: unknown) => err((e as Error).message),
    );
  }

  listening(): ListeningPort[] {
    return this.listeners.listening();
  }

  async stop(drainMs = 5000): Promise<void> {
    await this.listeners.drain(drainMs);
    this.listeners.close();
    this.http.close();
    this.clusters.close();
    await this.telemetry?.close();
  }
}

/** Both hooks, in order (telemetry first), or whichever exists. */
function both<T>(a: ((x: T) => void) | undefined, b: ((x: T) => void) | undefined): ((x: T) => void) | undefined {
  if (!a || !b) return a ?? b;
  return (x) => {
    a(x);
    b(x);
  };
}
