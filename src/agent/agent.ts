import { mkdir } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { controllerServiceClient } from '../ca/index.js';
import type { AgentConfig } from '../config/agent.js';
import { HealthReporter } from '../discovery/health-reporter.js';
import { DnsProxy } from '../dns/dns-proxy.js';
import { nameTableFrom } from '../dns/name-table.js';
import { readResolvConf } from '../dns/resolv-conf.js';
import type { Logger } from '../lib/logger.js';
import { type AppliedConfig, XdsSync } from '../xds/index.js';
import { NDS } from '../xds/type-urls.js';
import { ensureHostCredentials, type HostCreds, renewIfDue } from './credentials.js';

export interface RunningAgent {
  readonly adminPort: number;
  readonly dnsPort: number;
  readonly sync: XdsSync;
  stop(): Promise<void>;
}

/** gRPC target for several controllers: grpc-js picks the first that answers and fails over. */
function target(controllers: readonly string[]): string {
  if (controllers.length === 1) return controllers[0] ?? '';
  const ipv4 = controllers.every((c) => /^\d+\.\d+\.\d+\.\d+:\d+$/.test(c));
  return ipv4 ? `ipv4:${controllers.join(',')}` : (controllers[0] ?? '');
}

function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      const a = server.address();
      resolve(typeof a === 'object' && a ? a.port : port);
    });
  });
}

/** Builds the agent: credentials (join or from disk), xDS sync with the last good config, health reports, admin. */
export async function startAgent(cfg: AgentConfig, logger: Logger): Promise<RunningAgent> {
  await mkdir(cfg.dataDir, { recursive: true, mode: 0o700 });
  let creds: HostCreds = await ensureHostCredentials(cfg, logger);
  const credentials = (c: HostCreds) =>
    grpc.credentials.createSsl(Buffer.from(c.trustBundlePem), Buffer.from(c.keyPem), Buffer.from(c.certPem));

  const sync = new XdsSync({
    address: target(cfg.controllers),
    credentials: credentials(creds),
    nodeId: cfg.hostName,
    metadata: { mode: 'sidecar' },
    cacheFile: join(cfg.dataDir, 'xds-last-good.json'),
    logger: logger.child({ component: 'xds' }),
  });
  const dns = new DnsProxy({ port: cfg.dnsPort, resolv: await readResolvConf(), logger: logger.child({ component: 'dns' }) });
  const applyNames = (c: AppliedConfig) => dns.setTable(nameTableFrom(Object.values(c.resources[NDS] ?? {})[0]));
  sync.onChange((typeUrl, c) => {
    if (typeUrl === NDS) applyNames(c);
  });
  await sync.loadCached();
  applyNames(sync.config());
  const { port: dnsPort } = await dns.start();
  sync.start();

  const Controller = controllerServiceClient();
  let client = new Controller(target(cfg.controllers), credentials(creds)) as never as ConstructorParameters<
    typeof HealthReporter
  >[0]['client'];
  let reporter = new HealthReporter({ client, logger: logger.child({ component: 'health' }) });
  reporter.start();

  // Renewal swaps the credentials of the report channel; the xDS stream picks them up on its next reconnect.
  const renewTimer = setInterval(() => {
    renewIfDue(cfg, creds, logger)
      .then(async (next) => {
        if (!next) return;
        creds = next;
        await reporter.stop();
        client.close();
        client = new Controller(target(cfg.controllers), credentials(creds)) as never;
        reporter = new HealthReporter({ client, logger: logger.child({ component: 'health' }) });
        reporter.start();
      })
      .catch((e: unknown) => logger.warn({ err: e }, 'renewal check failed'));
  }, 60_000);
  renewTimer.unref();

  const admin = createServer((req, res) => {
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body, null, 2));
    };
    if (req.url === '/config_dump') send(200, sync.config());
    else if (req.url === '/workloads') send(200, reporter.localWorkloads());
    else if (req.url === '/ready') send(200, { ready: true, host: cfg.hostName });
    else send(404, { error: { code: 'VMESH_ERR_NOT_FOUND', message: `no admin endpoint ${req.url}` } });
  });
  const adminPort = await listen(admin, cfg.adminPort, cfg.adminAddress);
  logger.info({ host: cfg.hostName, controllers: cfg.controllers, adminPort, dnsPort }, 'agent ready');

  return {
    adminPort,
    dnsPort,
    sync,
    async stop() {
      clearInterval(renewTimer);
      await reporter.stop();
      client.close();
      await sync.stop();
      await dns.stop();
      await new Promise<void>((r) => admin.close(() => r()));
    },
  };
}
