import { splitMeshHost } from '../../api/hosts.js';
import type { MeshService, ServicePort } from '../../api/model.js';
import { TypedConfigUrl } from '../type-urls.js';
import type { EnvoyResource, TranslateInput } from './input.js';
import { outboundClusterName, proxylessListenerName } from './names.js';

/**
 * Proxyless gRPC clients (`xds:///reviews.default.mesh:9080`) ask LDS for `host:port` and expect an ApiListener
 * whose HttpConnectionManager names a route config over RDS; they run only the router filter.
 */

type Json = Record<string, unknown>;

function isProxylessPort(p: ServicePort): boolean {
  return p.protocol === 'HTTP' || p.protocol === 'HTTP2' || p.protocol === 'GRPC';
}

function servicePorts(input: TranslateInput): Array<{ service: MeshService; port: ServicePort; name: string }> {
  const out = new Map<string, { service: MeshService; port: ServicePort; name: string }>();
  for (const service of input.services) {
    for (const port of service.ports) {
      const name = proxylessListenerName(service.hostname, port.number);
      if (isProxylessPort(port) && !out.has(name)) out.set(name, { service, port, name });
    }
  }
  return [...out.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** The ApiListeners of a proxyless node (LDS), sorted by name; their route configs have the same names. */
export function buildProxylessListeners(input: TranslateInput): EnvoyResource[] {
  return servicePorts(input).map(({ name }) => ({
    name,
    message: {
      name,
      api_listener: {
        api_listener: {
          '@type': TypedConfigUrl.httpConnectionManager,
          stat_prefix: name,
          rds: { config_source: { ads: {}, resource_api_version: 'V3' }, route_config_name: name },
          http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': TypedConfigUrl.router } }],
        },
      },
    },
  }));
}

/** The names a gRPC target may use for a service port: `hostname:port` first (what the listener is named by). */
function domains(input: TranslateInput, service: MeshService, port: number): string[] {
  const names = [service.hostname];
  const split = splitMeshHost(service.hostname, input.mesh);
  if (split) {
    if (split.namespace === input.node.namespace) names.push(split.name);
    names.push(`${split.name}.${split.namespace}`);
  }
  names.push(...service.aliases);
  if (service.vip) names.push(service.vip);
  const all = [`${service.hostname}:${port}`, ...names.flatMap((n) => [n, `${n}:${port}`])];
  return [...new Set(all)];
}

/** One RouteConfiguration per ApiListener (RDS): a single virtual host sending everything to the service port's cluster. */
export function buildProxylessRoutes(input: TranslateInput): EnvoyResource[] {
  return servicePorts(input).map(({ service, port, name }) => {
    const route: Json = { match: { prefix: '' }, route: { cluster: outboundClusterName(port.number, '', service.hostname) } };
    return { name, message: { name, virtual_hosts: [{ name, domains: domains(input, service, port.number), routes: [route] }] } };
  });
}
