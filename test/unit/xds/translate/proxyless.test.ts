import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { decodeAny, encodeAny, LDS, RDS } from '../../../../src/xds/index.js';
import { buildListeners } from '../../../../src/xds/translate/listeners.js';
import { buildProxylessRoutes } from '../../../../src/xds/translate/proxyless.js';
import { assertGolden } from '../../../support/golden.js';
import { bookinfoInput } from './fixture.js';

type Msg = Record<string, unknown>;

describe('proxyless gRPC', () => {
  const input = bookinfoInput('grpc');

  test('golden: the route configurations of the grpc node', () => {
    const routes = buildProxylessRoutes(input);
    assertGolden(join(import.meta.dirname, 'golden', 'proxyless-grpc.json'), `${JSON.stringify(routes, null, 2)}\n`);
  });

  test('one ApiListener per HTTP/gRPC service port, named host:port; TCP and HTTPS ports have none', () => {
    const names = buildListeners(input).map((l) => l.name);
    assert.deepEqual(names, [
      'productpage.default.mesh:9080',
      'ratings.default.mesh:9080',
      'ratings.default.mesh:9090',
      'reviews.default.mesh:9080',
    ]);
    for (const l of buildListeners(input)) {
      const hcm = (l.message.api_listener as Msg).api_listener as Msg;
      assert.equal((hcm.rds as Msg).route_config_name, l.name, 'the listener names its route config by its own name');
      assert.deepEqual(
        (hcm.http_filters as Msg[]).map((f) => f.name),
        ['envoy.filters.http.router'],
      );
      assert.equal(decodeAny<{ name: string }>(encodeAny(LDS, l.message)).name, l.name);
    }
  });

  test('each route config has one virtual host, host:port first, routing everything to the service port cluster', () => {
    const routes = buildProxylessRoutes(input);
    assert.deepEqual(
      routes.map((r) => r.name),
      buildListeners(input).map((l) => l.name),
    );
    const ratings = routes.find((r) => r.name === 'ratings.default.mesh:9090');
    assert.ok(ratings);
    const [vh, ...more] = ratings.message.virtual_hosts as Msg[];
    assert.equal(more.length, 0);
    const domains = (vh as Msg).domains as string[];
    assert.equal(domains[0], 'ratings.default.mesh:9090');
    for (const d of ['ratings.default.mesh', 'ratings', 'ratings.default', 'ratings.default.svc.cluster.local:9090']) {
      assert.ok(domains.includes(d), `${d} in ${domains.join(', ')}`);
    }
    assert.equal(new Set(domains).size, domains.length, 'no duplicate domains');
    const [route] = (vh as Msg).routes as Msg[];
    assert.deepEqual((route as Msg).route, { cluster: 'outbound|9090||ratings.default.mesh' });
    for (const r of routes) assert.equal(decodeAny<{ name: string }>(encodeAny(RDS, r.message)).name, r.name);
  });

  test("@grpc/grpc-js-xds's own resource validation accepts every listener and route config", () => {
    // The client library proxyless workloads run: its LDS/RDS decoders are what would NACK these resources.
    const require = createRequire(import.meta.url);
    const build = '@grpc/grpc-js-xds/build/src/xds-resource-type';
    require('@grpc/grpc-js-xds').register();
    const { ListenerResourceType } = require(`${build}/listener-resource-type.js`);
    const { RouteConfigurationResourceType } = require(`${build}/route-config-resource-type.js`);
    for (const l of buildListeners(input)) {
      const decoded = ListenerResourceType.get().decode({}, encodeAny(LDS, l.message));
      assert.equal(decoded.error, undefined, l.name);
    }
    for (const r of buildProxylessRoutes(input)) {
      const decoded = RouteConfigurationResourceType.get().decode({}, encodeAny(RDS, r.message));
      assert.equal(decoded.error, undefined, r.name);
    }
  });
});
