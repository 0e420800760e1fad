import type { MeshConfig } from '../api/mesh-config.js';
import type { HostStatus, MeshModel, MeshService } from '../api/model.js';
import type { Resource } from '../api/resource.js';
import { Debouncer } from '../lib/debounce.js';
import type { Logger } from '../lib/logger.js';
import type { ConfigStore } from '../store/config-store.js';
import { buildServices } from './build-services.js';
import type { ConsulSnapshot } from './consul-watcher.js';
import type { HealthTracker } from './health.js';
import type { VipAllocator } from './vip-allocator.js';

export interface ModelBuilderDeps {
  readonly config: ConfigStore;
  readonly vips: VipAllocator;
  readonly health: HealthTracker;
  /** Hosts that joined and are not removed. */
  readonly meshedHosts: () => ReadonlySet<string>;
  /** Hosts an operator removed. */
  readonly revokedHosts?: () => ReadonlySet<string>;
  readonly mesh: MeshConfig;
  readonly consulNamespace?: string;
  readonly logger: Logger;
  /** Key sets fetched for RequestAuthentication (JwksResolver); part of the model, so a new set is pushed. */
  readonly jwks?: () => ReadonlyMap<string, string>;
  /** Istio's debounce: 100 ms after the last change, at most 10 s after the first. */
  readonly debounce?: { readonly quietMs: number; readonly maxMs: number };
}

/**
 * Keeps the mesh model current: every source (config, registrations, Consul, health reports) calls
 * `trigger()`; bursts become one rebuild, and one change event per rebuild that changed anything.
 */
export class ModelBuilder {
  private model: MeshModel = { version: 0, services: new Map(), hosts: new Map() };
  private consul: ConsulSnapshot | undefined;
  private readonly listeners = new Set<(m: MeshModel) => void>();
  private readonly debouncer: Debouncer;
  private building: Promise<void> = Promise.resolve();
  private lastDigest = '';
  /** Config resources (VirtualService, policy...) change translation without changing services. */
  private configGeneration = 0;

  constructor(private readonly deps: ModelBuilderDeps) {
    const d = deps.debounce ?? { quietMs: 100, maxMs: 10_000 };
    this.debouncer = new Debouncer(() => void this.rebuild(), d.quietMs, d.maxMs);
    deps.config.onChange(() => {
      this.configGeneration++;
      this.trigger();
    });
  }

  current(): MeshModel {
    return this.model;
  }

  onChange(cb: (m: MeshModel) => void): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }

  setConsul(snapshot: ConsulSnapshot): void {
    this.consul = snapshot;
    this.trigger();
  }

  trigger(): void {
    this.debouncer.trigger();
  }

  stop(): void {
    this.debouncer.cancel();
  }

  /** Rebuilds now (serialised with any rebuild in flight); resolves with the model after it. */
  rebuild(): Promise<MeshModel> {
    this.building = this.building
      .then(() => this.doRebuild())
      .catch((e: unknown) => {
        this.deps.logger.error({ err: e }, 'mesh model rebuild failed; keeping the previous model');
      });
    return this.building.then(() => this.model);
  }

  private async doRebuild(): Promise<void> {
    const { config, health, mesh } = this.deps;
    const services = buildServices({
      mesh,
      serviceEntries: config.list('ServiceEntry') as Resource<'ServiceEntry'>[],
      workloadEntries: config.list('WorkloadEntry') as Resource<'WorkloadEntry'>[],
      ...(this.consul ? { consul: this.consul.services } : {}),
      consulNamespace: this.deps.consulNamespace ?? 'default',
      meshedHosts: this.deps.meshedHosts(),
      ...(this.deps.revokedHosts ? { revokedHosts: this.deps.revokedHosts() } : {}),
      hostState: (h) => health.hostState(h),
      workloadHealthy: (ns, n) => health.workloadHealthy(ns, n),
    });
    const vips = await this.deps.vips.sync(services.keys());
    const withVips = new Map<string, MeshService>();
    for (const [h, s] of [...services.entries()].sort(([a], [b]) => a.localeCompare(b))) {
      withVips.set(h, Object.freeze({ ...s, vip: vips.get(h) ?? '' }));
    }
    const hosts = new Map<string, HostStatus>(health.hosts().map((x) => [x.name, x]));
    const jwks = this.deps.jwks?.();
    const digest = JSON.stringify([
      this.configGeneration,
      [...withVips.values()],
      [...hosts.values()].map((x) => [x.name, x.live]),
      jwks ? [...jwks] : [],
    ]);
    if (digest === this.lastDigest) return;
    this.lastDigest = digest;
    this.model = Object.freeze({ version: this.model.version + 1, services: withVips, hosts, ...(jwks?.size ? { jwks } : {}) });
    this.deps.logger.debug({ version: this.model.version, services: withVips.size }, 'mesh model changed');
    for (const cb of this.listeners) cb(this.model);
  }
}
