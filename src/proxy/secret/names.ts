import type { ProxyConfig } from '../proxy-config.js';

/** Every SDS secret a compiled config refers to: what the agent's SDS must hold for it to serve. */
export function secretNames(config: ProxyConfig): Set<string> {
  const names = new Set<string>();
  const add = (n: string | undefined) => {
    if (n) names.add(n);
  };
  for (const l of config.listeners.values()) {
    for (const c of [...l.filterChains, ...(l.defaultChain ? [l.defaultChain] : [])]) {
      add(c.tls?.certSecret);
      add(c.tls?.caSecret);
    }
  }
  for (const c of config.clusters.values()) {
    for (const t of [c.tls, c.meshTls]) {
      add(t?.certSecret);
      add(t?.caSecret);
    }
  }
  return names;
}
