import { X509Certificate } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { Logger } from '../lib/logger.js';
import { MetricsRegistry, type MetricsSnapshot, mergeSnapshots, renderPrometheus } from '../lib/metrics-registry.js';
import type { AppliedConfig } from '../xds/index.js';

/** What the agent's metrics endpoint reads, each time it is scraped. */
export interface MetricsSources {
  /** Every proxy process's snapshot (summed here). */
  proxies(): Promise<readonly MetricsSnapshot[]>;
  /** Certificates this host holds: its workloads' (by SPIFFE id) and its own (`host`). */
  certificates(): Iterable<{ readonly name: string; readonly notAfter: Date }>;
  xds(): AppliedConfig;
  /** The proxy listens (capture may go on). */
  ready(): boolean;
}

/**
 * Istio's pilot-agent port: `/stats/prometheus` (the proxies' metrics summed across workers, plus the agent's own)
 * and `/healthz/ready`. Read-only and without secrets, so it binds 0.0.0.0 by default as Istio's does.
 */
export async function startMetricsServer(opts: {
  readonly address: string;
  readonly port: number;
  readonly sources: MetricsSources;
  readonly logger: Logger;
}): Promise<{ readonly port: number; close(): Promise<void> }> {
  const own = agentRegistry(opts.sources);
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/stats/prometheus' || path === '/metrics') {
      opts.sources
        .proxies()
        .then((snaps) => {
          const body = renderPrometheus(mergeSnapshots([...snaps, own.snapshot()]));
          res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(body);
        })
        .catch((e: unknown) => {
          opts.logger.warn({ err: e }, 'metrics: collecting from the proxy failed');
          res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics unavailable\n');
        });
    } else if (path === '/healthz/ready') {
      const ready = opts.sources.ready();
      res.writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' }).end(ready ? 'ready\n' : 'not ready\n');
    } else res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.address, () => {
      server.removeListener('error', reject);
      resolve();
    });
  });
  const addr = server.address();
  return {
    port: typeof addr === 'object' && addr ? addr.port : opts.port,
    // At once: a scraper's idle keep-alive connection would otherwise hold the agent's stop.
    close: () => {
      const closed = new Promise<void>((r) => server.close(() => r()));
      server.closeAllConnections();
      return closed;
    },
  };
}

function agentRegistry(src: MetricsSources): MetricsRegistry {
  const r = new MetricsRegistry();
  r.gauge('vmesh_certificate_expiry_seconds', 'Seconds until a certificate this host holds expires', ['identity'], function* () {
    for (const c of src.certificates()) yield [[c.name], Math.round((c.notAfter.getTime() - Date.now()) / 1000)];
  });
  r.gauge('vmesh_xds_config_info', 'The xDS version applied, by type (value 1)', ['type_url', 'version'], function* () {
    for (const [t, v] of Object.entries(src.xds().versions)) yield [[t, v], 1];
  });
  r.gauge('vmesh_xds_last_update_timestamp_seconds', 'When the applied xDS config last changed', [], () => [
    [[], Date.parse(src.xds().updatedAt) / 1000],
  ]);
  r.gauge('vmesh_proxy_ready', 'The proxy listens on the outbound port', [], () => [[[], src.ready() ? 1 : 0]]);
  return r;
}

/** notAfter of a PEM certificate (the host's own). */
export function certificateNotAfter(pem: string): Date {
  return new Date(new X509Certificate(pem).validTo);
}
