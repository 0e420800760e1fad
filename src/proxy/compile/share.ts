import type { ClusterConfig, FilterChain, ListenerConfig, LocalRateLimit, ProxyConfig, Route, RouteTable } from '../proxy-config.js';

/**
 * Worker `index`'s share of a host's budgets when the proxy runs as `count` processes: circuit-breaker limits and
 * local rate limits are divided so the host's total matches the config (connections spread over the workers).
 * Outlier detection and health checks stay per worker.
 */
export function shareAmongWorkers(config: ProxyConfig, count: number, index = 0): ProxyConfig {
  if (count <= 1) return config;
  // Worker `index` of `count`: the shares add up to exactly n (the first n % count workers take one more).
  const exact = (n: number) => (n >= 2 ** 31 ? n : Math.floor(n / count) + (index < n % count ? 1 : 0));
  // A breaker of 0 would refuse everything on that worker: never below one.
  const part = (n: number) => Math.max(1, exact(n));
  const clusters = new Map<string, ClusterConfig>();
  for (const [name, c] of config.clusters) {
    const b = c.circuitBreaker;
    clusters.set(name, {
      ...c,
      circuitBreaker: {
        maxConnections: part(b.maxConnections),
        maxPendingRequests: part(b.maxPendingRequests),
        maxRequests: part(b.maxRequests),
        maxRetries: part(b.maxRetries),
      },
    });
  }
  // Each worker refills as often times slower: the host's rate stays tokensPerFill per interval.
  const bucket = (rl: LocalRateLimit): LocalRateLimit => ({
    ...rl,
    maxTokens: exact(rl.maxTokens),
    fillIntervalMs: rl.fillIntervalMs * count,
  });
  const chain = (fc: FilterChain): FilterChain => {
    if (fc.action.kind !== 'http' || !fc.action.filters.rateLimit) return fc;
    const rateLimit = bucket(fc.action.filters.rateLimit);
    return { ...fc, action: { ...fc.action, filters: { ...fc.action.filters, rateLimit } } };
  };
  const route = (r: Route): Route => {
    const rl = r.rateLimit;
    if (!rl) return r;
    const descriptors = rl.descriptors.map((d) => ({ ...d, bucket: bucket(d.bucket) }));
    return { ...r, rateLimit: { ...rl, ...(rl.bucket ? { bucket: bucket(rl.bucket) } : {}), descriptors } };
  };
  const routes = new Map<string, RouteTable>();
  for (const [name, t] of config.routes) {
    const limited = t.virtualHosts.some((vh) => vh.routes.some((r) => r.rateLimit));
    routes.set(name, limited ? { ...t, virtualHosts: t.virtualHosts.map((vh) => ({ ...vh, routes: vh.routes.map(route) })) } : t);
  }
  const listeners = new Map<string, ListenerConfig>();
  for (const [name, l] of config.listeners) {
    listeners.set(name, {
      ...l,
      filterChains: l.filterChains.map(chain),
      ...(l.defaultChain ? { defaultChain: chain(l.defaultChain) } : {}),
    });
  }
  const virtualByAddress = new Map<string, ListenerConfig>();
  for (const [key, l] of config.virtualByAddress) virtualByAddress.set(key, listeners.get(l.name) ?? l);
  return { ...config, clusters, listeners, virtualByAddress, routes };
}
