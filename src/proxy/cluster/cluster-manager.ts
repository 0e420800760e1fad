import type { Logger } from '../../lib/logger.js';
import type { ClusterConfig, HealthCheck, ProxyConfig, SecretStore, UpstreamEndpoint } from '../proxy-config.js';
import type { ClusterManager, ConnectResult, Outcome, PickContext, SourceIdentity, UpstreamHost } from '../runtime-types.js';
import { TlsContexts } from '../tls/contexts.js';
import { type Budget, CircuitBreakers } from './breakers.js';
import { type ConnectDeps, DnsCache, failure, isLocalAddress, openUpstream } from './connect.js';
import { checkHost, HealthChecker } from './health.js';
import { endpointKey, type HostState, hostAvailable, hostKey, newHostState } from './host.js';
import { type Balancer, createBalancer, prioritize, slowStartFactor, weightOf } from './lb.js';
import { clearEjection, recordOutcome } from './outlier.js';

export interface ClusterManagerOptions {
  readonly secrets: SecretStore;
  readonly logger: Logger;
  /**
   * The proxy's own listener ports on this host, refused as upstreams (loop guard). Defaults to 15001 and
   * 15006; the agent passes those plus `ListenerManager.listening()` ports.
   */
  readonly ownPorts?: () => Iterable<number>;
  /** DNS clusters: how long a resolved address is reused. */
  readonly dnsTtlMs?: number;
  readonly random?: () => number;
  /** Monotonic milliseconds (slow start ages); performance.now by default. */
  readonly now?: () => number;
}

/** What `hosts()` reports per endpoint (admin dumps, tests). */
export interface HostStatus {
  readonly key: string;
  readonly available: boolean;
  readonly ejected: boolean;
  readonly timesEjected: number;
  readonly health: 'unknown' | 'healthy' | 'unhealthy';
  readonly edsHealthy: boolean;
  readonly active: number;
}

interface ClusterState {
  config: ClusterConfig;
  hosts: HostState[];
  byKey: Map<string, HostState>;
  balancer: Balancer;
  readonly breakers: CircuitBreakers;
  health: HealthChecker | undefined;
  /** Available hosts of the single priority, cached until host state changes; undefined = recompute. */
  available: UpstreamHost[] | undefined;
  multiPriority: boolean;
  dnsHost: UpstreamHost | undefined;
  readonly inflight: (key: string) => number;
  /** Slow start: the newest host's addedAt, so picks after every window has ended skip the weighting. */
  newestAddedAt: number;
}

const DEFAULT_OWN_PORTS = [15001, 15006];
const noopRelease = () => {};
const BLACKHOLE_HOST: UpstreamHost = Object.freeze({ key: 'blackhole', endpoint: syntheticEndpoint('0.0.0.0', 0) });

/**
 * The proxy's upstream side: per-cluster host sets with health (EDS, active checks, outlier ejection),
 * locality priorities and load balancing for `pick`, circuit breakers, and connection setup (TLS, DNS,
 * loop guard) for `connect`. Callers own the sockets `connect` returns (pooling is the HTTP layer's).
 */
export class ProxyClusterManager implements ClusterManager {
  private readonly clusters = new Map<string, ClusterState>();
  private readonly contexts: TlsContexts;
  private readonly deps: ConnectDeps;
  private readonly random: () => number;
  private readonly now: () => number;
  private closed = false;

  constructor(private readonly opts: ClusterManagerOptions) {
    this.contexts = new TlsContexts(opts.secrets);
    const ownPorts = opts.ownPorts ?? (() => DEFAULT_OWN_PORTS);
    this.random = opts.random ?? Math.random;
    this.now = opts.now ?? (() => performance.now());
    this.deps = {
      contexts: this.contexts,
      dns: new DnsCache(opts.dnsTtlMs),
      isOwnListener: (address, port) => {
        for (const p of ownPorts()) if (p === port) return isLocalAddress(address);
        return false;
      },
    };
  }

  update(config: ProxyConfig): void {
    if (this.closed) return;
    for (const [name, cfg] of config.clusters) {
      const cs = this.clusters.get(name);
      if (!cs) this.clusters.set(name, this.create(cfg));
      else if (cs.config !== cfg) this.reconcile(cs, cfg);
    }
    for (const [name, cs] of this.clusters) {
      if (config.clusters.has(name)) continue;
      this.retire(cs, cs.hosts);
      this.clusters.delete(name);
    }
  }

  cluster(name: string): ClusterConfig | undefined {
    return this.clusters.get(name)?.config;
  }

  pick(name: string, ctx: PickContext): UpstreamHost | undefined {
    const cs = this.clusters.get(name);
    if (!cs) return undefined;
    const c = cs.config;
    // Clusters without an endpoint list: connect() knows what to do with these stand-in hosts.
    if (c.blackhole) return BLACKHOLE_HOST;
    if (c.discovery === 'ORIGINAL_DST') {
      const d = ctx.originalDst;
      return d ? { key: hostKey(d.address, d.port), endpoint: syntheticEndpoint(d.address, d.port) } : undefined;
    }
    if (cs.dnsHost) return cs.dnsHost;
    let list = cs.available;
    if (!list) {
      const pool = cs.multiPriority ? prioritize(cs.hosts, hostAvailable, this.random) : cs.hosts;
      list = pool.filter(hostAvailable).map((h) => h.host);
      if (!cs.multiPriority) cs.available = list;
    }
    const ex = ctx.exclude;
    if (ex && ex.size > 0) {
      const rest = list.filter((h) => !ex.has(h.key));
      // Every host was tried already: retry on one of them rather than fail (Envoy's previous_hosts does the same).
      if (rest.length > 0) list = rest;
    }
    if (list.length === 0) return undefined;
    if (list.length === 1) return list[0];
    const weight = this.slowStartWeight(cs);
    return cs.balancer.pick(list, { hashKey: ctx.hashKey, inflight: cs.inflight, random: this.random, ...(weight ? { weight } : {}) });
  }

  /** Envoy's slow start: hosts younger than the window weigh less; undefined once every host is past it. */
  private slowStartWeight(cs: ClusterState): ((h: UpstreamHost) => number) | undefined {
    const slow = cs.config.slowStart;
    if (!slow) return undefined;
    const now = this.now();
    if (now - cs.newestAddedAt >= slow.windowMs) return undefined;
    return (h) => weightOf(h) * slowStartFactor(now - (cs.byKey.get(h.key)?.addedAt ?? Number.NEGATIVE_INFINITY), slow);
  }

  async connect(
    name: string,
    host: UpstreamHost,
    opts?: { readonly alpn?: readonly string[]; readonly identity?: SourceIdentity },
  ): Promise<ConnectResult> {
    const cs = this.clusters.get(name);
    if (!cs) return failure('connect_failure', `cluster ${name} is not configured`);
    if (cs.config.blackhole) return failure('blackhole', `cluster ${name} is a black hole: connections are refused by configuration`);
    const release = cs.breakers.acquire('connection');
    if (!release) {
      return failure('overflow', `cluster ${name}: circuit breaker max_connections (${cs.config.circuitBreaker.maxConnections}) reached`);
    }
    const st = cs.byKey.get(host.key);
    let r: ConnectResult;
    try {
      r = await openUpstream(cs.config, host, this.deps, opts?.alpn, opts?.identity);
    } catch (e) {
      r = failure('connect_failure', `cluster ${name}: ${(e as Error).message}`);
    }
    if (!r.ok) {
      release();
      // Connect failures feed outlier detection here, once; callers report only responses, resets and timeouts.
      if (st && r.reason !== 'overflow' && r.reason !== 'blackhole') this.report(name, st.host, { kind: 'error', error: 'connect' });
      return r;
    }
    r.socket.once('close', release);
    return r;
  }

  acquire(name: string, budget: Budget): (() => void) | undefined {
    const cs = this.clusters.get(name);
    return cs ? cs.breakers.acquire(budget) : noopRelease;
  }

  report(name: string, host: UpstreamHost, outcome: Outcome): void {
    const cs = this.clusters.get(name);
    const st = cs?.byKey.get(host.key);
    if (!cs || !st) return;
    recordOutcome(cs.config.outlier, cs.hosts, st, outcome, () => this.invalidate(cs));
  }

  /**
   * Counts a request in flight on a host (LEAST_REQUEST weighs hosts by this); call the result when it ends.
   * Connections are not counted by `connect`: a pooled idle connection is no load.
   */
  beginRequest(name: string, host: UpstreamHost): () => void {
    const st = this.clusters.get(name)?.byKey.get(host.key);
    if (!st) return noopRelease;
    st.active++;
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      st.active--;
    };
  }

  hosts(name: string): HostStatus[] {
    const cs = this.clusters.get(name);
    return (cs?.hosts ?? []).map((h) => ({
      key: h.key,
      available: hostAvailable(h),
      ejected: h.ejected,
      timesEjected: h.timesEjected,
      health: h.hc,
      edsHealthy: h.endpoint.healthy,
      active: h.active,
    }));
  }

  /** Circuit breaker counters of a cluster (telemetry). */
  budgetInUse(name: string, budget: Budget): number {
    return this.clusters.get(name)?.breakers.count(budget) ?? 0;
  }

  close(): void {
    this.closed = true;
    for (const cs of this.clusters.values()) this.retire(cs, cs.hosts);
    this.clusters.clear();
    this.contexts.close();
  }

  private create(cfg: ClusterConfig): ClusterState {
    const byKey = new Map<string, HostState>();
    const cs: ClusterState = {
      config: cfg,
      hosts: [],
      byKey,
      balancer: createBalancer(cfg),
      breakers: new CircuitBreakers(cfg.circuitBreaker),
      health: undefined,
      available: undefined,
      multiPriority: false,
      dnsHost: undefined,
      inflight: (key) => byKey.get(key)?.active ?? 0,
      newestAddedAt: Number.NEGATIVE_INFINITY,
    };
    this.reconcile(cs, cfg);
    return cs;
  }

  private reconcile(cs: ClusterState, cfg: ClusterConfig): void {
    if (cs.config !== cfg) {
      cs.balancer = createBalancer(cfg);
      cs.breakers.setLimits(cfg.circuitBreaker);
    }
    cs.config = cfg;
    const hosts: HostState[] = [];
    const byKey = new Map<string, HostState>();
    for (const ep of cfg.endpoints) {
      const key = endpointKey(ep);
      if (byKey.has(key)) continue;
      let st = cs.byKey.get(key);
      if (!st) st = newHostState(ep, this.now());
      else if (st.endpoint !== ep) {
        st.endpoint = ep;
        st.host = { key, endpoint: ep };
      }
      hosts.push(st);
      byKey.set(key, st);
    }
    this.retire(
      cs,
      cs.hosts.filter((h) => !byKey.has(h.key)),
    );
    cs.hosts = hosts;
    cs.byKey.clear();
    for (const [k, v] of byKey) cs.byKey.set(k, v);
    cs.multiPriority = hosts.some((h) => h.endpoint.priority !== 0);
    cs.newestAddedAt = hosts.reduce((m, h) => Math.max(m, h.addedAt), Number.NEGATIVE_INFINITY);
    cs.dnsHost =
      cfg.discovery === 'DNS' && cfg.dnsHost
        ? { key: hostKey(cfg.dnsHost.host, cfg.dnsHost.port), endpoint: syntheticEndpoint(cfg.dnsHost.host, cfg.dnsHost.port) }
        : undefined;
    if (!cfg.outlier) for (const h of hosts) clearEjection(h);
    this.syncHealth(cs, cfg.healthCheck);
    cs.available = undefined;
  }

  private syncHealth(cs: ClusterState, hc: HealthCheck | undefined): void {
    if (!hc) {
      cs.health?.stop();
      cs.health = undefined;
      for (const h of cs.hosts) h.hc = 'unknown';
      return;
    }
    if (cs.health) cs.health.setConfig(hc);
    else
      cs.health = new HealthChecker(
        hc,
        (h, cfg) =>
          checkHost(
            () => openUpstream({ ...cs.config, connectTimeoutMs: cfg.timeoutMs }, h.host, this.deps, undefined),
            cfg,
            cfg.http?.host ?? cs.config.name,
          ),
        () => this.invalidate(cs),
        this.opts.logger,
        cs.config.name,
      );
    cs.health.sync(cs.hosts);
  }

  private retire(cs: ClusterState, hosts: readonly HostState[]): void {
    for (const h of hosts) {
      h.removed = true;
      clearEjection(h);
    }
    if (hosts === cs.hosts) {
      cs.health?.stop();
      cs.health = undefined;
    }
  }

  private invalidate(cs: ClusterState): void {
    cs.available = undefined;
  }
}

function syntheticEndpoint(address: string, port: number): UpstreamEndpoint {
  return { address, port, weight: 1, healthy: true, locality: '', priority: 0, mtls: false };
}
