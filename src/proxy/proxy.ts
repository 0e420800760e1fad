import type { Logger } from '../lib/logger.js';
import { err, ok, type Result } from '../lib/result.js';
import type { AppliedConfig } from '../xds/index.js';
import { ProxyClusterManager } from './cluster-manager.js';
import { compileProxyConfig } from './compile/index.js';
import { shareAmongWorkers } from './compile/share.js';
import { createHttpHandler, type ProxyHttpHandler, type RequestStats } from './http/index.js';
import { ListenerManager } from './listener-manager.js';
import type { ProxyConfig, SecretStore } from './model.js';
import type { TcpConnectionStats } from './tcp-proxy.js';

export interface ProxyOptions {
  readonly secrets: SecretStore;
  readonly logger: Logger;
  /** Tests bind listeners on another host address or remap ports. */
  readonly bindHost?: string;
  readonly portMap?: (port: number) => number;
  readonly onRequestDone?: (stats: RequestStats) => void;
  readonly onConnectionClosed?: (stats: TcpConnectionStats) => void;
}

const EMPTY: ProxyConfig = { version: 'empty', listeners: new Map(), virtualByAddress: new Map(), clusters: new Map(), routes: new Map() };

/**
 * The host's proxy: compiles each applied xDS config and swaps it in (clusters first, then listeners),
 * never touching open connections. `check` is what the agent uses to NACK a config the proxy cannot run.
 */
export class MeshProxy {
  private config: ProxyConfig = EMPTY;
  private readonly clusters: ProxyClusterManager;
  private readonly http: ProxyHttpHandler;
  private readonly listeners: ListenerManager;
  private applying: Promise<void> = Promise.resolve();

  constructor(opts: ProxyOptions) {
    this.clusters = new ProxyClusterManager({
      secrets: opts.secrets,
      logger: opts.logger,
      // Loop guard: never connect back into this proxy's own listeners.
      ownPorts: () => [15001, 15006, ...this.listeners.listening().map((l) => l.port)],
    });
    this.http = createHttpHandler({
      clusters: this.clusters,
      config: () => this.config,
      logger: opts.logger,
      ...(opts.onRequestDone ? { onRequestDone: opts.onRequestDone } : {}),
    });
    this.listeners = new ListenerManager({
      clusters: this.clusters,
      secrets: opts.secrets,
      http: this.http,
      logger: opts.logger,
      ...(opts.bindHost ? { bindHost: opts.bindHost } : {}),
      ...(opts.portMap ? { portMap: opts.portMap } : {}),
      ...(opts.onConnectionClosed ? { onConnectionClosed: opts.onConnectionClosed } : {}),
    });
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
      // The listener manager updates the clusters first, as Envoy does (CDS before LDS).
      await this.listeners.apply(config);
    });
    this.applying = run.catch(() => {});
    return run.then(
      () => ok(undefined),
      (e: unknown) => err((e as Error).message),
    );
  }

  listening(): Array<{ name: string; port: number }> {
    return this.listeners.listening();
  }

  async stop(drainMs = 5000): Promise<void> {
    await this.listeners.drain(drainMs);
    this.listeners.close();
    this.http.close();
    this.clusters.close();
  }
}
