import { X509Certificate } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AgentConfig } from '../config/agent.js';
import { listenOn } from '../lib/listen.js';
import type { XdsSync } from '../xds/index.js';
import type { ControllerLink } from './controller-link.js';
import type { HostTls } from './credentials.js';
import type { HostIdentities } from './host-identities.js';
import type { ProxyRunner } from './proxy-runner.js';
import { describeSecret } from './secret-summary.js';

export interface AdminSources {
  readonly cfg: AgentConfig;
  readonly sync: XdsSync;
  readonly link: ControllerLink;
  readonly identities: HostIdentities;
  readonly tls: HostTls;
  readonly proxy: () => ProxyRunner | undefined;
}

/** The agent's local admin endpoints (JSON): what it holds from the controllers and what its proxy serves. */
export function adminRoutes(s: AdminSources): Record<string, () => unknown> {
  const { cfg, sync, link, identities, tls, proxy } = s;
  return {
    '/config_dump': () => sync.config(),
    '/workloads': () => link.localWorkloads(),
    '/listeners': () => proxy()?.listening() ?? [],
    '/proxy': () => ({ pids: proxy()?.pids() ?? [], serving: proxy()?.serving() ?? 0, workers: cfg.proxyWorkers }),
    '/certs': () =>
      identities.identities.all().map((c) => ({
        spiffeId: c.spiffeId,
        notBefore: c.notBefore,
        notAfter: c.notAfter,
        serial: new X509Certificate(c.certChainPem).serialNumber,
      })),
    '/secrets': () => identities.secrets(tls.creds).map(describeSecret),
    '/ready': () => ({ ready: true, host: cfg.hostName }),
  };
}

export class AdminServer {
  private readonly server: Server;
  port = 0;

  constructor(
    private readonly address: string,
    private readonly listenPort: number,
    routes: Record<string, () => unknown>,
  ) {
    this.server = createServer((req, res) => {
      const route = Object.hasOwn(routes, req.url ?? '') ? routes[req.url ?? ''] : undefined;
      const [status, body] = route
        ? [200, route()]
        : [404, { error: { code: 'VMESH_ERR_NOT_FOUND', message: `no admin endpoint ${req.url}` } }];
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body, null, 2));
    });
  }

  async start(): Promise<void> {
    this.port = await listenOn(this.server, this.address, this.listenPort);
  }

  /** Closes at once: a client's idle keep-alive connection would otherwise hold the agent's stop. */
  stop(): Promise<void> {
    const closed = new Promise<void>((r) => this.server.close(() => r()));
    this.server.closeAllConnections();
    return closed;
  }
}
