import { isHttpFamily, type MeshService, type ServicePort } from '../../api/model.js';
import { MESH_GATEWAY } from '../../api/resources/networking-virtual-service-check.js';
import type { Cluster } from '../../generated/envoy/config/cluster/v3/Cluster.js';
import type { Listener } from '../../generated/envoy/config/listener/v3/Listener.js';
import type { Route } from '../../generated/envoy/config/route/v3/Route.js';
import type { RouteConfiguration } from '../../generated/envoy/config/route/v3/RouteConfiguration.js';
import type { HttpConnectionManager } from '../../generated/envoy/extensions/filters/network/http_connection_manager/v3/HttpConnectionManager.js';
import { memoOn } from '../../lib/memo.js';
import { CDS, EDS, LDS } from '../type-urls.js';
import { ROUTER_FILTER } from './http-filters.js';
import type { EnvoyResource, TranslateInput } from './input.js';
import { outboundClusterName, proxylessListenerName } from './names.js';
import { grpcRoute, usesFault } from './proxyless-routes.js';
import { defaultRoute, FAULT_FILTER } from './route-action.js';
import {
  type IndexedVs,
  indexVirtualServices,
  serviceDomains,
  sidecarMatchContext,
  virtualServiceRoutes,
  virtualServicesFor,
} from './routes.js';
import { typedConfig } from './typed-config.js';

/**
 * Proxyless gRPC clients (`xds:///reviews.default.mesh:9080`) ask LDS for the target's `host:port` and expect an
 * ApiListener whose HttpConnectionManager names a route config over RDS. Every name vmesh gives a service port
 * (hostname, `name.namespace`, the short name in the client's namespace, the DNS aliases such as
 * `name.namespace.svc.cluster.local`, the VIP) has its listener, all naming the one route config of the port.
 */

interface ProxylessPort {
  readonly service: MeshService;
  readonly port: ServicePort;
  /** The route config's name: `hostname:port`. */
  readonly name: string;
}

const byString = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

function servicePorts(input: TranslateInput): ProxylessPort[] {
  const out = new Map<string, ProxylessPort>();
  for (const service of input.services) {
    for (const port of service.ports) {
      const name = proxylessListenerName(service.hostname, port.number);
      if (isHttpFamily(port.protocol) && !out.has(name)) out.set(name, { service, port, name });
    }
  }
  return [...out.values()].sort((a, b) => byString(a.name, b.name));
}

/** The names a gRPC target may use for a service port, `hostname:port` first: the sidecar's Host names. */
function domains(input: TranslateInput, p: ProxylessPort): string[] {
  return [...new Set([p.name, ...serviceDomains(input, p.service, p.port.number)])];
}

/** Listener names (`name:port`) of a port: its domains with a port that a target could spell (no CIDRs). */
function listenerNames(input: TranslateInput, p: ProxylessPort): string[] {
  const suffix = `:${p.port.number}`;
  return domains(input, p).filter((d) => d.endsWith(suffix) && !d.includes('/') && !d.includes('*') && !d.startsWith('['));
}

/** The routes of one port: the mesh VirtualServices' for the service, as the sidecar builds them, in gRPC's terms. */
function portRoutes(input: TranslateInput, p: ProxylessPort, vss: readonly IndexedVs[]): Route[] {
  const port = p.port.number;
  const mesh = vss.filter((c) => c.gateways.includes(MESH_GATEWAY));
  const routes = virtualServiceRoutes(
    virtualServicesFor(input, p.service, mesh),
    { input, port, tls: false },
    sidecarMatchContext(input, port),
  );
  const cluster = outboundClusterName(port, '', p.service.hostname);
  const grpc = routes.map((r) => grpcRoute(r, cluster)).filter((r): r is Route => r !== undefined);
  // A VirtualService with no route gRPC can take leaves the service to its default route, as for sidecars.
  if (grpc.length > 0) return grpc;
  const fallback = grpcRoute(defaultRoute(input, p.service.hostname, port), cluster);
  return fallback ? [fallback] : [];
}

/** One RouteConfiguration per HTTP/gRPC service port (RDS), named `hostname:port`, with one virtual host. */
function routeConfigs(input: TranslateInput): Array<{ port: ProxylessPort; message: RouteConfiguration; fault: boolean }> {
  return memoOn(configsOf, input, () => {
    const vss = indexVirtualServices(input);
    return servicePorts(input).map((p) => {
      const routes = portRoutes(input, p, vss);
      const message = { name: p.name, virtual_hosts: [{ name: p.name, domains: domains(input, p), routes }] };
      return { port: p, message, fault: usesFault(routes) };
    });
  });
}

const configsOf = new WeakMap<TranslateInput, Array<{ port: ProxylessPort; message: RouteConfiguration; fault: boolean }>>();

function apiListener(name: string, hcm: HttpConnectionManager): EnvoyResource<Listener> {
  return { name, message: { name, api_listener: { api_listener: typedConfig('httpConnectionManager', hcm) } } };
}

/**
 * The ApiListeners of a proxyless node (LDS), sorted by name, each naming its port's route config. A name two
 * services could claim (a short name, an alias) belongs to the first by hostname, as in the DNS name table.
 */
export function buildProxylessListeners(input: TranslateInput): EnvoyResource<Listener>[] {
  const out = new Map<string, EnvoyResource<Listener>>();
  for (const { port, fault } of routeConfigs(input)) {
    const filters = [
      ...(fault ? [{ name: FAULT_FILTER, typed_config: typedConfig('fault', {}) }] : []),
      { name: ROUTER_FILTER, typed_config: typedConfig('router', {}) },
    ];
    const hcm: HttpConnectionManager = {
      rds: { config_source: { ads: {}, resource_api_version: 'V3' }, route_config_name: port.name },
      http_filters: filters,
    };
    for (const name of listenerNames(input, port)) {
      if (!out.has(name)) out.set(name, apiListener(name, { stat_prefix: name, ...hcm }));
    }
  }
  return [...out.values()].sort((a, b) => byString(a.name, b.name));
}

/** The route configurations of a proxyless node (RDS), one per HTTP/gRPC service port, sorted by name. */
export function buildProxylessRoutes(input: TranslateInput): EnvoyResource<RouteConfiguration>[] {
  return routeConfigs(input).map(({ port, message }) => ({ name: port.name, message }));
}

/**
 * What a proxyless client asking for a listener no service has gets: an ApiListener whose inline route config has
 * a virtual host with no routes. gRPC resolves the name and fails each call at once with UNAVAILABLE (A28: no
 * route matches), and nothing is rejected (NACKed). Left out of the response, the name would wait for gRPC's 15 s
 * does-not-exist timer, and grpc-js (1.14) keeps calls queued on that resolution error until their deadline.
 */
export function unknownProxylessListener(name: string): EnvoyResource<Listener> {
  const vhost = { name: `no mesh service answers to ${name}`, domains: ['*'], routes: [] };
  return apiListener(name, {
    stat_prefix: name,
    route_config: { name: `no mesh service answers to ${name}`, virtual_hosts: [vhost] },
    http_filters: [{ name: ROUTER_FILTER, typed_config: typedConfig('router', {}) }],
  });
}

/**
 * Stand-ins for what a proxyless client names and its snapshot lacks: the listener above; for a cluster (a route
 * to a subset no DestinationRule defines yet), an EDS cluster with no endpoints, so calls routed there fail
 * UNAVAILABLE at once, as a sidecar answers 503 for a missing cluster, instead of holding the client's whole
 * route update for the 15 s does-not-exist timer.
 */
export function proxylessStandIn(typeUrl: string, name: string): EnvoyResource | undefined {
  if (typeUrl === LDS) return unknownProxylessListener(name);
  if (typeUrl === CDS) {
    const cluster: Cluster = {
      name,
      type: 'EDS',
      eds_cluster_config: { service_name: name, eds_config: { ads: {}, resource_api_version: 'V3' } },
      lb_policy: 'ROUND_ROBIN',
    };
    return { name, message: cluster };
  }
  if (typeUrl === EDS) return { name, message: { cluster_name: name, endpoints: [] } };
  return undefined;
}
