import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { socketAddr, toOrigDst, toRemote } from '../../../../src/lib/addr.js';
import { compileProxyConfig, parseFileSecretName } from '../../../../src/proxy/compile/index.js';
import { shareAmongWorkers } from '../../../../src/proxy/compile/share.js';
import { evaluateRbac } from '../../../../src/proxy/match/rbac-eval.js';
import { matchRoute, type RequestView, selectVirtualHost } from '../../../../src/proxy/match/route-match.js';
import type {
  ClusterConfig,
  FilterChain,
  ListenerConfig,
  NetworkAction,
  ProxyConfig,
  Route,
  RouteTable,
} from '../../../../src/proxy/proxy-config.js';
import type { AppliedConfig } from '../../../../src/xds/agent-sync.js';
import { decodeAnyDeep } from '../../../../src/xds/decode-deep.js';
import { makeSnapshot } from '../../../../src/xds/snapshot.js';
import { translateNode } from '../../../../src/xds/translate/index.js';
import { CDS, EDS, LDS, RDS, TypedConfigUrl } from '../../../../src/xds/type-urls.js';
import { bookinfoInput } from '../../xds/translate/fixture.js';

type NodeId = 'h1' | 'h2' | 'gw' | 'grpc';
type Msg = Record<string, unknown>;

/** The translator's output for a fixture node, through encode/decode, as the agent applies it. */
function appliedFor(node: NodeId): AppliedConfig {
  const byType = translateNode(bookinfoInput(node));
  const snap = makeSnapshot('v1', byType);
  const resources: Record<string, Record<string, unknown>> = {};
  for (const t of [CDS, EDS, LDS, RDS]) {
    const m = snap.resources.get(t) ?? new Map();
    resources[t] = Object.fromEntries([...m].map(([name, r]) => [name, decodeAnyDeep(r.any)]));
  }
  return { versions: { [CDS]: 'c1', [EDS]: 'e1', [LDS]: 'l1', [RDS]: 'r1' }, resources, updatedAt: new Date(0).toISOString() };
}

const cache = new Map<NodeId, ProxyConfig>();
function compiled(node: NodeId): ProxyConfig {
  let c = cache.get(node);
  if (!c) {
    const r = compileProxyConfig(appliedFor(node));
    if (!r.ok) assert.fail(`${node}: ${r.error}`);
    c = r.value;
    cache.set(node, c);
  }
  return c;
}

function cluster(node: NodeId, name: string): ClusterConfig {
  const c = compiled(node).clusters.get(name);
  assert.ok(c, `${node}: no cluster ${name}`);
  return c;
}

function listener(node: NodeId, name: string): ListenerConfig {
  const l = compiled(node).listeners.get(name);
  assert.ok(l, `${node}: no listener ${name}`);
  return l;
}

function table(node: NodeId, name: string): RouteTable {
  const t = compiled(node).routes.get(name);
  assert.ok(t, `${node}: no route table ${name}`);
  return t;
}

function request(over: Partial<RequestView> & { headers?: Record<string, string> } = {}): RequestView {
  const headers = over.headers ?? {};
  return {
    method: over.method ?? 'GET',
    path: over.path ?? '/',
    authority: over.authority ?? 'example',
    scheme: over.scheme ?? 'http',
    header: (n) => headers[n],
  };
}

function routeFor(node: NodeId, tableName: string, req: RequestView): Route {
  const vh = selectVirtualHost(table(node, tableName), req.authority);
  assert.ok(vh, `no virtual host for ${req.authority}`);
  const r = matchRoute(vh, req);
  assert.ok(r, `no route for ${req.path}`);
  return r;
}

type Forward = Extract<Route['action'], { kind: 'forward' }>;
function forward(r: Route): Forward {
  assert.equal(r.action.kind, 'forward');
  return r.action as Forward;
}

function httpAction(c: FilterChain): Extract<NetworkAction, { kind: 'http' }> {
  assert.equal(c.action.kind, 'http', `chain ${c.name}`);
  return c.action as Extract<NetworkAction, { kind: 'http' }>;
}

describe('compileProxyConfig: the translator output for every fixture node', () => {
  test('all four nodes compile, with versions from every type', () => {
    for (const node of ['h1', 'h2', 'gw', 'grpc'] as const) assert.ok(compiled(node).clusters.size > 0, node);
    assert.equal(compiled('h1').version, 'c1/e1/l1/r1');
  });

  test('h1 reviews clusters follow the DestinationRule: LEAST_REQUEST, and the v2 subset hashes (RING_HASH)', () => {
    const v1 = cluster('h1', 'outbound|9080|v1|reviews.default.mesh');
    assert.equal(v1.lb, 'LEAST_REQUEST');
    assert.equal(v1.discovery, 'EDS');
    const v2 = cluster('h1', 'outbound|9080|v2|reviews.default.mesh');
    assert.equal(v2.lb, 'RING_HASH');
    assert.equal(v2.ringSize, 1024);
    // Split over two workers, each holds half of every circuit-breaker budget (rounded up).
    assert.deepEqual(shareAmongWorkers(compiled('h1'), 2).clusters.get(v1.name)?.circuitBreaker, {
      maxConnections: 50,
      maxPendingRequests: 25,
      maxRequests: 100,
      maxRetries: 2,
    });
    assert.equal(shareAmongWorkers(compiled('h1'), 2, 1).clusters.get(v1.name)?.circuitBreaker.maxRetries, 1);
    for (const c of [v1, v2]) {
      assert.deepEqual(c.circuitBreaker, { maxConnections: 100, maxPendingRequests: 50, maxRequests: 200, maxRetries: 3 });
      assert.equal(c.connectTimeoutMs, 2000);
      assert.equal(c.maxRequestsPerConnection, 10);
      assert.equal(c.http2, false);
      assert.deepEqual(c.outlier, {
        consecutive5xx: 5,
        consecutiveGatewayErrors: 0,
        intervalMs: 10_000,
        baseEjectionMs: 30_000,
        maxEjectionPercent: 50,
      });
      assert.deepEqual(c.healthCheck, {
        intervalMs: 5000,
        timeoutMs: 1000,
        healthyThreshold: 2,
        unhealthyThreshold: 3,
        http: { path: '/health', host: 'reviews.default.mesh', expectedStatuses: [200] },
      });
      assert.equal(c.tls, undefined);
    }
    assert.deepEqual(v2.meshTls, {
      sni: 'outbound_.9080_.v2_.reviews.default.mesh',
      certSecret: 'default',
      caSecret: 'ROOTCA',
      peerSans: ['spiffe://cluster.local/ns/default/sa/reviews'],
      alpn: ['istio-peer-exchange', 'istio'],
    });
    assert.deepEqual(
      v2.endpoints.map((e) => [e.address, e.port, e.weight, e.healthy, e.mtls, e.locality]),
      [['198.18.0.12', 9081, 2, true, true, 'eu-west/b/']],
    );
  });

  test('EDS endpoints carry locality priorities relative to the node (outlier detection on: failover)', () => {
    const all = cluster('h1', 'outbound|9080||reviews.default.mesh');
    assert.deepEqual(
      all.endpoints.map((e) => [e.port, e.priority, e.locality]),
      [
        [9080, 0, 'eu-west/a/'],
        [9081, 1, 'eu-west/b/'],
      ],
    );
  });

  test('ratings uses MAGLEV with the DestinationRule table size; unmeshed endpoints get no mTLS', () => {
    const r = cluster('h1', 'outbound|9080||ratings.default.mesh');
    assert.equal(r.lb, 'MAGLEV');
    assert.equal(r.ringSize, 65537);
    assert.ok(r.endpoints.length > 0 && r.endpoints.every((e) => !e.mtls));
    assert.deepEqual(r.circuitBreaker, {
      maxConnections: 4_294_967_295,
      maxPendingRequests: 4_294_967_295,
      maxRequests: 4_294_967_295,
      maxRetries: 4_294_967_295,
    });
    // http2KeepAlive: PINGs on the HTTP/2 (gRPC) port only, with Envoy's default 15 % jitter.
    assert.equal(r.http2Keepalive, undefined);
    const grpc = cluster('h1', 'outbound|9090||ratings.default.mesh');
    assert.equal(grpc.http2, true);
    assert.deepEqual(grpc.http2Keepalive, { intervalMs: 15_000, timeoutMs: 5000, jitterPercent: 15 });
  });

  test('Consul-only endpoints keep their health; DNS, ORIGINAL_DST and BlackHole clusters', () => {
    const db = cluster('h1', 'outbound|5432||legacy-db.default.mesh');
    assert.deepEqual(
      db.endpoints.map((e) => [e.address, e.healthy, e.mtls]),
      [
        ['198.18.0.40', true, false],
        ['198.18.0.41', false, false],
      ],
    );
    const api = cluster('h1', 'outbound|443||api.payments.example.com');
    assert.equal(api.discovery, 'DNS');
    assert.deepEqual(api.dnsHost, { host: 'api.payments.example.com', port: 443 });
    assert.equal(api.tls?.sni, 'api.payments.example.com');
    assert.equal(api.tls?.caFile, '/etc/ssl/certs/ca-certificates.crt');
    assert.equal(api.meshTls, undefined);
    assert.equal(cluster('h1', 'PassthroughCluster').discovery, 'ORIGINAL_DST');
    assert.equal(cluster('h1', 'InboundPassthroughCluster').bindAddress, '127.0.0.6');
    assert.deepEqual(cluster('h1', 'InboundPassthroughCluster').extraBindAddresses, ['::6']);
    const bh = cluster('h1', 'BlackHoleCluster');
    assert.equal(bh.blackhole, true);
    assert.equal(bh.endpoints.length, 0);
    assert.deepEqual(bh.circuitBreaker, { maxConnections: 1024, maxPendingRequests: 1024, maxRequests: 1024, maxRetries: 3 });
    const inbound = cluster('h1', 'inbound|9080||');
    assert.equal(inbound.discovery, 'STATIC');
    assert.equal(inbound.blackhole, false);
    assert.equal(inbound.bindAddress, '127.0.0.6');
    assert.deepEqual(
      inbound.endpoints.map((e) => `${e.address}:${e.port}`),
      ['127.0.0.1:9080'],
    );
  });

  test('the reviews canary route splits 90/10 with the v2 destination header', () => {
    const r = routeFor('h1', 'reviews.default.mesh:9080', request({ authority: 'reviews:9080', path: '/reviews/1' }));
    assert.equal(r.name, 'canary');
    const a = forward(r);
    assert.deepEqual(
      a.clusters.map((c) => [c.name, c.weight]),
      [
        ['outbound|9080|v1|reviews.default.mesh', 90],
        ['outbound|9080|v2|reviews.default.mesh', 10],
      ],
    );
    assert.equal(a.totalWeight, 100);
    assert.deepEqual(a.clusters[1]?.headers.add, [{ name: 'x-canary', value: 'true', append: false }]);
    assert.deepEqual(a.hashPolicy, [{ kind: 'header', name: 'x-user' }]);
    assert.equal(a.timeoutMs, 0);
    assert.deepEqual([...(a.retry?.on ?? [])], ['connect-failure', 'refused-stream', 'unavailable', 'cancelled', 'retriable-status-codes']);
    assert.equal(a.retry?.numRetries, 2);
    assert.deepEqual(a.retry?.retriableStatusCodes, [503]);
  });

  test('the jason route: header match, 6 s timeout, retries with per-try timeout and Envoy back-off defaults', () => {
    const r = routeFor(
      'h1',
      'reviews.default.mesh:9080',
      request({ authority: '240.240.0.5', path: '/reviews/7', headers: { 'end-user': 'jason' } }),
    );
    assert.equal(r.name, 'jason');
    const a = forward(r);
    assert.deepEqual(
      a.clusters.map((c) => c.name),
      ['outbound|9080|v2|reviews.default.mesh'],
    );
    assert.equal(a.timeoutMs, 6000);
    assert.deepEqual([...(a.retry?.on ?? [])], ['5xx', 'connect-failure']);
    assert.equal(a.retry?.numRetries, 3);
    assert.equal(a.retry?.perTryTimeoutMs, 2000);
    assert.equal(a.retry?.backoffBaseMs, 25);
    assert.equal(a.retry?.backoffMaxMs, 250);
  });

  test('ratings: regex + method match with fault fractions 0.1 / 0.05, a redirect, and a 25% mirror', () => {
    const faulty = routeFor('h1', 'ratings.default.mesh:9080', request({ authority: 'ratings.default.mesh:9080', path: '/ratings/42' }));
    assert.deepEqual(faulty.fault, { delay: { ms: 5000, fraction: 0.1 }, abort: { httpStatus: 503, fraction: 0.05 } });
    assert.equal(forward(faulty).prefixRewrite, '/v1/ratings');
    assert.deepEqual(forward(faulty).hashPolicy, [{ kind: 'source_ip' }]);
    // The regex is a full match: a longer path falls through to the catch-all.
    const post = routeFor('h1', 'ratings.default.mesh:9080', request({ authority: 'ratings', method: 'POST', path: '/ratings/42' }));
    assert.equal(post.fault, undefined);
    assert.deepEqual(forward(post).mirrors, [{ cluster: 'outbound|9080||ratings.default.mesh', fraction: 0.25 }]);
    const longer = routeFor('h1', 'ratings.default.mesh:9080', request({ authority: 'ratings', path: '/ratings/42/x' }));
    assert.equal(longer.fault, undefined);
    const old = routeFor('h1', 'ratings.default.mesh:9080', request({ authority: 'ratings', path: '/old?x=1' }));
    assert.deepEqual(old.action, { kind: 'redirect', status: 301, path: '/new' });
  });

  test('the outbound HTTP listeners route by RDS and hang off virtualByAddress as address:port', () => {
    const c = compiled('h1');
    const l = c.virtualByAddress.get('240.240.0.5:9080');
    assert.equal(l?.name, '240.240.0.5_9080');
    assert.equal(l?.bindToPort, false);
    const chain = l?.filterChains[0];
    assert.ok(chain);
    const a = httpAction(chain);
    assert.equal(a.routeConfig, 'reviews.default.mesh:9080');
    // Only the route config that injects faults (ratings') puts the fault filter on its listener.
    assert.equal(a.filters.fault, false);
    const ratings = httpAction(listener('h1', '240.240.0.4_9080').filterChains[0] as FilterChain);
    assert.equal(ratings.routeConfig, 'ratings.default.mesh:9080');
    assert.equal(ratings.filters.fault, true);
    assert.equal(httpAction(listener('h1', '240.240.0.4_9090').filterChains[0] as FilterChain).routeConfig, 'ratings.default.mesh:9090');
    assert.deepEqual([...c.virtualByAddress.keys()].sort(), [
      '240.240.0.1:443',
      '240.240.0.2:5432',
      '240.240.0.3:9080',
      '240.240.0.4:9080',
      '240.240.0.4:9090',
      '240.240.0.5:9080',
    ]);
    const tcp = listener('h1', '240.240.0.2_5432').filterChains[0]?.action;
    assert.deepEqual(tcp, {
      kind: 'tcp',
      // The fixture mesh logs access by default: one stdout access log, no filter.
      accessLog: [{}],
      clusters: [{ name: 'outbound|5432||legacy-db.default.mesh', weight: 1 }],
      rbac: [],
      statPrefix: 'outbound|5432||legacy-db.default.mesh',
      idleTimeoutMs: 3_600_000,
    });
    const out = listener('h1', 'virtualOutbound');
    assert.equal(out.useOriginalDst, true);
    assert.equal(out.bindToPort, true);
    assert.equal(out.port, 15001);
    assert.deepEqual(out.defaultChain?.action.kind === 'tcp' && out.defaultChain.action.clusters, [
      { name: 'PassthroughCluster', weight: 1 },
    ]);
  });

  test('h2 virtualInbound: mTLS chains per workload port, RBAC DENY then ALLOW, XFCC', () => {
    const l = listener('h2', 'virtualInbound');
    assert.equal(l.port, 15006);
    assert.equal(l.inspectTls, true);
    assert.deepEqual(
      l.filterChains.map((c) => c.name),
      ['inbound|9080|mtls', 'inbound|9081|mtls', 'virtualInbound-catchall|mtls'],
    );
    const c = l.filterChains[0] as FilterChain;
    assert.deepEqual(c.match, {
      destinationPort: 9080,
      serverNames: [],
      transportProtocol: 'tls',
      applicationProtocols: ['istio-peer-exchange', 'istio'],
      prefixRanges: [],
    });
    assert.deepEqual(c.tls, {
      certSecret: 'spiffe://cluster.local/ns/default/sa/reviews',
      caSecret: 'ROOTCA',
      requireClientCert: true,
      alpn: ['h2', 'http/1.1'],
    });
    const a = httpAction(c);
    assert.equal(a.routeConfig, 'inbound|9080||');
    assert.equal(a.forwardClientCert, true);
    assert.deepEqual(
      a.filters.rbac.map((r) => [r.action, r.policies.map((p) => p.name)]),
      [
        ['DENY', ['default/deny-admin[0]']],
        ['ALLOW', ['default/reviews-viewer[0]', 'default/reviews-viewer[1]']],
      ],
    );
    const attrs = (peer: string | undefined, method: string, path: string, headers: Record<string, string> = {}) => ({
      ...(peer ? { peerIdentity: peer } : {}),
      remote: toRemote(socketAddr('198.18.0.11', 40000)),
      originalDst: toOrigDst(socketAddr('198.18.0.12', 9080)),
      path,
      header: (n: string) => (n === ':method' ? method : n === ':path' ? path : headers[n]),
    });
    const pp = 'spiffe://cluster.local/ns/default/sa/productpage';
    assert.deepEqual(evaluateRbac(a.filters.rbac, attrs(pp, 'GET', '/reviews/1')), { allowed: true, policy: 'default/reviews-viewer[0]' });
    assert.equal(evaluateRbac(a.filters.rbac, attrs(pp, 'POST', '/reviews/1')).allowed, false);
    assert.equal(evaluateRbac(a.filters.rbac, attrs(undefined, 'GET', '/reviews/1')).allowed, false);
    assert.deepEqual(evaluateRbac(a.filters.rbac, attrs(pp, 'GET', '/admin/x', { 'x-debug': '1' })), {
      allowed: false,
      policy: 'default/deny-admin[0]',
    });
    const catchAll = l.filterChains[2] as FilterChain;
    assert.equal(catchAll.tls?.certSecret, 'default');
    assert.deepEqual(catchAll.action.kind === 'tcp' && catchAll.action.clusters, [{ name: 'InboundPassthroughCluster', weight: 1 }]);
    assert.deepEqual(
      [...compiled('h2').routes.keys()].filter((k) => k.startsWith('inbound')),
      ['inbound|9080||', 'inbound|9081||'],
    );
  });

  test('gw: a TLS-terminating HTTPS server on a file credential, SNI passthrough, and gateway routes', () => {
    const https = listener('gw', '0.0.0.0_8443');
    assert.equal(https.inspectTls, true);
    const c = https.filterChains[0] as FilterChain;
    assert.deepEqual(c.match.serverNames, ['bookinfo.example.com']);
    assert.deepEqual(c.tls, { certSecret: 'file-cert:bookinfo-cert', requireClientCert: false, alpn: ['h2', 'http/1.1'] });
    assert.equal(httpAction(c).routeConfig, 'https.8443.https.bookinfo-gateway.default');
    const pass = listener('gw', '0.0.0.0_9443').filterChains[0] as FilterChain;
    assert.equal(pass.tls, undefined);
    assert.equal(pass.match.transportProtocol, 'tls');
    assert.deepEqual(pass.action.kind === 'tcp' && pass.action.clusters, [{ name: 'outbound|443||api.payments.example.com', weight: 1 }]);
    const r = routeFor('gw', 'http.8080', request({ authority: 'BookInfo.example.com:8080', path: '/productpage' }));
    assert.deepEqual(
      forward(r).clusters.map((x) => x.name),
      ['outbound|9080||productpage.default.mesh'],
    );
    assert.equal(compiled('gw').virtualByAddress.size, 0);
  });

  test('grpc (proxyless): api listeners are not sockets the proxy serves; routes and clusters still compile', () => {
    const c = compiled('grpc');
    assert.equal(c.listeners.size, 0);
    assert.ok(c.routes.has('ratings.default.mesh:9080'));
    assert.equal(cluster('grpc', 'outbound|9080||ratings.default.mesh').lb, 'RING_HASH');
  });

  test('the JSON form the agent caches on disk (Buffers as { type, data }) compiles to the same config', () => {
    const again = compileProxyConfig(JSON.parse(JSON.stringify(appliedFor('h1'))) as AppliedConfig);
    assert.ok(again.ok);
    const a = forward(routeFor('h1', 'reviews.default.mesh:9080', request({ authority: 'reviews' })));
    const vh = selectVirtualHost(again.value.routes.get('reviews.default.mesh:9080') as RouteTable, 'reviews');
    const b = vh && matchRoute(vh, request({ authority: 'reviews' }));
    assert.deepEqual(b && forward(b).clusters, a.clusters);
  });
});

// ---- hand-written (sparse) resources: Envoy defaults, inline routes, refusals ----

const HCM = TypedConfigUrl.httpConnectionManager;
const ROUTER = { name: 'envoy.filters.http.router', typed_config: { '@type': TypedConfigUrl.router } };
const HTTP_OPTIONS = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';

function applied(parts: { clusters?: Msg[]; endpoints?: Msg[]; listeners?: Msg[]; routes?: Msg[] }): AppliedConfig {
  const byName = (list: Msg[] | undefined, key = 'name') => Object.fromEntries((list ?? []).map((m) => [String(m[key]), m]));
  return {
    versions: {},
    resources: {
      [CDS]: byName(parts.clusters),
      [EDS]: byName(parts.endpoints, 'cluster_name'),
      [LDS]: byName(parts.listeners),
      [RDS]: byName(parts.routes),
    },
    updatedAt: '',
  };
}

function compileOk(parts: Parameters<typeof applied>[0]): ProxyConfig {
  const r = compileProxyConfig(applied(parts));
  if (!r.ok) assert.fail(r.error);
  return r.value;
}

function compileErr(parts: Parameters<typeof applied>[0]): string {
  const r = compileProxyConfig(applied(parts));
  assert.equal(r.ok, false, 'expected a compile error');
  const e = (r as { error: string }).error;
  assert.doesNotMatch(e, /\n/);
  return e;
}

const httpListener = (filters: Msg[], extra: Msg = {}) => ({
  name: 'l',
  address: { socket_address: { address: '127.0.0.1', port_value: 8000 } },
  filter_chains: [{ filters: [{ name: 'hcm', typed_config: { '@type': HCM, stat_prefix: 's', http_filters: filters, ...extra } }] }],
});

describe('compileProxyConfig: Envoy defaults on sparse resources', () => {
  test('a route without timeout gets 15 s, retries default to 1, locality weights fold into endpoints', () => {
    const c = compileOk({
      clusters: [
        { name: 'c', type: 'EDS', eds_cluster_config: { service_name: 'c-eds' }, common_lb_config: { locality_weighted_lb_config: {} } },
      ],
      endpoints: [
        {
          cluster_name: 'c-eds',
          endpoints: [
            {
              locality: { region: 'r', zone: 'z', sub_zone: 's' },
              load_balancing_weight: { value: 3 },
              lb_endpoints: [{ endpoint: { address: { socket_address: { address: '10.0.0.1', port_value: 80 } } } }],
            },
            {
              locality: { region: 'r', zone: 'y' },
              load_balancing_weight: { value: 1 },
              priority: 1,
              lb_endpoints: [
                { endpoint: { address: { socket_address: { address: '10.0.0.2', port_value: 80 } } }, health_status: 'DRAINING' },
                { endpoint: { address: { socket_address: { address: '10.0.0.3', port_value: 80 } } }, load_balancing_weight: { value: 3 } },
              ],
            },
          ],
        },
      ],
      routes: [
        {
          name: 'r',
          virtual_hosts: [
            {
              name: 'v',
              domains: ['*'],
              routes: [{ match: { prefix: '/' }, route: { cluster: 'c', retry_policy: { retry_on: '5xx, reset' } } }],
            },
          ],
        },
      ],
    });
    const cl = c.clusters.get('c');
    assert.equal(cl?.connectTimeoutMs, 5000);
    assert.equal(cl?.lb, 'ROUND_ROBIN');
    assert.deepEqual(cl?.circuitBreaker, { maxConnections: 1024, maxPendingRequests: 1024, maxRequests: 1024, maxRetries: 3 });
    assert.deepEqual(
      cl?.endpoints.map((e) => [e.address, e.weight, e.healthy, e.priority, e.locality]),
      [
        ['10.0.0.1', 3, true, 0, 'r/z/s'],
        ['10.0.0.2', 0.25, false, 1, 'r/y/'],
        ['10.0.0.3', 0.75, true, 1, 'r/y/'],
      ],
    );
    const vh = selectVirtualHost(c.routes.get('r') as RouteTable, 'anything');
    const a = vh && forward(vh.routes[0] as Route);
    assert.equal(a?.timeoutMs, 15_000);
    assert.equal(a?.retry?.numRetries, 1);
    assert.deepEqual([...(a?.retry?.on ?? [])], ['5xx', 'reset']);
  });

  test('an inline route_config is registered under a synthesized name; optional unknown filters are skipped', () => {
    const c = compileOk({
      clusters: [
        {
          name: 'c',
          type: 'STATIC',
          load_assignment: {
            endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: 9 } } } }] }],
          },
        },
      ],
      listeners: [
        httpListener([{ name: 'istio.stats', is_optional: true, typed_config: { '@type': 'type.googleapis.com/x.Stats' } }, ROUTER], {
          route_config: {
            virtual_hosts: [
              { name: 'v', domains: ['*.example.com', 'exact.io'], routes: [{ match: { path: '/x' }, direct_response: { status: 204 } }] },
            ],
          },
          forward_client_cert_details: 'APPEND_FORWARD',
        }),
      ],
    });
    const l = c.listeners.get('l');
    const a = l && httpAction(l.filterChains[0] as FilterChain);
    assert.equal(a?.routeConfig, 'inline:l:0');
    assert.equal(a?.forwardClientCert, true);
    const t = c.routes.get('inline:l:0');
    assert.deepEqual(t?.virtualHosts[0]?.wildcardSuffixes, ['.example.com']);
    assert.deepEqual(t?.virtualHosts[0]?.routes[0]?.action, { kind: 'direct_response', status: 204 });
    assert.equal(c.clusters.get('c')?.blackhole, false);
  });

  test('local_ratelimit and TCP weighted clusters with an explicit idle timeout of 0 (none)', () => {
    const rl = {
      name: 'envoy.filters.http.local_ratelimit',
      typed_config: {
        '@type': TypedConfigUrl.httpLocalRateLimit,
        stat_prefix: 'rl',
        status: { code: 'ServiceUnavailable' },
        token_bucket: { max_tokens: 5, tokens_per_fill: { value: 2 }, fill_interval: { seconds: 1 } },
        filter_enabled: { default_value: { numerator: 100 } },
        filter_enforced: { default_value: { numerator: 100 } },
      },
    };
    const c = compileOk({ listeners: [httpListener([rl, ROUTER], { rds: { route_config_name: 'x' } })] });
    const a = httpAction(c.listeners.get('l')?.filterChains[0] as FilterChain);
    assert.deepEqual(a.filters.rateLimit, { maxTokens: 5, tokensPerFill: 2, fillIntervalMs: 1000, status: 503 });
    // Two proxy workers: each gets half the bucket and refills half as often, so the host's total is unchanged.
    const bucket = (i: number) =>
      httpAction(shareAmongWorkers(c, 2, i).listeners.get('l')?.filterChains[0] as FilterChain).filters.rateLimit;
    assert.deepEqual(bucket(0), { maxTokens: 3, tokensPerFill: 2, fillIntervalMs: 2000, status: 503 });
    assert.deepEqual(bucket(1), { maxTokens: 2, tokensPerFill: 2, fillIntervalMs: 2000, status: 503 });
    assert.equal(a.filters.fault, false);
    assert.deepEqual(a.filters.rbac, []);
    const tcp = compileOk({
      listeners: [
        {
          name: 't',
          address: { socket_address: { address: '0.0.0.0', port_value: 7000 } },
          filter_chains: [
            {
              filters: [
                {
                  name: 'tcp',
                  typed_config: {
                    '@type': TypedConfigUrl.tcpProxy,
                    stat_prefix: 't',
                    weighted_clusters: {
                      clusters: [
                        { name: 'a', weight: 3 },
                        { name: 'b', weight: 1 },
                      ],
                    },
                    idle_timeout: { seconds: 0 },
                  },
                },
              ],
            },
          ],
        },
      ],
    });
    assert.deepEqual(tcp.listeners.get('t')?.filterChains[0]?.action, {
      kind: 'tcp',
      clusters: [
        { name: 'a', weight: 3 },
        { name: 'b', weight: 1 },
      ],
      rbac: [],
      statPrefix: 't',
    });
  });

  test('file certificates become file: secret names the SecretStore can resolve', () => {
    const c = compileOk({
      listeners: [
        {
          ...httpListener([ROUTER], { rds: { route_config_name: 'x' } }),
          filter_chains: [
            {
              transport_socket: {
                name: 'tls',
                typed_config: {
                  '@type': TypedConfigUrl.downstreamTlsContext,
                  common_tls_context: {
                    tls_certificates: [
                      { certificate_chain: { filename: '/etc/gw/cert.pem' }, private_key: { filename: '/etc/gw/key:1.pem' } },
                    ],
                    validation_context: { trusted_ca: { filename: '/etc/gw/ca.pem' } },
                  },
                  require_client_certificate: { value: true },
                },
              },
              filters: [{ name: 'hcm', typed_config: { '@type': HCM, http_filters: [ROUTER], rds: { route_config_name: 'x' } } }],
            },
          ],
        },
      ],
    });
    const tls = c.listeners.get('l')?.filterChains[0]?.tls;
    assert.equal(tls?.requireClientCert, true);
    assert.deepEqual(parseFileSecretName(tls?.certSecret ?? ''), { certPath: '/etc/gw/cert.pem', keyPath: '/etc/gw/key:1.pem' });
    assert.deepEqual(parseFileSecretName(tls?.caSecret ?? ''), { certPath: '/etc/gw/ca.pem' });
    assert.equal(parseFileSecretName('ROOTCA'), undefined);
  });
});

describe('compileProxyConfig: refusals name the resource and the field in one line', () => {
  test('a load balancing policy the proxy lacks', () => {
    assert.match(
      compileErr({ clusters: [{ name: 'bad', lb_policy: 'LOAD_BALANCING_POLICY_CONFIG' }] }),
      /^Cluster bad: lb_policy: LOAD_BALANCING_POLICY_CONFIG is not supported$/,
    );
  });

  test('HTTP/2 keepalive: a timeout is required, idle-only PINGs are not supported; a zero interval sends none', () => {
    const h2 = (keepalive: Msg) => ({
      name: 'k',
      typed_extension_protocol_options: {
        [HTTP_OPTIONS]: {
          '@type': TypedConfigUrl.httpProtocolOptions,
          explicit_http_config: { http2_protocol_options: { connection_keepalive: keepalive } },
        },
      },
    });
    const at = `Cluster k: typed_extension_protocol_options['${HTTP_OPTIONS}'].explicit_http_config.http2_protocol_options.connection_keepalive`;
    assert.equal(compileErr({ clusters: [h2({ interval: { seconds: 1 } })] }), `${at}.timeout: must be at least 1ms`);
    assert.equal(
      compileErr({ clusters: [h2({ interval: { seconds: 1 }, timeout: { seconds: 1 }, connection_idle_interval: { seconds: 5 } })] }),
      `${at}.connection_idle_interval: not supported`,
    );
    const off = compileOk({ clusters: [h2({ timeout: { seconds: 1 } })] }).clusters.get('k');
    assert.equal(off?.http2, true);
    assert.equal(off?.http2Keepalive, undefined);
    const jitter = compileOk({
      clusters: [h2({ interval: { nanos: 250_000_000 }, timeout: { seconds: 1 }, interval_jitter: { value: 0 } })],
    });
    assert.deepEqual(jitter.clusters.get('k')?.http2Keepalive, { intervalMs: 250, timeoutMs: 1000, jitterPercent: 0 });
  });

  test('a Maglev table size that is not prime', () => {
    assert.match(
      compileErr({ clusters: [{ name: 'm', lb_policy: 'MAGLEV', maglev_lb_config: { table_size: { value: '65536' } } }] }),
      /^Cluster m: maglev_lb_config\.table_size: 65536 is not a prime/,
    );
  });

  test('a broken endpoint assignment is named as itself, not as its cluster', () => {
    const e = compileErr({
      clusters: [{ name: 'c', type: 'EDS' }],
      endpoints: [
        {
          cluster_name: 'c',
          endpoints: [{ lb_endpoints: [{ endpoint: { address: { envoy_internal_address: { server_listener_name: 'x' } } } }] }],
        },
      ],
    });
    assert.match(
      e,
      /^ClusterLoadAssignment c: endpoints\[0\]\.lb_endpoints\[0\]\.endpoint\.address: only socket addresses and pipes are supported$/,
    );
  });

  test('a pipe endpoint needs an absolute path to a file or an @abstract name within sun_path, and no DNS cluster', () => {
    const withPipe = (path: string) => ({
      clusters: [{ name: 'c', type: 'EDS' }],
      endpoints: [{ cluster_name: 'c', endpoints: [{ lb_endpoints: [{ endpoint: { address: { pipe: { path } } } }] }] }],
    });
    assert.match(compileErr(withPipe('run/x.sock')), /endpoint\.address\.pipe\.path: "run\/x\.sock" is not an absolute path to a file$/);
    assert.match(
      compileErr(withPipe(`@${'a'.repeat(108)}`)),
      /endpoint\.address\.pipe\.path: "@a+" is longer than 107 bytes \(a socket's sun_path\)$/,
    );
    const dns = compileErr({
      clusters: [
        {
          name: 'd',
          type: 'STRICT_DNS',
          load_assignment: {
            cluster_name: 'd',
            endpoints: [{ lb_endpoints: [{ endpoint: { address: { pipe: { path: '/run/x.sock' } } } }] }],
          },
        },
      ],
    });
    assert.match(dns, /^Cluster d: load_assignment: a STRICT_DNS cluster resolves names; a pipe has none$/);
  });

  test('an invalid regex in a route', () => {
    const e = compileErr({
      routes: [
        {
          name: '80',
          virtual_hosts: [{ name: 'v', domains: ['*'], routes: [{ match: { safe_regex: { regex: '(' } }, route: { cluster: 'c' } }] }],
        },
      ],
    });
    assert.match(e, /^RouteConfiguration 80: virtual_hosts\[0\]\.routes\[0\]\.match\.safe_regex: invalid regex "\("/);
  });

  test('a regex RE2 refuses (a backreference) and a rewrite naming a group the pattern lacks', () => {
    const routeWith = (route: Msg, regex = '/x') => ({
      routes: [{ name: '80', virtual_hosts: [{ name: 'v', domains: ['*'], routes: [{ match: { safe_regex: { regex } }, route }] }] }],
    });
    const backref = compileErr(routeWith({ cluster: 'c' }, '(a)\\1'));
    assert.match(
      backref,
      /^RouteConfiguration 80: virtual_hosts\[0\]\.routes\[0\]\.match\.safe_regex: invalid regex "\(a\)\\\\1": invalid escape sequence/,
    );
    const rewrite = compileErr(routeWith({ cluster: 'c', regex_rewrite: { pattern: { regex: '/(x)' }, substitution: '/\\2' } }));
    assert.match(rewrite, /routes\[0\]\.route\.regex_rewrite\.substitution: substitution "\/\\\\2" uses group \\2, the regex has 1$/);
  });

  test('a domain named twice in one route configuration', () => {
    const e = compileErr({
      routes: [
        {
          name: 'dup',
          virtual_hosts: [
            { name: 'a', domains: ['x.io'], routes: [] },
            { name: 'b', domains: ['X.io'], routes: [] },
          ],
        },
      ],
    });
    assert.match(e, /^RouteConfiguration dup: virtual_hosts\[1\]\.domains\[0\]: domain "x\.io" appears more than once/);
  });

  test('an HTTP filter the proxy does not implement, unless optional', () => {
    const e = compileErr({
      listeners: [
        httpListener(
          [
            {
              name: 'envoy.filters.http.buffer',
              typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer' },
            },
            ROUTER,
          ],
          { rds: { route_config_name: 'x' } },
        ),
      ],
    });
    assert.match(
      e,
      /^Listener l: filter_chains\[0\]\.filters\[0\]\.typed_config\.http_filters\[0\]: HTTP filter envoy\.filters\.http\.buffer .* is not supported$/,
    );
  });

  test('ext_authz, ext_proc and ratelimit (no client for their service) answer as Envoy does when it cannot be reached', () => {
    const filtersOf = (f: Record<string, unknown>) => {
      const cfg = compileOk({ listeners: [httpListener([f, ROUTER], { rds: { route_config_name: 'x' } })] });
      const a = cfg.listeners.get('l')?.filterChains[0]?.action;
      assert.ok(a?.kind === 'http');
      return a.filters;
    };
    const url = (t: string) => `type.googleapis.com/envoy.extensions.filters.http.${t}`;
    const authz = filtersOf({ name: 'authz', typed_config: { '@type': url('ext_authz.v3.ExtAuthz') } });
    assert.deepEqual(authz.unavailable, { name: 'authz', status: 403, flag: 'UAEX' });
    const proc = filtersOf({ name: 'proc', typed_config: { '@type': url('ext_proc.v3.ExternalProcessor'), failure_mode_allow: false } });
    assert.deepEqual(proc.unavailable, { name: 'proc', status: 500 });
    assert.equal(
      filtersOf({ name: 'p', typed_config: { '@type': url('ext_proc.v3.ExternalProcessor'), failure_mode_allow: true } }).unavailable,
      undefined,
    );
    assert.equal(filtersOf({ name: 'rl', typed_config: { '@type': url('ratelimit.v3.RateLimit'), domain: 'd' } }).unavailable, undefined);
    const deny = filtersOf({ name: 'rl', typed_config: { '@type': url('ratelimit.v3.RateLimit'), failure_mode_deny: true } });
    assert.deepEqual(deny.unavailable, { name: 'rl', status: 500, flag: 'RLSE' });
  });

  test('an RBAC rule on SNI (cannot be evaluated) and a header append action without an equivalent', () => {
    const rbac = {
      name: 'envoy.filters.http.rbac',
      typed_config: {
        '@type': TypedConfigUrl.httpRbac,
        rules: {
          action: 'ALLOW',
          policies: { p: { permissions: [{ requested_server_name: { exact: 'a' } }], principals: [{ any: true }] } },
        },
      },
    };
    assert.match(
      compileErr({ listeners: [httpListener([rbac, ROUTER], { rds: { route_config_name: 'x' } })] }),
      /rules\.policies\['p'\]\.permissions\[0\]\.requested_server_name: not supported$/,
    );
    const e = compileErr({
      routes: [
        {
          name: 'h',
          virtual_hosts: [
            {
              name: 'v',
              domains: ['*'],
              request_headers_to_add: [{ header: { key: 'a', value: 'b' }, append_action: 'ADD_IF_ABSENT' }],
              routes: [],
            },
          ],
        },
      ],
    });
    assert.equal(e, 'RouteConfiguration h: virtual_hosts[0].request_headers_to_add[0].append_action: ADD_IF_ABSENT is not supported');
  });

  test('two listeners on one address', () => {
    const l = (name: string) => ({ ...httpListener([ROUTER], { rds: { route_config_name: 'x' } }), name, bind_to_port: { value: false } });
    assert.equal(compileErr({ listeners: [l('a'), l('b')] }), 'Listener b: address: 127.0.0.1:8000 is already used by listener a');
  });
});
