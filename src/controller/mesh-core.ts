import type { MeshConfig } from '../api/mesh-config.js';
import { type CertificateAuthority, HostRegistry, IssuedCertificates, TokenService } from '../ca/index.js';
import type { ControllerConfig } from '../config/controller.js';
import { HealthTracker } from '../discovery/health.js';
import { JwksResolver } from '../discovery/jwks-resolver.js';
import { ModelBuilder } from '../discovery/model-builder.js';
import { VipAllocator } from '../discovery/vip-allocator.js';
import { VmRegistry } from '../discovery/workload-registry.js';
import type { Logger } from '../lib/logger.js';
import { ConfigStore } from '../store/config-store.js';
import type { Store } from '../store/store.js';
import { seenElsewhere } from './state.js';

/** What the controller knows, over its store: tokens, hosts, config, health, the registry and the model built from them. */
export interface MeshCore {
  readonly tokens: TokenService;
  readonly hosts: HostRegistry;
  readonly issued: IssuedCertificates;
  readonly config: ConfigStore;
  readonly health: HealthTracker;
  readonly model: ModelBuilder;
  readonly registry: VmRegistry;
  readonly jwks: JwksResolver;
}

export function meshCore(d: {
  readonly cfg: ControllerConfig;
  readonly mesh: MeshConfig;
  readonly store: Store;
  readonly shared: Store | undefined;
  readonly ca: CertificateAuthority;
  readonly logger: Logger;
}): MeshCore {
  const { cfg, mesh, store, shared } = d;
  const hosts = new HostRegistry(store);
  const config = new ConfigStore(store, mesh);
  // The model reads health, and a health change rebuilds the model: the tracker's callback is bound once the model exists.
  let healthChanged = () => {};
  const health = new HealthTracker({
    hostTimeoutMs: cfg.hostTimeoutSeconds * 1000,
    onChange: () => healthChanged(),
    ...(shared ? { seenElsewhere: seenElsewhere(hosts) } : {}),
  });
  const hostNames = (revoked: boolean) =>
    new Set(
      hosts
        .list()
        .filter((h) => !!h.revoked === revoked)
        .map((h) => h.name),
    );
  // The resolver's sets are part of the model, and a new set rebuilds it: bound once the model exists.
  let jwksChanged = () => {};
  const jwks = new JwksResolver({ config, logger: d.logger.child({ component: 'jwks' }), onChange: () => jwksChanged() });
  const model = new ModelBuilder({
    config,
    jwks: () => jwks.current(),
    vips: new VipAllocator(store),
    health,
    meshedHosts: () => hostNames(false),
    revokedHosts: () => hostNames(true),
    mesh,
    logger: d.logger.child({ component: 'model' }),
  });
  healthChanged = () => model.trigger();
  jwksChanged = () => model.trigger();
  const registry = new VmRegistry(config, health, (h) => {
    const facts = hosts.get(h)?.facts;
    return facts?.ipv4[0] ?? facts?.ipv6[0];
  });
  return { tokens: new TokenService(store, d.ca), hosts, issued: new IssuedCertificates(), config, health, model, registry, jwks };
}
