import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { Resource } from '../../../../src/api/resource.js';
import { parseResources } from '../../../../src/api/resource-parse.js';
import { decodeAny, EDS, encodeAny } from '../../../../src/xds/index.js';
import { buildClusters } from '../../../../src/xds/translate/clusters.js';
import { buildEndpoints, nodeLocality } from '../../../../src/xds/translate/endpoints.js';
import type { EnvoyResource, TranslateInput } from '../../../../src/xds/translate/input.js';
import { assertGolden } from '../../../support/golden.js';
import { bookinfoInput, bookinfoResources } from './fixture.js';

interface LbEndpoint {
  endpoint: { address: { socket_address: { address: string; port_value: number } } };
  health_status: string;
  load_balancing_weight: { value: number };
  metadata?: { filter_metadata: Record<string, unknown> };
}
interface LocalityGroup {
  locality: { region?: string; zone?: string; sub_zone?: string };
  lb_endpoints: LbEndpoint[];
  load_balancing_weight: { value: number };
  priority?: number;
}
interface Cla {
  cluster_name: string;
  endpoints: LocalityGroup[];
}

function cla(resources: readonly EnvoyResource[], name: string): Cla {
  const r = resources.find((x) => x.name === name);
  assert.ok(r, `no assignment ${name} among ${resources.map((x) => x.name).join(', ')}`);
  return r.message as unknown as Cla;
}

function inputWith(node: 'h1' | 'h2' | 'grpc', yaml: string): TranslateInput {
  const parsed = parseResources(yaml, { source: 'test.yaml' });
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.error));
  const key = (r: Resource) => `${r.kind}/${r.metadata.namespace}/${r.metadata.name}`;
  const replaced = new Set(parsed.value.map(key));
  return bookinfoInput(node, { resources: [...bookinfoResources().filter((r) => !replaced.has(key(r))), ...parsed.value] });
}

const addresses = (c: Cla) => c.endpoints.flatMap((g) => g.lb_endpoints.map((e) => e.endpoint.address.socket_address));

describe('buildEndpoints golden', () => {
  for (const node of ['h1', 'h2', 'grpc'] as const) {
    test(`bookinfo ${node}`, () => {
      const resources = buildEndpoints(bookinfoInput(node));
      assertGolden(join(import.meta.dirname, 'golden', `endpoints-${node}.json`), `${JSON.stringify(resources, null, 2)}\n`);
    });
  }

  test('every assignment encodes as ClusterLoadAssignment named after its cluster', () => {
    for (const node of ['h1', 'h2', 'gw', 'grpc'] as const) {
      for (const r of buildEndpoints(bookinfoInput(node))) {
        const decoded = decodeAny<{ cluster_name: string }>(encodeAny(EDS, r.message));
        assert.equal(decoded.cluster_name, r.name);
      }
    }
  });

  test('exactly the EDS clusters get an assignment', () => {
    for (const node of ['h1', 'grpc'] as const) {
      const input = bookinfoInput(node);
      const eds = buildClusters(input)
        .filter((c) => c.message.type === 'EDS')
        .map((c) => c.name);
      assert.deepEqual(
        buildEndpoints(input).map((r) => r.name),
        eds,
      );
    }
  });
});

describe('endpoints', () => {
  const h1 = buildEndpoints(bookinfoInput('h1'));

  test('endpoint ports: the endpoint port for the port name, else targetPort, else the service port', () => {
    assert.deepEqual(addresses(cla(h1, 'outbound|9080||reviews.default.mesh')), [
      { address: '198.18.0.12', port_value: 9080 },
      { address: '198.18.0.12', port_value: 9081 },
    ]);
    assert.deepEqual(addresses(cla(h1, 'outbound|9090||ratings.default.mesh')), [{ address: '198.18.0.13', port_value: 9090 }]);
    const yaml = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings, namespace: default}
spec:
  hosts: [ratings.default.mesh]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: web, protocol: HTTP, targetPort: 8080}, {number: 81, name: other, protocol: HTTP}]
  workloadSelector: {labels: {app: ratings}}`;
    const out = buildEndpoints(inputWith('h1', yaml));
    assert.deepEqual(addresses(cla(out, 'outbound|80||ratings.default.mesh')), [{ address: '198.18.0.13', port_value: 8080 }]);
    assert.deepEqual(addresses(cla(out, 'outbound|81||ratings.default.mesh')), [{ address: '198.18.0.13', port_value: 81 }]);
  });

  test('subset clusters hold only the endpoints their labels select', () => {
    assert.deepEqual(addresses(cla(h1, 'outbound|9080|v1|reviews.default.mesh')), [{ address: '198.18.0.12', port_value: 9080 }]);
    assert.deepEqual(addresses(cla(h1, 'outbound|9080|v2|reviews.default.mesh')), [{ address: '198.18.0.12', port_value: 9081 }]);
  });

  test('the unhealthy Consul endpoint is UNHEALTHY, the healthy one HEALTHY', () => {
    const db = cla(h1, 'outbound|5432||legacy-db.default.mesh');
    const status = Object.fromEntries(
      db.endpoints.flatMap((g) => g.lb_endpoints).map((e) => [e.endpoint.address.socket_address.address, e.health_status]),
    );
    assert.deepEqual(status, { '198.18.0.40': 'HEALTHY', '198.18.0.41': 'UNHEALTHY' });
  });

  test('localities group endpoints; each locality weighs the sum of its endpoint weights', () => {
    for (const node of ['h1', 'h2', 'grpc'] as const) {
      for (const r of buildEndpoints(bookinfoInput(node))) {
        for (const g of (r.message as unknown as Cla).endpoints) {
          const sum = g.lb_endpoints.reduce((s, e) => s + e.load_balancing_weight.value, 0);
          assert.equal(g.load_balancing_weight.value, sum, `${node} ${r.name}`);
          assert.ok(sum > 0);
        }
      }
    }
    const reviews = cla(h1, 'outbound|9080||reviews.default.mesh');
    assert.deepEqual(
      reviews.endpoints.map((g) => [g.locality, g.load_balancing_weight.value]),
      [
        [{ region: 'eu-west', zone: 'a' }, 1],
        [{ region: 'eu-west', zone: 'b' }, 2],
      ],
    );
    assert.deepEqual(cla(h1, 'outbound|5432||legacy-db.default.mesh').endpoints[0]?.locality, {});
  });

  test('tlsMode metadata only on meshed endpoints; every endpoint names its workload (istio.workload)', () => {
    type Meta = { filter_metadata: Record<string, { fields: Record<string, { stringValue: string }> }> };
    const meta = (c: Cla) => c.endpoints.flatMap((g) => g.lb_endpoints).map((e) => e.metadata as Meta | undefined);
    for (const m of meta(cla(h1, 'outbound|9080||reviews.default.mesh'))) {
      assert.deepEqual(m?.filter_metadata['envoy.transport_socket_match'], { fields: { tlsMode: { stringValue: 'istio' } } });
      assert.match(m?.filter_metadata.istio?.fields.workload?.stringValue ?? '', /^reviews-v\d;default;reviews;v\d;$/);
      assert.equal(m?.filter_metadata['vmesh.io']?.fields.service_account?.stringValue, 'reviews');
    }
    for (const name of ['outbound|9080||ratings.default.mesh', 'outbound|5432||legacy-db.default.mesh']) {
      for (const m of meta(cla(h1, name))) {
        assert.equal(m?.filter_metadata['envoy.transport_socket_match'], undefined, name);
        assert.ok(m?.filter_metadata.istio?.fields.workload?.stringValue, name);
      }
    }
  });

  test('with outlier detection, localities get failover priorities relative to the node (Istio)', () => {
    assert.equal(nodeLocality(bookinfoInput('h1').node), 'eu-west/a');
    assert.equal(nodeLocality(bookinfoInput('grpc').node), undefined);
    const reviews = cla(h1, 'outbound|9080||reviews.default.mesh');
    assert.deepEqual(
      reviews.endpoints.map((g) => g.priority ?? 0),
      [0, 1],
    );
    // No locality known for the node: no priorities.
    const grpc = cla(buildEndpoints(bookinfoInput('grpc')), 'outbound|9080||reviews.default.mesh');
    assert.deepEqual(
      grpc.endpoints.map((g) => g.priority ?? 0),
      [0, 0],
    );
    // ratings has no outlier detection: a single priority.
    assert.ok(cla(h1, 'outbound|9080||ratings.default.mesh').endpoints.every((g) => g.priority === undefined));
  });

  test('localityLbSetting.distribute reweighs localities from the node locality and drops the rest', () => {
    const yaml = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer:
      localityLbSetting:
        distribute: [{from: "eu-west/a/*", to: {"eu-west/b/*": 80, "eu-west/a/*": 20}}]`;
    const c = cla(buildEndpoints(inputWith('h1', yaml)), 'outbound|9080||reviews.default.mesh');
    assert.deepEqual(
      c.endpoints.map((g) => [g.locality.zone, g.load_balancing_weight.value]),
      [
        ['a', 20],
        ['b', 80],
      ],
    );
    const onlyB = yaml.replace('"eu-west/b/*": 80, "eu-west/a/*": 20', '"eu-west/b": 100');
    const b = cla(buildEndpoints(inputWith('h1', onlyB)), 'outbound|9080||reviews.default.mesh');
    assert.deepEqual(
      b.endpoints.map((g) => g.locality.zone),
      ['b'],
    );
  });
});
