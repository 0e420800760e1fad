import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { CDS, decodeAny, EDS, encodeAny, LDS, RDS } from '../../../../src/xds/index.js';
import { buildListeners } from '../../../../src/xds/translate/listeners.js';
import { buildProxylessRoutes, proxylessStandIn, unknownProxylessListener } from '../../../../src/xds/translate/proxyless.js';
import { assertGolden } from '../../../support/golden.js';
import { bookinfoInput, bookinfoResources } from './fixture.js';

type Msg = Record<string, unknown>;

/** The value at `path` inside a message, undefined when any step is missing. */
function at(v: unknown, ...path: Array<string | number>): unknown {
  let cur = v;
  for (const k of path) cur = cur && typeof cur === 'object' ? (cur as Record<string | number, unknown>)[k] : undefined;
  return cur;
}

describe('proxyless gRPC', () => {
  const input = bookinfoInput('grpc');

  test('golden: the route configurations of the grpc node', () => {
    const routes = buildProxylessRoutes(input);
    assertGolden(join(import.meta.dirname, 'golden', 'proxyless-grpc.json'), `${JSON.stringify(routes, null, 2)}\n`);
  });

  test('an ApiListener for every name of each HTTP/gRPC service port, all naming the port route config; none for TCP', () => {
    const listeners = buildListeners(input);
    const byName = new Map(listeners.map((l) => [l.name, l]));
    const rdsOf = (name: string) => at(byName.get(name)?.message, 'api_listener', 'api_listener', 'rds', 'route_config_name');
    for (const name of ['ratings.default.mesh', 'ratings.default.svc.cluster.local', 'ratings.default', 'ratings']) {
      assert.equal(rdsOf(`${name}:9090`), 'ratings.default.mesh:9090', name);
    }
    assert.equal(rdsOf('reviews.default.svc.cluster.local:9080'), 'reviews.default.mesh:9080');
    const vip = input.model.services.get('reviews.default.mesh')?.vip;
    assert.equal(rdsOf(`${vip}:9080`), 'reviews.default.mesh:9080', 'the VIP too');
    assert.ok(![...byName.keys()].some((n) => n.startsWith('legacy-db')), 'TCP ports have no ApiListener');
    assert.deepEqual(
      [...new Set(listeners.map((l) => rdsOf(l.name)))].sort(),
      buildProxylessRoutes(input).map((r) => r.name),
      'each route config is named by one of the listeners',
    );
    for (const l of listeners) {
      const hcm = (l.message.api_listener as Msg).api_listener as Msg;
      const filters = (hcm.http_filters as Msg[]).map((f) => f.name);
      // ratings injects faults: its listeners carry the fault filter before the router; the others only the router.
      assert.deepEqual(
        filters,
        String(rdsOf(l.name)).startsWith('ratings.')
          ? ['envoy.filters.http.fault', 'envoy.filters.http.router']
          : ['envoy.filters.http.router'],
        l.name,
      );
      assert.equal(decodeAny<{ name: string }>(encodeAny(LDS, l.message)).name, l.name);
    }
  });

  test('the VirtualService routes, in the terms gRPC implements', () => {
    const routes = buildProxylessRoutes(input);
    const reviews = routes.find((r) => r.name === 'reviews.default.mesh:9080');
    const [vh, ...more] = (reviews?.message.virtual_hosts ?? []) as Msg[];
    assert.equal(more.length, 0);
    const domains = (vh as Msg).domains as string[];
    assert.equal(domains[0], 'reviews.default.mesh:9080');
    for (const d of ['reviews.default.mesh', 'reviews', 'reviews.default', 'reviews.default.svc.cluster.local:9080']) {
      assert.ok(domains.includes(d), `${d} in ${domains.join(', ')}`);
    }
    assert.equal(new Set(domains).size, domains.length, 'no duplicate domains');
    const [jason, canary] = (vh as Msg).routes as Msg[];
    assert.deepEqual(at(jason, 'match'), { prefix: '/reviews', headers: [{ name: 'end-user', string_match: { exact: 'jason' } }] });
    // retryOn 5xx,connect-failure names no gRPC status: no retries; the 6 s timeout caps the call's deadline.
    assert.deepEqual(at(jason, 'route'), {
      cluster: 'outbound|9080|v2|reviews.default.mesh',
      hash_policy: [{ header: { header_name: 'x-user' } }],
      max_stream_duration: { grpc_timeout_header_max: { seconds: 6, nanos: 0 } },
    });
    assert.deepEqual(at(canary, 'route', 'weighted_clusters'), {
      clusters: [
        { name: 'outbound|9080|v1|reviews.default.mesh', weight: { value: 90 } },
        { name: 'outbound|9080|v2|reviews.default.mesh', weight: { value: 10 } },
      ],
    });
    assert.deepEqual(at(canary, 'route', 'retry_policy'), { retry_on: 'unavailable,cancelled', num_retries: { value: 2 } });

    const ratings = routes.find((r) => r.name === 'ratings.default.mesh:9080');
    const [faulty, old, rest] = at(ratings?.message, 'virtual_hosts', 0, 'routes') as Msg[];
    assert.ok(at(faulty, 'typed_per_filter_config', 'envoy.filters.http.fault'), 'fault injection stays (A33)');
    assert.equal(at(faulty, 'route', 'prefix_rewrite'), undefined, 'gRPC does not rewrite paths');
    assert.deepEqual(
      at(faulty, 'route', 'hash_policy'),
      [{ filter_state: { key: 'io.grpc.channel_id' } }],
      'useSourceIp hashes the channel',
    );
    // A redirect cannot be followed by gRPC: the call ends with the redirect's HTTP status, as behind a sidecar.
    assert.deepEqual(at(old, 'typed_per_filter_config', 'envoy.filters.http.fault', 'abort'), {
      http_status: 301,
      percentage: { numerator: 1_000_000, denominator: 'MILLION' },
    });
    assert.equal(at(rest, 'route', 'request_mirror_policies'), undefined, 'no mirroring in gRPC');
    for (const r of routes) assert.equal(decodeAny<{ name: string }>(encodeAny(RDS, r.message)).name, r.name);
  });

  test('a route matching query parameters is left out: a gRPC request has none', () => {
    const resources = bookinfoResources().map((r) =>
      r.kind === 'VirtualService' && r.metadata.name === 'reviews'
        ? ({
            ...r,
            spec: {
              hosts: ['reviews'],
              http: [
                { match: [{ queryParams: { debug: { exact: '1' } } }], route: [{ destination: { host: 'reviews', subset: 'v2' } }] },
                { route: [{ destination: { host: 'reviews', subset: 'v1' } }] },
              ],
            },
          } as typeof r)
        : r,
    );
    const routes = buildProxylessRoutes(bookinfoInput('grpc', { resources }));
    const reviews = routes.find((r) => r.name === 'reviews.default.mesh:9080');
    const list = at(reviews?.message, 'virtual_hosts', 0, 'routes') as Msg[];
    assert.deepEqual(
      list.map((r) => (r.route as Msg).cluster),
      ['outbound|9080|v1|reviews.default.mesh'],
    );
  });

  test('an unknown name gets an ApiListener whose one virtual host has no route', () => {
    const l = unknownProxylessListener('nope.default.mesh:1');
    const hcm = (l.message.api_listener as Msg).api_listener as Msg;
    assert.deepEqual(
      ((hcm.route_config as Msg).virtual_hosts as Msg[]).map((v) => [v.domains, v.routes]),
      [[['*'], []]],
    );
  });

  test("@grpc/grpc-js-xds's own resource validation accepts every listener and route config", () => {
    // The client library proxyless workloads run: its LDS/RDS decoders are what would NACK these resources.
    const require = createRequire(import.meta.url);
    const build = '@grpc/grpc-js-xds/build/src/xds-resource-type';
    require('@grpc/grpc-js-xds').register();
    const { ListenerResourceType } = require(`${build}/listener-resource-type.js`);
    const { RouteConfigurationResourceType } = require(`${build}/route-config-resource-type.js`);
    for (const l of [...buildListeners(input), unknownProxylessListener('nope.default.mesh:1')]) {
      const decoded = ListenerResourceType.get().decode({}, encodeAny(LDS, l.message));
      assert.equal(decoded.error, undefined, l.name);
    }
    for (const r of buildProxylessRoutes(input)) {
      const decoded = RouteConfigurationResourceType.get().decode({}, encodeAny(RDS, r.message));
      assert.equal(decoded.error, undefined, r.name);
    }
    const { ClusterResourceType } = require(`${build}/cluster-resource-type.js`);
    const { EndpointResourceType } = require(`${build}/endpoint-resource-type.js`);
    const types: Array<[string, { get(): { decode(c: unknown, a: unknown): { error?: string } } }]> = [
      [LDS, ListenerResourceType],
      [CDS, ClusterResourceType],
      [EDS, EndpointResourceType],
    ];
    for (const [typeUrl, type] of types) {
      const standIn = proxylessStandIn(typeUrl, 'outbound|7||ghost.default.mesh');
      assert.ok(standIn, typeUrl);
      const decoded = type.get().decode({ bootstrap: { certificateProviders: {} }, server: {} }, encodeAny(typeUrl, standIn.message));
      assert.equal(decoded.error, undefined, `stand-in of ${typeUrl}`);
    }
    assert.equal(proxylessStandIn(RDS, 'x'), undefined, 'route configs are named by listeners vmesh sends, never absent');
  });
});
