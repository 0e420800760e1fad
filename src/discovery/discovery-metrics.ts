import { ErrorCode } from '../lib/errors.js';
import type { MetricsRegistry } from '../lib/metrics-registry.js';
import type { ConfigStore } from '../store/config-store.js';
import type { ConsulWatcher } from './consul-watcher.js';
import type { HealthTracker } from './health.js';
import type { ModelBuilder } from './model-builder.js';

/**
 * What discovery knows, as istiod names it where it has a name (pilot_services, pilot_virt_services) and as
 * vmesh_ metrics otherwise: Consul watch errors by error code, hosts by liveness.
 */
export function discoveryMetrics(
  registry: MetricsRegistry,
  d: { readonly model: ModelBuilder; readonly config: ConfigStore; readonly health: HealthTracker; readonly consul?: ConsulWatcher },
): void {
  registry.gauge('pilot_services', 'Services in the mesh model', [], () => [[[], d.model.current().services.size]]);
  registry.gauge('pilot_virt_services', 'VirtualService resources', [], () => [[[], d.config.list('VirtualService').length]]);
  registry.gauge('vmesh_hosts', 'Joined hosts that report to this controller, by state (live, silent)', ['state'], () => {
    const n = { live: 0, silent: 0 };
    for (const h of d.health.hosts()) {
      const s = d.health.hostState(h.name);
      if (s === 'live' || s === 'silent') n[s]++;
    }
    return Object.entries(n).map(([k, v]) => [[k], v] as const);
  });
  const errors = registry.counter('vmesh_consul_watch_errors_total', 'Failed Consul watch requests, by error code', ['code']);
  // Registered up front so a scrape shows 0 before the first error.
  if (d.consul) errors.get([ErrorCode.ConsulUnavailable]);
  d.consul?.onError((e) => {
    errors.get([e.code]).value++;
  });
}
