import type { Logger } from '../../lib/logger.js';
import type { HealthCheck } from '../proxy-config.js';
import type { ConnectResult } from '../runtime-types.js';
import type { HostState } from './host.js';

/** One probe of one host: true when it answered as healthy within the timeout. */
export type Probe = (h: HostState, cfg: HealthCheck) => Promise<boolean>;

/**
 * Active health checking for one cluster: every host is probed every interval (a probe never overlaps the
 * next). The first answer decides at once; later flips need healthy/unhealthy_threshold answers in a row.
 * Timers are unref'd so health checks never keep the process alive.
 */
export class HealthChecker {
  private readonly timers = new Map<HostState, NodeJS.Timeout>();
  private stopped = false;

  constructor(
    private cfg: HealthCheck,
    private readonly probe: Probe,
    private readonly onChange: () => void,
    private readonly logger: Logger,
    private readonly cluster: string,
  ) {}

  setConfig(cfg: HealthCheck): void {
    this.cfg = cfg;
  }

  /** Starts checking new hosts and stops checking removed ones. */
  sync(hosts: readonly HostState[]): void {
    const keep = new Set(hosts);
    for (const [h, t] of this.timers) {
      if (!keep.has(h)) {
        clearTimeout(t);
        this.timers.delete(h);
      }
    }
    for (const h of hosts) if (!this.timers.has(h)) this.schedule(h, 0);
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }

  private schedule(h: HostState, delayMs: number): void {
    const t = setTimeout(() => void this.run(h), delayMs);
    t.unref();
    this.timers.set(h, t);
  }

  private async run(h: HostState): Promise<void> {
    let healthy: boolean;
    try {
      healthy = await this.probe(h, this.cfg);
    } catch {
      healthy = false;
    }
    if (this.stopped || h.removed || !this.timers.has(h)) return;
    this.apply(h, healthy);
    this.schedule(h, this.cfg.intervalMs);
  }

  private apply(h: HostState, healthy: boolean): void {
    const before = h.hc;
    if (healthy) {
      h.hcFailures = 0;
      h.hcSuccesses++;
      if (h.hc === 'unknown' || h.hcSuccesses >= this.cfg.healthyThreshold) h.hc = 'healthy';
    } else {
      h.hcSuccesses = 0;
      h.hcFailures++;
      if (h.hc === 'unknown' || h.hcFailures >= this.cfg.unhealthyThreshold) h.hc = 'unhealthy';
    }
    if (h.hc !== before) {
      this.logger.info({ cluster: this.cluster, host: h.key, health: h.hc }, 'active health check changed host health');
      this.onChange();
    }
  }
}

/**
 * One active check over a connection `open` makes (the cluster's own transport, TLS included): success is
 * the connect itself, or for HTTP checks a GET whose status is one of the expected (2xx when none given).
 * `hostHeader` is the cluster name, as Envoy sends by default.
 */
export async function checkHost(open: () => Promise<ConnectResult>, hc: HealthCheck, hostHeader: string): Promise<boolean> {
  const r = await open();
  if (!r.ok) return false;
  const socket = r.socket;
  const http = hc.http;
  if (!http) {
    socket.destroy();
    return true;
  }
  return new Promise<boolean>((resolve) => {
    let head = '';
    const finish = (healthy: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(healthy);
    };
    const timer = setTimeout(() => finish(false), hc.timeoutMs);
    socket.on('data', (d: Buffer) => {
      head += d.toString('latin1');
      if (head.indexOf('\r\n') < 0 && head.length < 1024) return;
      const status = Number(/^HTTP\/\d(?:\.\d)? (\d{3})/.exec(head)?.[1] ?? 0);
      const expected = http.expectedStatuses;
      finish(expected.length > 0 ? expected.includes(status) : status >= 200 && status < 300);
    });
    socket.on('close', () => finish(false));
    socket.write(`GET ${http.path} HTTP/1.1\r\nHost: ${hostHeader}\r\nUser-Agent: vmesh-health-check\r\nConnection: close\r\n\r\n`);
  });
}
