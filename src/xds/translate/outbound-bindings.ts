import { isHttpFamily, type MeshService, type ServicePort } from '../../api/model.js';
import type { TranslateInput } from './input.js';
import { outboundListenerName, outboundRouteName } from './names.js';
import { ipv6Vips } from './service-addresses.js';

/** One outbound VIP:port listener and the service that owns it (the first, by hostname, with that address and port). */
export interface OutboundBinding {
  readonly listener: string;
  readonly address: string;
  readonly port: ServicePort;
  readonly owner: MeshService;
}

/** An outbound HTTP route configuration: its owner's, holding the virtual hosts of every service on its listeners. */
export interface OutboundRouteGroup {
  readonly name: string;
  /** The owner's port (an HTTP-family protocol). */
  readonly port: ServicePort;
  readonly owner: MeshService;
  /** Services reached through the owner's listeners on this port, in hostname order, the owner first. */
  readonly services: readonly MeshService[];
}

interface Bindings {
  readonly listeners: readonly OutboundBinding[];
  readonly routes: ReadonlyMap<string, OutboundRouteGroup>;
}

const cache = new WeakMap<readonly MeshService[], Bindings>();

function addressesOf(service: MeshService): string[] {
  return service.vip ? [service.vip, ...ipv6Vips(service)] : [];
}

/**
 * The outbound listeners and their route configurations, computed once per scoped service list. A route
 * configuration belongs to one service and port (`host:port`, as Istio names a listener's own route), so a
 * change to one service re-sends only its own route, not a port-wide table; services that share an address
 * (a ServiceEntry's hosts on one `addresses` entry) share their owner's route, told apart by Host.
 */
function bindingsOf(input: TranslateInput): Bindings {
  const hit = cache.get(input.services);
  if (hit) return hit;
  const owners = new Map<string, OutboundBinding>();
  const byAddressPort = new Map<string, MeshService[]>();
  for (const service of input.services) {
    for (const address of addressesOf(service)) {
      for (const port of service.ports) {
        if (port.number <= 0) continue;
        const listener = outboundListenerName(address, port.number);
        if (!owners.has(listener)) owners.set(listener, { listener, address, port, owner: service });
        const sharing = byAddressPort.get(listener);
        if (sharing) sharing.push(service);
        else byAddressPort.set(listener, [service]);
      }
    }
  }
  const routes = new Map<string, { name: string; port: ServicePort; owner: MeshService; services: MeshService[] }>();
  for (const b of owners.values()) {
    if (!isHttpFamily(b.port.protocol)) continue;
    const name = outboundRouteName(b.owner.hostname, b.port.number);
    let group = routes.get(name);
    if (!group) {
      group = { name, port: b.port, owner: b.owner, services: [] };
      routes.set(name, group);
    }
    for (const s of byAddressPort.get(b.listener) ?? []) {
      const p = s.ports.find((x) => x.number === b.port.number);
      if (p && isHttpFamily(p.protocol) && !group.services.includes(s)) group.services.push(s);
    }
  }
  for (const g of routes.values()) g.services.sort((a, b) => (a === g.owner ? -1 : b === g.owner ? 1 : a.hostname < b.hostname ? -1 : 1));
  const out = { listeners: [...owners.values()], routes };
  cache.set(input.services, out);
  return out;
}

export function outboundBindings(input: TranslateInput): readonly OutboundBinding[] {
  return bindingsOf(input).listeners;
}

export function outboundRouteGroups(input: TranslateInput): ReadonlyMap<string, OutboundRouteGroup> {
  return bindingsOf(input).routes;
}
