import { chmod, chown, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { AgentConfig } from '../config/agent.js';
import { createAccessLogger, type Logger } from '../lib/logger.js';
import type { MetricsSnapshot } from '../lib/metrics-registry.js';
import type { ListeningPort } from '../proxy/listener/listener-manager.js';
import { MeshProxy } from '../proxy/proxy.js';
import type { ProxyConfig } from '../proxy/proxy-config.js';
import { FileSecretStore } from '../proxy/secret/file-store.js';
import { type AppliedConfig, LocalXdsServer, type SecretInput } from '../xds/index.js';
import { ProxyWorkers } from './proxy-workers.js';

/** The host's proxy as the agent drives it: in its own process, or as worker processes fed by the local xDS/SDS. */
export interface ProxyRunner {
  /** The accepted config (already compiled by the agent, which NACKs what does not compile) and the secrets. */
  update(applied: AppliedConfig, compiled: ProxyConfig | undefined, secrets: readonly SecretInput[]): void;
  listening(): ListeningPort[];
  /** Processes serving traffic (for metrics and the benchmark). */
  pids(): number[];
  /** How many of those processes have applied a config and serve. */
  serving(): number;
  /** Each proxy process's metrics snapshot (the agent sums them). */
  metrics(): Promise<MetricsSnapshot[]>;
  stop(drainMs: number): Promise<void>;
}

export async function startProxyRunner(cfg: AgentConfig, logger: Logger, onListening: () => void): Promise<ProxyRunner> {
  return cfg.proxyWorkers > 0 ? startWorkers(cfg, logger, onListening) : inProcess(logger, onListening);
}

function inProcess(logger: Logger, onListening: () => void): ProxyRunner {
  const secrets = new FileSecretStore();
  const proxy = new MeshProxy({ secrets, logger: logger.child({ component: 'proxy' }), accessLog: createAccessLogger() });
  return {
    update(applied, compiled, list) {
      secrets.replaceAll(list);
      void proxy.apply(compiled ?? applied).then((r) => {
        if (!r.ok) logger.warn({ error: r.error }, 'proxy: config not applied');
        else onListening();
      });
    },
    listening: () => proxy.listening(),
    pids: () => [process.pid],
    serving: () => (proxy.listening().length > 0 ? 1 : 0),
    metrics: () => Promise.resolve([proxy.metrics()]),
    stop: (drainMs) => proxy.stop(drainMs),
  };
}

async function startWorkers(cfg: AgentConfig, logger: Logger, onListening: () => void): Promise<ProxyRunner> {
  const { proxyUid: uid, proxyGid: gid } = cfg.captureConfig;
  // Only the agent and the proxy group may reach the socket: it hands out private keys.
  const runDir = cfg.runDir;
  await mkdir(runDir, { recursive: true, mode: 0o750 });
  await chmod(runDir, 0o750);
  if (process.getuid?.() === 0) await chown(runDir, 0, gid);
  const local = new LocalXdsServer({
    socketPath: join(runDir, 'proxy-xds.sock'),
    group: gid,
    logger: logger.child({ component: 'local-xds' }),
  });
  await local.start();
  const workers = new ProxyWorkers({
    count: cfg.proxyWorkers,
    socketPath: join(runDir, 'proxy-xds.sock'),
    uid,
    gid,
    logLevel: cfg.logLevel,
    logger: logger.child({ component: 'proxy-workers' }),
    onListening,
    livenessTimeoutMs: cfg.proxyLivenessTimeoutMs,
  });
  workers.start();
  logger.info({ workers: cfg.proxyWorkers, uid, gid }, 'proxy workers started');
  return {
    update: (applied, _compiled, list) => local.update(applied, list),
    listening: () => workers.listening(),
    pids: () => workers.pids(),
    serving: () => workers.serving(),
    metrics: () => workers.metrics(),
    async stop(drainMs) {
      await workers.stop(drainMs);
      await local.stop();
      await rm(runDir, { recursive: true, force: true });
    },
  };
}

/** The host's proxy as a part of the agent: started when the agent runs one, drained for 2 s on stop. */
export class ProxyComponent {
  readonly name = 'proxy';
  private current: ProxyRunner | undefined;
  private readonly listening: Array<() => void> = [];

  constructor(
    private readonly cfg: AgentConfig,
    private readonly logger: Logger,
  ) {}

  /** The running proxy; undefined before start and on an agent without one. */
  get runner(): ProxyRunner | undefined {
    return this.current;
  }

  /** Called whenever the proxy's listeners may have changed. */
  onListening(f: () => void): void {
    this.listening.push(f);
  }

  async start(): Promise<void> {
    if (!this.cfg.proxy) return;
    this.current = await startProxyRunner(this.cfg, this.logger, () => {
      for (const f of this.listening) f();
    });
  }

  async stop(): Promise<void> {
    await this.current?.stop(2000);
  }
}
