import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { controllerChannelOptions, signWorkloadCert, type WorkloadIdentities } from '../ca/index.js';
import type { AgentConfig } from '../config/agent.js';
import { DnsProxy } from '../dns/dns-proxy.js';
import { nameTableFrom } from '../dns/name-table.js';
import { readResolvConf } from '../dns/resolv-conf.js';
import { type Component, component, startAll } from '../lib/lifecycle.js';
import type { Logger } from '../lib/logger.js';
import { tuneMalloc } from '../lib/native.js';
import { type AppliedConfig, XdsSync } from '../xds/index.js';
import { NDS } from '../xds/type-urls.js';
import { AdminServer, adminRoutes } from './admin-server.js';
import { CaptureState } from './capture-state.js';
import { ControllerLink } from './controller-link.js';
import { controllerTarget } from './controller-target.js';
import { ensureHostCredentials, HostTls, onAnyController } from './credentials.js';
import { HostIdentities } from './host-identities.js';
import { certificateNotAfter, startMetricsServer } from './metrics-server.js';
import { ConfigCheck, ProxyFeed } from './proxy-feed.js';
import { ProxyComponent, type ProxyRunner } from './proxy-runner.js';

export interface RunningAgent {
  readonly adminPort: number;
  readonly metricsPort: number;
  readonly dnsPort: number;
  readonly proxy?: ProxyRunner;
  readonly sync: XdsSync;
  readonly identities: WorkloadIdentities;
  stop(): Promise<void>;
}

/** Builds the agent: credentials (join or from disk), xDS sync with the last good config, health reports, admin. */
export async function startAgent(cfg: AgentConfig, logger: Logger): Promise<RunningAgent> {
  const tuned = tuneMalloc();
  if (!tuned.ok) logger.warn({ reason: tuned.error.message }, 'malloc tuning not applied; large buffers may fragment the heap');
  await mkdir(cfg.dataDir, { recursive: true, mode: 0o700 });
  const proxy = new ProxyComponent(cfg, logger);
  const capture = new CaptureState(cfg, logger, () => proxy.runner);
  proxy.onListening(() => capture.sync());
  try {
    const agent = await buildAgent(cfg, logger, proxy, capture);
    const running = await startAll(agent.components, logger);
    logger.info({ host: cfg.hostName, controllers: cfg.controllers, adminPort: agent.admin.port, dnsPort: agent.dnsPort() }, 'agent ready');
    return {
      adminPort: agent.admin.port,
      metricsPort: agent.metricsPort(),
      dnsPort: agent.dnsPort(),
      ...(proxy.runner ? { proxy: proxy.runner } : {}),
      sync: agent.sync,
      identities: agent.identities.identities,
      stop: () => running.stop(),
    };
  } catch (e) {
    capture.close();
    throw e;
  }
}

/**
 * The agent's parts, in the order they start; they stop in reverse. On the way up: a crashed agent's capture is
 * cleared first, the last good config is loaded before DNS answers and xDS connects, and capture follows the proxy
 * once it runs. On the way down (systemd and the lab give a stop 2 s before SIGKILL): capture comes off first, so
 * nothing is redirected to a proxy or DNS port about to go, then the proxy drains; reports and renewal stop before
 * the controller channel; the identity cache is written after everything that changes it has stopped; the capture
 * table's session is given back last.
 */
async function buildAgent(cfg: AgentConfig, logger: Logger, proxy: ProxyComponent, capture: CaptureState) {
  const tls = new HostTls(await ensureHostCredentials(cfg, logger));
  const controllers = await controllerTarget(cfg.controllers, logger);
  const identities = await HostIdentities.load(
    cfg.dataDir,
    (namespace, serviceAccount) =>
      onAnyController(cfg.controllers, (address) => signWorkloadCert({ address, host: tls.creds, namespace, serviceAccount })),
    logger.child({ component: 'sds' }),
  );
  const check = new ConfigCheck(cfg.proxy, identities);
  const sync = new XdsSync({
    validate: (typeUrl, next, all) => check.validate(typeUrl, next, all),
    address: controllers,
    credentials: tls.channelCredentials,
    channelOptions: controllerChannelOptions(controllers),
    nodeId: cfg.hostName,
    metadata: { mode: cfg.mode, labels: { ...cfg.gatewayLabels } },
    cacheFile: join(cfg.dataDir, 'xds-last-good.json'),
    logger: logger.child({ component: 'xds' }),
  });
  const feed = new ProxyFeed({ cfg, logger, sync, check, identities, tls, proxy: () => proxy.runner });
  const dns = dnsComponent(
    sync,
    new DnsProxy({ port: cfg.dnsPort, resolv: await readResolvConf(), logger: logger.child({ component: 'dns' }) }),
  );
  const link = new ControllerLink({ cfg, logger, controllers, tls, sync, identities, proxy: () => proxy.runner });
  link.onRenewed(() => feed.schedule());
  const routes = adminRoutes({ cfg, sync, link, identities, tls, proxy: () => proxy.runner });
  const admin = new AdminServer(cfg.adminAddress, cfg.adminPort, routes);
  const metrics = metricsComponent(cfg, logger, tls, identities, sync, () => proxy.runner);
  const components: Component[] = [
    component('capture-session', { start: () => capture.clearStale(), stop: () => capture.close() }),
    component('identities', { stop: () => identities.stop() }),
    component('config', { start: () => feed.follow() }),
    dns,
    component('xds', { start: () => sync.start(), stop: () => sync.stop() }),
    component('controller-link', { start: () => link.start(), stop: () => link.stop() }),
    component('admin', { start: () => admin.start(), stop: () => admin.stop() }),
    metrics,
    proxy,
    component('proxy-feed', { start: () => feed.start(), stop: () => feed.stop() }),
    component('capture', { start: () => capture.arm(), stop: () => capture.disarm() }),
  ];
  return { components, sync, identities, admin, dnsPort: () => dns.port, metricsPort: () => metrics.port };
}

/** The DNS proxy answering from the pushed name table (the cached one until a controller answers). */
function dnsComponent(sync: XdsSync, dns: DnsProxy): Component & { readonly port: number } {
  const applyNames = (c: AppliedConfig) => dns.setTable(nameTableFrom(c.resources[NDS] ?? {}));
  let port = 0;
  return {
    name: 'dns',
    get port() {
      return port;
    },
    async start() {
      sync.onChange((typeUrl, c) => {
        if (typeUrl === NDS) applyNames(c);
      });
      applyNames(sync.config());
      port = (await dns.start()).port;
    },
    stop: () => dns.stop(),
  };
}

function metricsComponent(
  cfg: AgentConfig,
  logger: Logger,
  tls: HostTls,
  identities: HostIdentities,
  sync: XdsSync,
  proxy: () => ProxyRunner | undefined,
): Component & { readonly port: number } {
  let server: Awaited<ReturnType<typeof startMetricsServer>> | undefined;
  return {
    name: 'metrics',
    get port() {
      return server?.port ?? 0;
    },
    async start() {
      server = await startMetricsServer({
        address: cfg.metricsAddress,
        port: cfg.metricsPort,
        logger: logger.child({ component: 'metrics' }),
        sources: {
          proxies: () => proxy()?.metrics() ?? Promise.resolve([]),
          certificates: () => [
            ...identities.identities.all().map((c) => ({ name: c.spiffeId, notAfter: c.notAfter })),
            { name: 'host', notAfter: certificateNotAfter(tls.creds.certPem) },
          ],
          xds: () => sync.config(),
          ready: () =>
            !!proxy()
              ?.listening()
              .some((l) => l.port === cfg.captureConfig.outboundPort),
        },
      });
    },
    stop: async () => {
      await server?.close();
    },
  };
}
