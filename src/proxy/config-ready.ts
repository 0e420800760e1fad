import type { ProxyConfig } from './proxy-config.js';

/**
 * Whether every route table an HTTP listener names is present. xDS types arrive one response at a time: a
 * listener applied before its RDS would answer 404, so a proxy warms it first, as Envoy does.
 */
export function routesReady(config: ProxyConfig): boolean {
  for (const l of config.listeners.values()) {
    for (const c of [...l.filterChains, ...(l.defaultChain ? [l.defaultChain] : [])]) {
      if (c.action.kind === 'http' && !config.routes.has(c.action.routeConfig)) return false;
    }
  }
  return true;
}
