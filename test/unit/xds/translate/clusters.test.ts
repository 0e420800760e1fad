import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { Resource } from '../../../../src/api/resource.js';
import { parseResources } from '../../../../src/api/resource-parse.js';
import { CDS, decodeAny, EDS, encodeAny, RDS } from '../../../../src/xds/index.js';
import { buildClusters, hashPolicyFor, inboundPorts } from '../../../../src/xds/translate/clusters.js';
import { findDestinationRule, subsetsOf, trafficPolicyFor } from '../../../../src/xds/translate/destination-rule.js';
import { buildEndpoints } from '../../../../src/xds/translate/endpoints.js';
import type { EnvoyResource, TranslateInput } from '../../../../src/xds/translate/input.js';
import { tree } from '../../../support/envoy-tree.js';
import { assertGolden } from '../../../support/golden.js';
import { bookinfoInput, bookinfoResources } from './fixture.js';

/** Inbound connections leave from 127.0.0.6, or ::6 to an IPv6 destination (Istio's dual-stack sources). */
const INBOUND_BIND = {
  source_address: { address: '127.0.0.6', port_value: 0 },
  extra_source_addresses: [{ address: { address: '::6', port_value: 0 } }],
};

type Msg = Record<string, unknown>;
type NodeId = 'h1' | 'h2' | 'gw' | 'grpc';

function parse(yaml: string): Resource[] {
  const r = parseResources(yaml, { source: 'test.yaml' });
  if (!r.ok) throw new Error(JSON.stringify(r.error));
  return r.value;
}

/** The fixture with resources replaced (same kind/namespace/name) or added. */
function inputWith(node: NodeId, yaml: string, drop: (r: Resource) => boolean = () => false): TranslateInput {
  const extra = parse(yaml);
  const key = (r: Resource) => `${r.kind}/${r.metadata.namespace}/${r.metadata.name}`;
  const replaced = new Set(extra.map(key));
  const resources = [...bookinfoResources().filter((r) => !replaced.has(key(r)) && !drop(r)), ...extra];
  return bookinfoInput(node, { resources });
}

function cluster(resources: readonly EnvoyResource[], name: string): Msg {
  const c = resources.find((r) => r.name === name);
  assert.ok(c, `no cluster ${name} among ${resources.map((r) => r.name).join(', ')}`);
  return tree(c.message);
}

const REVIEWS = 'outbound|9080||reviews.default.mesh';
const REVIEWS_V1 = 'outbound|9080|v1|reviews.default.mesh';
const REVIEWS_V2 = 'outbound|9080|v2|reviews.default.mesh';
const RATINGS = 'outbound|9080||ratings.default.mesh';
const RATINGS_GRPC = 'outbound|9090||ratings.default.mesh';
const LEGACY_DB = 'outbound|5432||legacy-db.default.mesh';
const PAYMENTS = 'outbound|443||api.payments.example.com';

describe('buildClusters golden', () => {
  for (const node of ['h1', 'h2', 'grpc'] as const) {
    test(`bookinfo ${node}`, () => {
      const resources = buildClusters(bookinfoInput(node));
      assertGolden(join(import.meta.dirname, 'golden', `clusters-${node}.json`), `${JSON.stringify(resources, null, 2)}\n`);
    });
  }

  test('every cluster of every node encodes as envoy.config.cluster.v3.Cluster, named as the resource', () => {
    for (const node of ['h1', 'h2', 'gw', 'grpc'] as const) {
      const resources = buildClusters(bookinfoInput(node));
      assert.ok(resources.length > 0);
      for (const r of resources) {
        const decoded = decodeAny<{ name: string }>(encodeAny(CDS, r.message));
        assert.equal(decoded.name, r.name);
      }
    }
  });

  test("gRPC's xDS client accepts every proxyless cluster and load assignment", () => {
    // The validators grpc-js-xds runs on each CDS/EDS resource it receives (a failure there NACKs the update).
    const req = createRequire(import.meta.url);
    const dir = join(req.resolve('@grpc/grpc-js-xds/package.json'), '..', 'build', 'src', 'xds-resource-type');
    type Decoder = { get(): { decode(ctx: unknown, any: unknown): { error?: string } } };
    const { ClusterResourceType } = req(join(dir, 'cluster-resource-type.js')) as { ClusterResourceType: Decoder };
    const { EndpointResourceType } = req(join(dir, 'endpoint-resource-type.js')) as { EndpointResourceType: Decoder };
    const ctx = { bootstrap: { certificateProviders: {} }, server: {} };
    const input = bookinfoInput('grpc');
    for (const r of buildClusters(input))
      assert.equal(ClusterResourceType.get().decode(ctx, encodeAny(CDS, r.message)).error, undefined, r.name);
    for (const r of buildEndpoints(input))
      assert.equal(EndpointResourceType.get().decode(ctx, encodeAny(EDS, r.message)).error, undefined, r.name);
  });

  test('output is sorted by name and deterministic', () => {
    const a = buildClusters(bookinfoInput('h1'));
    const names = a.map((r) => r.name);
    assert.deepEqual(
      names,
      [...names].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0)),
    );
    assert.equal(JSON.stringify(a), JSON.stringify(buildClusters(bookinfoInput('h1'))));
  });
});

describe('outbound clusters', () => {
  const h1 = buildClusters(bookinfoInput('h1'));

  test('one EDS cluster per service port and per DestinationRule subset, each fetching its own assignment', () => {
    for (const name of [REVIEWS, REVIEWS_V1, REVIEWS_V2, RATINGS, RATINGS_GRPC, LEGACY_DB, 'outbound|9080||productpage.default.mesh']) {
      const c = cluster(h1, name);
      assert.equal(c.type, 'EDS');
      assert.deepEqual(c.eds_cluster_config, { service_name: name, eds_config: { ads: {}, resource_api_version: 'V3' } });
    }
    const subsets = h1.filter((r) => r.name.endsWith('|reviews.default.mesh') && !r.name.includes('||'));
    assert.deepEqual(
      subsets.map((r) => r.name),
      [REVIEWS_V1, REVIEWS_V2],
    );
  });

  test('a DNS ServiceEntry becomes STRICT_DNS with the host itself as load_assignment (LOGICAL_DNS for gRPC)', () => {
    const c = cluster(h1, PAYMENTS);
    assert.equal(c.type, 'STRICT_DNS');
    assert.equal(c.eds_cluster_config, undefined);
    const la = c.load_assignment as { cluster_name: string; endpoints: Array<{ lb_endpoints: Msg[] }> };
    assert.equal(la.cluster_name, PAYMENTS);
    assert.deepEqual(la.endpoints[0]?.lb_endpoints[0]?.endpoint, {
      address: { socket_address: { address: 'api.payments.example.com', port_value: 443 } },
    });
    assert.equal(cluster(buildClusters(bookinfoInput('grpc')), PAYMENTS).type, 'LOGICAL_DNS');
  });

  test('resolution NONE becomes ORIGINAL_DST (and gRPC clients, which cannot use it, do not get it)', () => {
    const yaml = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: any-db, namespace: default}
spec: {hosts: [db.example.net], location: MESH_EXTERNAL, resolution: NONE, ports: [{number: 5432, name: tcp, protocol: TCP}]}`;
    const c = cluster(buildClusters(inputWith('h1', yaml)), 'outbound|5432||db.example.net');
    assert.equal(c.type, 'ORIGINAL_DST');
    assert.equal(c.lb_policy, 'CLUSTER_PROVIDED');
    assert.ok(!buildClusters(inputWith('grpc', yaml)).some((r) => r.name === 'outbound|5432||db.example.net'));
  });

  test('auto mTLS only toward services with meshed endpoints', () => {
    const reviews = cluster(h1, REVIEWS);
    const matches = reviews.transport_socket_matches as Array<{ name: string; match: Msg; transport_socket: Msg }>;
    assert.deepEqual(
      matches.map((m) => m.name),
      ['tlsMode-istio', 'tlsMode-disabled'],
    );
    assert.deepEqual(matches[0]?.match, { fields: { tlsMode: { stringValue: 'istio' } } });
    const tls = matches[0]?.transport_socket.typed_config as { sni: string; common_tls_context: Msg };
    assert.equal(tls.sni, 'outbound_.9080_._.reviews.default.mesh');
    assert.match(JSON.stringify(tls.common_tls_context), /spiffe:\/\/cluster\.local\/ns\/default\/sa\/reviews/);
    assert.equal(matches[1]?.transport_socket.name, 'envoy.transport_sockets.raw_buffer');
    const v2 = cluster(h1, REVIEWS_V2).transport_socket_matches as Array<{ transport_socket: { typed_config: { sni: string } } }>;
    assert.equal(v2[0]?.transport_socket.typed_config.sni, 'outbound_.9080_.v2_.reviews.default.mesh');
    // ratings runs on h3, which never joined; legacy-db is Consul-only.
    for (const name of [RATINGS, RATINGS_GRPC, LEGACY_DB]) {
      assert.equal(cluster(h1, name).transport_socket_matches, undefined, name);
      assert.equal(cluster(h1, name).transport_socket, undefined, name);
    }
  });

  test('DestinationRule ISTIO_MUTUAL forces mTLS, DISABLE forces plaintext', () => {
    const yaml = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings, namespace: default}
spec: {host: ratings, trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec: {host: reviews, trafficPolicy: {tls: {mode: DISABLE}}, subsets: [{name: v1, labels: {version: v1}, trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}}]}`;
    const out = buildClusters(inputWith('h1', yaml));
    const ratings = cluster(out, RATINGS);
    assert.equal(ratings.transport_socket_matches, undefined);
    const ts = ratings.transport_socket as { name: string; typed_config: { sni: string; common_tls_context: Msg } };
    assert.equal(ts.name, 'envoy.transport_sockets.tls');
    assert.equal(ts.typed_config.sni, 'outbound_.9080_._.ratings.default.mesh');
    assert.match(JSON.stringify(ts.typed_config.common_tls_context), /sa\/ratings/);
    const reviews = cluster(out, REVIEWS);
    assert.equal(reviews.transport_socket_matches, undefined);
    assert.equal(reviews.transport_socket, undefined);
    assert.equal((cluster(out, REVIEWS_V1).transport_socket as Msg).name, 'envoy.transport_sockets.tls');
  });

  test('SIMPLE TLS origination validates against the system CA bundle with the configured SNI', () => {
    const ts = cluster(h1, PAYMENTS).transport_socket as { typed_config: { sni: string; common_tls_context: Msg } };
    assert.equal(ts.typed_config.sni, 'api.payments.example.com');
    assert.deepEqual(ts.typed_config.common_tls_context, {
      validation_context: { trusted_ca: { filename: '/etc/ssl/certs/ca-certificates.crt' } },
    });
  });

  test('load balancer: LEAST_REQUEST, consistent hash as RING_HASH / MAGLEV, RANDOM', () => {
    assert.equal(cluster(h1, REVIEWS).lb_policy, 'LEAST_REQUEST');
    assert.equal(cluster(h1, REVIEWS_V1).lb_policy, 'LEAST_REQUEST');
    assert.equal(cluster(h1, REVIEWS_V2).lb_policy, 'RING_HASH');
    assert.deepEqual(cluster(h1, REVIEWS_V2).ring_hash_lb_config, { minimum_ring_size: { value: 1024 } });
    assert.equal(cluster(h1, RATINGS).lb_policy, 'MAGLEV');
    assert.deepEqual(cluster(h1, RATINGS).maglev_lb_config, { table_size: { value: 65537 } });
    // gRPC's xDS client knows ROUND_ROBIN (the default) and RING_HASH only.
    const grpc = buildClusters(bookinfoInput('grpc'));
    assert.equal(cluster(grpc, REVIEWS).lb_policy, undefined);
    assert.equal(cluster(grpc, RATINGS).lb_policy, 'RING_HASH');
    const random = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings, namespace: default}
spec: {host: ratings, trafficPolicy: {loadBalancer: {simple: RANDOM}, portLevelSettings: [{port: {number: 9090}, loadBalancer: {consistentHash: {useSourceIp: true, ringHash: {minimumRingSize: 4096}}}}]}}`;
    const out = buildClusters(inputWith('h1', random));
    assert.equal(cluster(out, RATINGS).lb_policy, 'RANDOM');
    assert.equal(cluster(out, RATINGS_GRPC).lb_policy, 'RING_HASH');
    assert.deepEqual(cluster(out, RATINGS_GRPC).ring_hash_lb_config, { minimum_ring_size: { value: 4096 } });
  });

  test("warmup becomes Envoy's slow_start_config on ROUND_ROBIN and LEAST_REQUEST clusters, as Istio builds it", () => {
    const dr = (lb: string) => `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings, namespace: default}
spec: {host: ratings, trafficPolicy: {loadBalancer: ${lb}, portLevelSettings: [{port: {number: 9090}, loadBalancer: {simple: RANDOM, warmup: {duration: 10s}}}]}}`;
    const full = buildClusters(inputWith('h1', dr('{simple: LEAST_REQUEST, warmup: {duration: 300s, minimumPercent: 5, aggression: 2}}')));
    assert.deepEqual(cluster(full, RATINGS).least_request_lb_config, {
      slow_start_config: {
        slow_start_window: { seconds: 300, nanos: 0 },
        aggression: { default_value: 2, runtime_key: 'upstream.slow_start.aggression' },
        min_weight_percent: { value: 5 },
      },
    });
    assert.equal(cluster(full, RATINGS_GRPC).lb_policy, 'RANDOM', 'RANDOM has no slow start: warmup is ignored, as in Istio');
    assert.equal(cluster(full, RATINGS_GRPC).round_robin_lb_config, undefined);
    // defaults: linear, 10 %; round robin (the unset policy) gets it too; the older warmupDurationSecs sets the window only
    const rr = buildClusters(inputWith('h1', dr('{warmup: {duration: 1.5s}}')));
    assert.deepEqual(cluster(rr, RATINGS).round_robin_lb_config, {
      slow_start_config: {
        slow_start_window: { seconds: 1, nanos: 500_000_000 },
        aggression: { default_value: 1, runtime_key: 'upstream.slow_start.aggression' },
        min_weight_percent: { value: 10 },
      },
    });
    const old = buildClusters(inputWith('h1', dr('{simple: ROUND_ROBIN, warmupDurationSecs: 15s}')));
    assert.deepEqual(cluster(old, RATINGS).round_robin_lb_config, { slow_start_config: { slow_start_window: { seconds: 15, nanos: 0 } } });
    // proxyless gRPC clients have no slow start
    const grpc = buildClusters(inputWith('grpc', dr('{warmup: {duration: 1s}}')));
    assert.equal(cluster(grpc, RATINGS).round_robin_lb_config, undefined);
  });

  test('connection pool: circuit breakers, connect timeout, HTTP protocol options; http2 for GRPC ports', () => {
    const c = cluster(h1, REVIEWS);
    assert.deepEqual(c.connect_timeout, { seconds: 2, nanos: 0 });
    assert.deepEqual(c.circuit_breakers, {
      thresholds: [
        {
          max_connections: { value: 100 },
          max_pending_requests: { value: 50 },
          max_requests: { value: 200 },
          max_retries: { value: 3 },
          track_remaining: true,
        },
      ],
    });
    const opts = (c.typed_extension_protocol_options as Record<string, Msg>)['envoy.extensions.upstreams.http.v3.HttpProtocolOptions'];
    assert.deepEqual(opts?.common_http_protocol_options, { max_requests_per_connection: { value: 10 } });
    assert.deepEqual(opts?.explicit_http_config, { http_protocol_options: {} });
    const grpcPort = (cluster(h1, RATINGS_GRPC).typed_extension_protocol_options as Record<string, Msg>)[
      'envoy.extensions.upstreams.http.v3.HttpProtocolOptions'
    ];
    // ratings' http2KeepAlive: PINGs on its HTTP/2 (gRPC) port; its HTTP/1.1 port has no HTTP/2 connection to ping.
    assert.deepEqual(grpcPort?.explicit_http_config, {
      http2_protocol_options: { connection_keepalive: { interval: { seconds: 15, nanos: 0 }, timeout: { seconds: 5, nanos: 0 } } },
    });
    assert.equal(cluster(h1, RATINGS).typed_extension_protocol_options, undefined);
    // Without a DestinationRule: Istio's 10s connect timeout and open circuit breakers.
    const pp = cluster(h1, 'outbound|9080||productpage.default.mesh');
    assert.deepEqual(pp.connect_timeout, { seconds: 10, nanos: 0 });
    assert.equal(
      (pp.circuit_breakers as { thresholds: Array<{ max_retries: { value: number } }> }).thresholds[0]?.max_retries.value,
      4294967295,
    );
  });

  test('outlier detection as Istio sets it, with the panic threshold off', () => {
    const c = cluster(h1, REVIEWS);
    assert.deepEqual(c.outlier_detection, {
      enforcing_success_rate: { value: 0 },
      consecutive_5xx: { value: 5 },
      enforcing_consecutive_5xx: { value: 100 },
      interval: { seconds: 10, nanos: 0 },
      base_ejection_time: { seconds: 30, nanos: 0 },
      max_ejection_percent: { value: 50 },
    });
    assert.deepEqual(c.common_lb_config, { healthy_panic_threshold: { value: 0 } });
    assert.equal(cluster(h1, RATINGS).outlier_detection, undefined);
  });

  test('localityLbSetting turns on locality-weighted load balancing where endpoints have localities', () => {
    const yaml = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings, namespace: default}
spec: {host: ratings, trafficPolicy: {loadBalancer: {localityLbSetting: {enabled: true}}}}`;
    const c = cluster(buildClusters(inputWith('h1', yaml)), RATINGS);
    assert.deepEqual(c.common_lb_config, { locality_weighted_lb_config: {} });
    assert.equal(cluster(h1, RATINGS).common_lb_config, undefined);
  });

  test('a HealthCheck becomes active health checks on every cluster of that host and port', () => {
    for (const name of [REVIEWS, REVIEWS_V1, REVIEWS_V2]) {
      assert.deepEqual(cluster(h1, name).health_checks, [
        {
          timeout: { seconds: 1, nanos: 0 },
          interval: { seconds: 5, nanos: 0 },
          unhealthy_threshold: { value: 3 },
          healthy_threshold: { value: 2 },
          http_health_check: { host: 'reviews.default.mesh', path: '/health', expected_statuses: [{ start: 200, end: 201 }] },
        },
      ]);
    }
    assert.equal(cluster(h1, RATINGS).health_checks, undefined);
    const tcp = `apiVersion: vmesh.io/v1alpha1
kind: HealthCheck
metadata: {name: db, namespace: default}
spec: {host: legacy-db, port: 5432, tcp: {}, interval: 2s, timeout: 500ms}`;
    const hc = cluster(buildClusters(inputWith('h1', tcp)), LEGACY_DB).health_checks as Msg[];
    assert.deepEqual(hc[0], {
      timeout: { seconds: 0, nanos: 500_000_000 },
      interval: { seconds: 2, nanos: 0 },
      unhealthy_threshold: { value: 3 },
      healthy_threshold: { value: 2 },
      tcp_health_check: {},
    });
  });
});

describe('local and fixed clusters', () => {
  test('inbound clusters per local workload port, from 127.0.0.6 to 127.0.0.1', () => {
    const h2 = buildClusters(bookinfoInput('h2'));
    assert.deepEqual(
      inboundPorts(bookinfoInput('h2')).map((p) => p.port),
      [9080, 9081],
    );
    for (const port of [9080, 9081]) {
      const c = cluster(h2, `inbound|${port}||`);
      assert.equal(c.type, 'STATIC');
      assert.deepEqual(c.upstream_bind_config, INBOUND_BIND);
      assert.deepEqual(c.load_assignment, {
        cluster_name: `inbound|${port}||`,
        endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } } }] }],
      });
    }
    assert.ok(!buildClusters(bookinfoInput('gw')).some((r) => r.name.startsWith('inbound|')));
  });

  test('Passthrough, BlackHole and InboundPassthrough clusters', () => {
    const h1 = buildClusters(bookinfoInput('h1'));
    assert.equal(cluster(h1, 'PassthroughCluster').type, 'ORIGINAL_DST');
    assert.equal(cluster(h1, 'BlackHoleCluster').type, 'STATIC');
    assert.equal(cluster(h1, 'BlackHoleCluster').load_assignment, undefined);
    const ipt = cluster(h1, 'InboundPassthroughCluster');
    assert.equal(ipt.type, 'ORIGINAL_DST');
    assert.deepEqual(ipt.upstream_bind_config, INBOUND_BIND);
    const gw = buildClusters(bookinfoInput('gw'));
    assert.ok(!gw.some((r) => r.name === 'InboundPassthroughCluster'));
    assert.ok(gw.some((r) => r.name === 'BlackHoleCluster'));
  });

  test('proxyless clients get only outbound clusters, without transport sockets or health checks', () => {
    const grpc = buildClusters(bookinfoInput('grpc'));
    assert.ok(grpc.every((r) => r.name.startsWith('outbound|')));
    for (const r of grpc) {
      assert.equal(r.message.transport_socket_matches, undefined, r.name);
      assert.equal(r.message.transport_socket, undefined, r.name);
      assert.equal(r.message.health_checks, undefined, r.name);
      assert.ok(['EDS', 'LOGICAL_DNS'].includes(String(r.message.type)), r.name);
    }
  });
});

describe('DestinationRule helpers', () => {
  const drYaml = (name: string, ns: string, host: string, extra = '') => `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ${name}, namespace: ${ns}}
spec: {host: "${host}", trafficPolicy: {loadBalancer: {simple: RANDOM}}${extra}}
`;

  test('lookup order: client namespace, then the service namespace, then the root namespace; exportTo respected', () => {
    const yaml = [
      drYaml('root', 'vmesh-system', '*.default.mesh'),
      drYaml('client', 'team', 'reviews.default.svc.cluster.local'),
      drYaml('hidden', 'other', 'reviews.default.mesh', ', exportTo: ["."]'),
    ].join('---\n');
    const input = inputWith('h1', yaml);
    assert.equal(findDestinationRule(input, 'reviews.default.mesh', 'team')?.metadata.name, 'client');
    assert.equal(findDestinationRule(input, 'reviews.default.mesh', 'default')?.metadata.name, 'reviews');
    assert.equal(findDestinationRule(input, 'reviews.default.mesh', 'other')?.metadata.name, 'hidden');
    assert.equal(findDestinationRule(input, 'reviews.default.mesh', 'elsewhere')?.metadata.name, 'reviews');
    assert.equal(findDestinationRule(input, 'productpage.default.mesh', 'elsewhere')?.metadata.name, 'root');
    assert.equal(findDestinationRule(input, 'api.payments.example.com', 'elsewhere')?.metadata.name, 'payments-api');
    const onlyDefault = inputWith('h1', drYaml('reviews', 'default', 'reviews', ', exportTo: ["."]'));
    assert.equal(findDestinationRule(onlyDefault, 'reviews.default.mesh', 'team'), undefined);
  });

  test('the exact host beats a wildcard in the same namespace', () => {
    const input = inputWith('h1', drYaml('wild', 'default', '*.default.mesh'));
    assert.equal(findDestinationRule(input, 'reviews.default.mesh', 'default')?.metadata.name, 'reviews');
    assert.equal(findDestinationRule(input, 'productpage.default.mesh', 'default')?.metadata.name, 'wild');
  });

  test('merging: subset fields override, port-level settings replace without inheriting', () => {
    const yaml = drYaml(
      'reviews',
      'default',
      'reviews',
      `, subsets: [{name: v1, labels: {version: v1}, trafficPolicy: {outlierDetection: {consecutive5xxErrors: 1}}},
  {name: v2, labels: {version: v2}, trafficPolicy: {portLevelSettings: [{port: {number: 9080}, tls: {mode: DISABLE}}]}}]`,
    ).replace(
      'trafficPolicy: {loadBalancer: {simple: RANDOM}}',
      'trafficPolicy: {loadBalancer: {simple: RANDOM}, portLevelSettings: [{port: {number: 9090}, connectionPool: {tcp: {maxConnections: 7}}}]}',
    );
    const dr = findDestinationRule(inputWith('h1', yaml), 'reviews.default.mesh', 'default');
    assert.deepEqual(trafficPolicyFor(dr, 9080), { loadBalancer: { simple: 'RANDOM' } });
    assert.deepEqual(trafficPolicyFor(dr, 9090), { connectionPool: { tcp: { maxConnections: 7 } } });
    assert.deepEqual(trafficPolicyFor(dr, 9080, 'v1'), {
      loadBalancer: { simple: 'RANDOM' },
      outlierDetection: { consecutive5xxErrors: 1 },
    });
    assert.deepEqual(trafficPolicyFor(dr, 9080, 'v2'), { tls: { mode: 'DISABLE' } });
    assert.deepEqual(trafficPolicyFor(dr, 9090, 'v2'), { connectionPool: { tcp: { maxConnections: 7 } } });
    assert.equal(trafficPolicyFor(undefined, 9080), undefined);
    assert.deepEqual(subsetsOf(dr), [
      { name: 'v1', labels: { version: 'v1' } },
      { name: 'v2', labels: { version: 'v2' } },
    ]);
  });

  test('hashPolicyFor: header, cookie with ttl, source ip', () => {
    const input = bookinfoInput('h1');
    const reviews = findDestinationRule(input, 'reviews.default.mesh', 'default');
    assert.deepEqual(hashPolicyFor(trafficPolicyFor(reviews, 9080, 'v2')), [{ header: { header_name: 'x-user' } }]);
    assert.deepEqual(hashPolicyFor(trafficPolicyFor(reviews, 9080, 'v1')), []);
    const ratings = findDestinationRule(input, 'ratings.default.mesh', 'default');
    assert.deepEqual(hashPolicyFor(trafficPolicyFor(ratings, 9080)), [{ connection_properties: { source_ip: true } }]);
    const cookie = inputWith(
      'h1',
      drYaml('ratings', 'default', 'ratings').replace(
        '{simple: RANDOM}',
        '{consistentHash: {httpCookie: {name: session, path: /, ttl: 1.5s}}}',
      ),
    );
    const dr = findDestinationRule(cookie, 'ratings.default.mesh', 'default');
    const cookiePolicy = hashPolicyFor(trafficPolicyFor(dr, 9080));
    assert.deepEqual(cookiePolicy, [{ cookie: { name: 'session', path: '/', ttl: { seconds: 1, nanos: 500_000_000 } } }]);
    // They are RouteAction.hash_policy entries.
    const route = (hash_policy: unknown) => ({ match: { prefix: '/' }, route: { cluster: 'c', hash_policy } });
    const policies = [cookiePolicy, [{ header: { header_name: 'x-user' } }], [{ connection_properties: { source_ip: true } }]];
    encodeAny(RDS, { name: 'r', virtual_hosts: [{ name: 'v', domains: ['*'], routes: policies.map(route) }] });
  });
});
