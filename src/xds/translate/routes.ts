import { type Endpoint, isHttpFamily, type MeshService, type Protocol } from '../../api/model.js';
import type { GatewaySpec, Resource } from '../../api/resource.js';
import { MESH_GATEWAY } from '../../api/resources/networking-virtual-service-check.js';
import { canonicalHost, hostMatches, splitMeshHost } from '../../api/service-hosts.js';
import type { Route } from '../../generated/envoy/config/route/v3/Route.js';
import type { RouteConfiguration } from '../../generated/envoy/config/route/v3/RouteConfiguration.js';
import type { VirtualHost } from '../../generated/envoy/config/route/v3/VirtualHost.js';
import { memoOn, memoOnKey } from '../../lib/memo.js';
import { inboundPorts } from './clusters.js';
import { endpointPort } from './endpoints.js';
import type { EnvoyResource, TranslateInput } from './input.js';
import { gatewayRouteName, inboundClusterName, inboundRouteName } from './names.js';
import { type OutboundRouteGroup, outboundRouteGroups } from './outbound-bindings.js';
import { CORS_FILTER, defaultRoute, FAULT_FILTER, inboundRoute, type RouteContext, translateRoute } from './route-action.js';
import { isCatchAll, type MatchContext, matchApplies, resolveGatewayName } from './route-match.js';
import { outboundTrafficMode } from './scope.js';

type VirtualService = Resource<'VirtualService'>;
type GatewayServer = GatewaySpec['servers'][number];

const byString = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
const byName = (a: EnvoyResource, b: EnvoyResource) => byString(a.name, b.name);

/** VirtualService exportTo, seen from a namespace (unset: everywhere, Istio's default). */
function visibleFrom(vs: VirtualService, namespace: string): boolean {
  const e = vs.spec.exportTo;
  if (!e || e.length === 0) return true;
  return e.some((x) => x === '*' || x === namespace || (x === '.' && vs.metadata.namespace === namespace));
}

function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * The names a client may send as Host for a service port: the hostname, the short name (for the node's own
 * namespace only, or two namespaces' services would claim it), `name.namespace`, the aliases and the VIP,
 * each bare and with `:port` (Envoy compares the Host header with its port).
 */
export function serviceDomains(input: TranslateInput, service: MeshService, port: number): string[] {
  const names = [service.hostname];
  const split = splitMeshHost(service.hostname, input.mesh);
  if (split) {
    if (split.namespace === input.node.namespace) names.push(split.name);
    names.push(`${split.name}.${split.namespace}`);
  }
  names.push(...service.aliases);
  if (service.vip) names.push(service.vip);
  return [...new Set(names.flatMap((n) => [n, hostPort(n, port)]))];
}

export interface IndexedVs {
  readonly vs: VirtualService;
  readonly hosts: readonly string[];
  readonly gateways: readonly string[];
}

export function indexVirtualServices(input: TranslateInput): IndexedVs[] {
  return input.config.virtualServices
    .filter((vs) => (vs.spec.http?.length ?? 0) > 0 && visibleFrom(vs, input.node.namespace))
    .map((vs) => ({
      vs,
      hosts: vs.spec.hosts.map((h) => canonicalHost(h, vs.metadata.namespace, input.mesh)),
      gateways: (vs.spec.gateways?.length ? vs.spec.gateways : [MESH_GATEWAY]).map((g) => resolveGatewayName(g, vs.metadata.namespace)),
    }));
}

/** Istio's choice for one service: the VirtualServices naming it exactly, else those with its most specific wildcard. */
export function virtualServicesFor(input: TranslateInput, service: MeshService, candidates: readonly IndexedVs[]): VirtualService[] {
  const names = new Set([service.hostname, ...service.aliases.map((a) => canonicalHost(a, service.namespace, input.mesh))]);
  const exact = candidates.filter((c) => c.hosts.some((h) => names.has(h)));
  if (exact.length > 0) return exact.map((c) => c.vs);
  const score = (c: IndexedVs) => Math.max(-1, ...c.hosts.filter((h) => hostMatches(h, service.hostname)).map((h) => h.length));
  const best = Math.max(-1, ...candidates.map(score));
  return best < 0 ? [] : candidates.filter((c) => score(c) === best).map((c) => c.vs);
}

/**
 * Routes of VirtualServices in order, each cut after its catch-all (nothing behind it is reachable); catch-alls
 * then move behind the other routes so a later VirtualService's specific routes still match (Istio's sort).
 */
export function virtualServiceRoutes(vss: readonly VirtualService[], base: Omit<RouteContext, 'vs'>, mctx: MatchContext): Route[] {
  const routes: Route[] = [];
  for (const vs of vss) {
    const ctx: RouteContext = { ...base, vs };
    let done = false;
    for (const [i, http] of (vs.spec.http ?? []).entries()) {
      const matches = http.match && http.match.length > 0 ? http.match : [undefined];
      for (const m of matches) {
        if (!matchApplies(m, vs.metadata.namespace, mctx)) continue;
        const r = translateRoute(http, m, ctx, `spec.http[${i}]`);
        routes.push(r);
        if (isCatchAll(r)) {
          done = true;
          break;
        }
      }
      if (done) break;
    }
  }
  return [...routes.filter((r) => !isCatchAll(r)), ...routes.filter(isCatchAll)];
}

/**
 * sourceLabels are checked against the node's workloads' labels (a proxyless client: its own LABELS), sourceNamespace
 * against the node's namespace.
 */
export function sidecarMatchContext(input: TranslateInput, port: number): MatchContext {
  return {
    port,
    gateways: new Set([MESH_GATEWAY]),
    labelSets: [input.node.labels, ...input.node.workloads.map((w) => w.labels)],
    namespaces: new Set([input.node.namespace]),
  };
}

/**
 * The route configuration of one service and port (`outboundRouteName`): a virtual host per service reached
 * through the owner's VIP:port listeners (usually the owner alone), with the routes of the mesh VirtualServices
 * for it, or a default route to its cluster. Under ALLOW_ANY the owner's virtual host also takes any other
 * Host: the client chose the service by the address it connected to (where Istio's catch-all virtual host
 * passes the request on to that address), so an odd Host header (a name from /etc/hosts) still reaches it;
 * REGISTRY_ONLY answers such a request 404, as Istio's blocks it.
 */
function outboundRouteConfig(input: TranslateInput, group: OutboundRouteGroup): EnvoyResource<RouteConfiguration> {
  return memoOnKey(outboundBuilt, input, group.name, () =>
    buildOutboundRouteConfig(
      input,
      group,
      memoOn(indexedVs, input, () => indexVirtualServices(input)),
    ),
  );
}

// The listeners ask for a route's features and the routes are built too: each config is made once per input.
const outboundBuilt = new WeakMap<TranslateInput, Map<string, EnvoyResource<RouteConfiguration>>>();
const indexedVs = new WeakMap<TranslateInput, IndexedVs[]>();

function buildOutboundRouteConfig(
  input: TranslateInput,
  group: OutboundRouteGroup,
  vss: readonly IndexedVs[],
): EnvoyResource<RouteConfiguration> {
  const port = group.port.number;
  const mesh = vss.filter((c) => c.gateways.includes(MESH_GATEWAY));
  const mctx = sidecarMatchContext(input, port);
  // Envoy refuses a route config naming a domain twice; the first service (by hostname) keeps it.
  const used = new Set<string>(['*']);
  const anyHost = outboundTrafficMode(input) === 'ALLOW_ANY';
  const virtualHosts: VirtualHost[] = [];
  for (const service of group.services) {
    const routes = virtualServiceRoutes(virtualServicesFor(input, service, mesh), { input, port, tls: false }, mctx);
    const domains = serviceDomains(input, service, port).filter((d) => !used.has(d));
    if (service === group.owner && anyHost) domains.push('*');
    if (domains.length === 0) continue;
    for (const d of domains) used.add(d);
    virtualHosts.push({
      name: `${service.hostname}:${port}`,
      domains,
      // A VirtualService with no route for this node and port leaves the service to its default route.
      routes: routes.length > 0 ? routes : [defaultRoute(input, service.hostname, port)],
    });
  }
  return { name: group.name, message: { name: group.name, virtual_hosts: virtualHosts } };
}

/** One RouteConfiguration per service and HTTP port the node reaches through an outbound listener. */
export function buildOutboundRoutes(input: TranslateInput): EnvoyResource<RouteConfiguration>[] {
  return [...outboundRouteGroups(input).values()].map((g) => outboundRouteConfig(input, g)).sort(byName);
}

/** A port one of this node's workloads serves, with the protocol a service it backs declares for it. */
export interface LocalPort {
  readonly workload: Endpoint;
  readonly port: number;
  readonly protocol: Protocol;
}

/**
 * The ports the node's workloads listen on, from the services they back (the endpoint's own port for the
 * service port's name, else targetPort, else the service port; services in hostname order, the first says
 * the protocol, as the inbound clusters decide), sorted by port then workload.
 */
export function localWorkloadPorts(input: TranslateInput): LocalPort[] {
  const out = new Map<string, LocalPort>();
  const services = [...input.model.services.values()].sort((a, b) => byString(a.hostname, b.hostname));
  for (const service of services) {
    for (const workload of input.node.workloads) {
      if (!service.endpoints.some((e) => e.workload === workload.workload && e.namespace === workload.namespace)) continue;
      for (const p of service.ports) {
        const port = endpointPort(workload, p);
        const key = `${port}/${workload.namespace}/${workload.workload}`;
        if (!out.has(key)) out.set(key, { workload, port, protocol: p.protocol });
      }
    }
  }
  return [...out.values()].sort((a, b) => a.port - b.port || byString(a.workload.workload, b.workload.workload));
}

/** The workload ports served over HTTP (sidecars only: gateways have no inbound side), as the inbound clusters see them. */
export function inboundHttpPorts(input: TranslateInput): number[] {
  if (input.node.mode !== 'sidecar') return [];
  return inboundPorts(input)
    .filter((p) => isHttpFamily(p.protocol))
    .map((p) => p.port);
}

/**
 * `inboundRouteName(port)` per HTTP port of the node's workloads (the ports and protocols the inbound clusters
 * and listener use): one virtual host for any Host, everything to the local workload's inbound cluster with no
 * timeout (the client's route owns timeouts and retries). Sidecars only: gateways have no inbound side.
 */
export function buildInboundRoutes(input: TranslateInput): EnvoyResource<RouteConfiguration>[] {
  return inboundHttpPorts(input)
    .map((port): EnvoyResource<RouteConfiguration> => {
      const name = inboundRouteName(port);
      const vhost = { name: `inbound|http|${port}`, domains: ['*'], routes: [inboundRoute(inboundClusterName(port))] };
      return { name, message: { name, virtual_hosts: [vhost], validate_clusters: { value: false } } };
    })
    .sort(byName);
}

function selects(selector: Readonly<Record<string, string>> | undefined, labels: Readonly<Record<string, string>>): boolean {
  return Object.entries(selector ?? {}).every(([k, v]) => labels[k] === v);
}

/** The Gateways whose selector matches this gateway node's labels (none unless the node is a gateway). */
export function gatewaysForNode(input: TranslateInput): Resource<'Gateway'>[] {
  if (input.node.mode !== 'gateway') return [];
  return input.config.gateways.filter((g) => selects(g.spec.selector, input.node.labels));
}

/**
 * The RouteConfiguration an HTTP-terminating Gateway server uses: `http.<port>` for plain HTTP servers (shared by
 * every server on the port), `https.<port>.<port name>.<gateway>.<namespace>` for HTTPS servers that terminate
 * TLS; undefined for TLS passthrough and TCP servers, which have no HTTP routes. The listeners use the same name.
 */
export function gatewayServerRouteName(gateway: Resource<'Gateway'>, server: GatewayServer): string | undefined {
  const protocol = server.port.protocol.toUpperCase();
  if (isHttpFamily(protocol)) return gatewayRouteName('http', server.port.number);
  const mode = server.tls?.mode ?? 'PASSTHROUGH';
  if (protocol !== 'HTTPS' || mode === 'PASSTHROUGH' || mode === 'AUTO_PASSTHROUGH') return undefined;
  return gatewayRouteName('https', server.port.number, `${server.port.name}.${gateway.metadata.name}.${gateway.metadata.namespace}`);
}

/** A server host `[namespace/]name`: the namespace limits which namespaces' VirtualServices may bind to it. */
function serverHostAllows(host: string, gateway: Resource<'Gateway'>, vsNamespace: string): { name: string } | undefined {
  const slash = host.indexOf('/');
  const ns = slash >= 0 ? host.slice(0, slash) : '*';
  const name = (slash >= 0 ? host.slice(slash + 1) : host).toLowerCase();
  if (ns === '*' || ns === vsNamespace || (ns === '.' && gateway.metadata.namespace === vsNamespace)) return { name };
  return undefined;
}

interface GatewayVhost {
  readonly host: string;
  routes: Route[];
  requireTls: boolean;
}

/** The virtual hosts of the servers sharing one gateway route config: per host, the bound VirtualServices' routes. */
function gatewayVirtualHosts(input: TranslateInput, servers: readonly { gateway: Resource<'Gateway'>; server: GatewayServer }[]) {
  const vss = indexVirtualServices(input);
  const byHost = new Map<string, GatewayVhost>();
  for (const { gateway, server } of servers) {
    const gwName = `${gateway.metadata.namespace}/${gateway.metadata.name}`;
    const port = server.port.number;
    const mctx: MatchContext = {
      port,
      gateways: new Set([gwName]),
      labelSets: [input.node.labels],
      namespaces: new Set([input.node.namespace]),
    };
    const tls = server.port.protocol.toUpperCase() === 'HTTPS';
    const hosts = new Map<string, VirtualService[]>();
    for (const c of vss.filter((v) => v.gateways.includes(gwName))) {
      for (const sh of server.hosts) {
        const allowed = serverHostAllows(sh, gateway, c.vs.metadata.namespace);
        if (!allowed) continue;
        const pattern = canonicalHost(allowed.name, gateway.metadata.namespace, input.mesh);
        c.vs.spec.hosts.forEach((vh, i) => {
          const h = c.hosts[i] ?? '';
          // The vhost is the narrower of the two names, spelled as its author wrote it.
          const host = hostMatches(pattern, h) ? vh.toLowerCase() : hostMatches(h, pattern) ? allowed.name : undefined;
          if (host === undefined) return;
          const list = hosts.get(host) ?? [];
          if (!list.includes(c.vs)) list.push(c.vs);
          hosts.set(host, list);
        });
      }
    }
    for (const [host, list] of hosts) {
      const routes = virtualServiceRoutes(list, { input, port, tls }, mctx);
      if (routes.length === 0) continue;
      const vh = byHost.get(host) ?? { host, routes: [], requireTls: false };
      vh.routes.push(...routes);
      vh.requireTls ||= server.tls?.httpsRedirect === true;
      byHost.set(host, vh);
    }
  }
  return [...byHost.values()].sort((a, b) => byString(a.host, b.host));
}

function gatewayRouteConfig(
  input: TranslateInput,
  name: string,
  servers: readonly { gateway: Resource<'Gateway'>; server: GatewayServer }[],
): EnvoyResource<RouteConfiguration> {
  const port = servers[0]?.server.port.number ?? 0;
  const used = new Set<string>();
  const virtualHosts: VirtualHost[] = [];
  for (const vh of gatewayVirtualHosts(input, servers)) {
    const domains = (vh.host === '*' ? ['*'] : [vh.host, hostPort(vh.host, port)]).filter((d) => !used.has(d));
    if (domains.length === 0) continue;
    for (const d of domains) used.add(d);
    virtualHosts.push({
      name: `${vh.host}:${port}`,
      domains,
      routes: [...vh.routes.filter((r) => !isCatchAll(r)), ...vh.routes.filter(isCatchAll)],
      ...(vh.requireTls ? { require_tls: 'ALL' } : {}),
    });
  }
  if (virtualHosts.length === 0) {
    // No VirtualService binds here: answer 404 rather than leave the listener without a route config.
    virtualHosts.push({
      name: `blackhole:${port}`,
      domains: ['*'],
      routes: [{ name: 'default', match: { prefix: '/' }, direct_response: { status: 404 } }],
    });
  }
  return { name, message: { name, virtual_hosts: virtualHosts } };
}

function gatewayServersByRoute(input: TranslateInput) {
  const byRoute = new Map<string, { gateway: Resource<'Gateway'>; server: GatewayServer }[]>();
  for (const gateway of gatewaysForNode(input)) {
    for (const server of gateway.spec.servers) {
      const name = gatewayServerRouteName(gateway, server);
      if (name === undefined) continue;
      byRoute.set(name, [...(byRoute.get(name) ?? []), { gateway, server }]);
    }
  }
  return byRoute;
}

/**
 * Gateway mode: one RouteConfiguration per HTTP-terminating server route name (see gatewayServerRouteName),
 * with a virtual host per host the server and a bound VirtualService share; a 404 virtual host when none binds.
 */
export function buildGatewayRoutes(input: TranslateInput): EnvoyResource<RouteConfiguration>[] {
  return [...gatewayServersByRoute(input)].map(([name, servers]) => gatewayRouteConfig(input, name, servers)).sort(byName);
}

/** Which per-route filter configs the routes behind an HCM use: the filter chain must carry those filters. */
export interface RouteFeatures {
  readonly fault: boolean;
  readonly cors: boolean;
}

function featuresOf(configs: readonly EnvoyResource<RouteConfiguration>[]): RouteFeatures {
  let fault = false;
  let cors = false;
  for (const c of configs) {
    for (const vh of c.message.virtual_hosts ?? []) {
      for (const r of vh.routes ?? []) {
        const pf = r.typed_per_filter_config ?? {};
        fault ||= FAULT_FILTER in pf;
        cors ||= CORS_FILTER in pf;
      }
    }
  }
  return { fault, cors };
}

const featureCache = new WeakMap<TranslateInput, Map<string, RouteFeatures>>();

/**
 * Features of an outbound route config (`route`: its name), or of the gateway route configs on `port`; cached
 * per input.
 */
export function routeFeatures(input: TranslateInput, direction: 'outbound' | 'gateway', port: number, route = ''): RouteFeatures {
  return memoOnKey(featureCache, input, `${direction}/${port}/${route}`, () =>
    featuresOf(
      direction === 'outbound'
        ? [outboundRouteGroups(input).get(route)].filter((g) => g !== undefined).map((g) => outboundRouteConfig(input, g))
        : [...gatewayServersByRoute(input)]
            .filter(([, servers]) => servers.some((s) => s.server.port.number === port))
            .map(([name, servers]) => gatewayRouteConfig(input, name, servers)),
    ),
  );
}
