import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { DEFAULT_MESH_CONFIG, type MeshConfig } from '../../../../src/api/mesh-config.js';
import type { Resource } from '../../../../src/api/resource.js';
import { parseResources } from '../../../../src/api/resource-parse.js';
import { CDS, decodeAny, encodeAny, LDS, RDS, TypedConfigUrl } from '../../../../src/xds/index.js';
import { translateNode } from '../../../../src/xds/translate/index.js';
import type { EnvoyResource, TranslateInput } from '../../../../src/xds/translate/input.js';
import { buildListeners } from '../../../../src/xds/translate/listeners.js';
import { tree } from '../../../support/envoy-tree.js';
import { assertGolden } from '../../../support/golden.js';
import { bookinfoInput, bookinfoResources } from './fixture.js';

type Msg = Record<string, unknown>;
type NodeId = 'h1' | 'h2' | 'gw' | 'grpc';

function parse(yaml: string): Resource[] {
  const r = parseResources(yaml, { source: 'test.yaml' });
  if (!r.ok) throw new Error(JSON.stringify(r.error));
  return r.value;
}

function inputWith(node: NodeId, yaml: string, mesh?: MeshConfig): TranslateInput {
  return bookinfoInput(node, { resources: [...bookinfoResources(), ...parse(yaml)], ...(mesh ? { mesh } : {}) });
}

function listener(resources: readonly EnvoyResource[], name: string): Msg {
  const l = resources.find((r) => r.name === name);
  assert.ok(l, `no listener ${name} among ${resources.map((r) => r.name).join(', ')}`);
  return tree(l.message);
}

const chains = (l: Msg) => (l.filter_chains ?? []) as Msg[];
const match = (c: Msg) => (c.filter_chain_match ?? {}) as Msg;
const filters = (c: Msg) => c.filters as Msg[];
const typed = (f: Msg) => f.typed_config as Msg;
const portChains = (l: Msg, port: number) => chains(l).filter((c) => (match(c).destination_port as Msg | undefined)?.value === port);

/** A WorkloadEntry for ratings on h2, so PeerAuthentication ratings-permissive selects a local workload. */
const RATINGS_ON_H2 = `
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: ratings-v2
  namespace: default
  labels: {app: ratings, version: v2}
  annotations: {vmesh.io/host: h2}
spec: {address: 198.18.0.12, ports: {http: 9082, grpc-api: 9092}, labels: {app: ratings, version: v2}, serviceAccount: ratings}
`;

/** A TCP service whose endpoints are the reviews workloads (port 9000 on h2). */
const REVIEWS_TCP = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews-tcp, namespace: default}
spec:
  hosts: [reviews-tcp.default.mesh]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9000, name: tcp, protocol: TCP}]
  workloadSelector: {labels: {app: reviews, version: v1}}
`;

describe('buildListeners golden', () => {
  for (const node of ['h1', 'h2', 'gw', 'grpc'] as const) {
    test(`bookinfo ${node}`, () => {
      const resources = buildListeners(bookinfoInput(node));
      assertGolden(join(import.meta.dirname, 'golden', `listeners-${node}.json`), `${JSON.stringify(resources, null, 2)}\n`);
    });
  }

  test('every listener of every node encodes as envoy.config.listener.v3.Listener, named as the resource', () => {
    for (const node of ['h1', 'h2', 'gw', 'grpc'] as const) {
      const resources = buildListeners(bookinfoInput(node));
      assert.ok(resources.length > 0);
      for (const r of resources) {
        const decoded = decodeAny<{ name: string }>(encodeAny(LDS, r.message));
        assert.equal(decoded.name, r.name);
      }
    }
  });

  test('the output is deterministic and sorted by name', () => {
    const a = JSON.stringify(buildListeners(bookinfoInput('h2')));
    assert.equal(JSON.stringify(buildListeners(bookinfoInput('h2'))), a);
    const names = buildListeners(bookinfoInput('h2')).map((r) => r.name);
    assert.deepEqual(names, [...names].sort());
  });
});

/** Every value under `key` anywhere in a message (route config names, tcp_proxy clusters...). */
function collect(o: unknown, key: string, out: string[] = []): string[] {
  if (Array.isArray(o)) for (const x of o) collect(x, key, out);
  else if (o && typeof o === 'object') {
    for (const [k, v] of Object.entries(o)) {
      if (k === key && typeof v === 'string') out.push(v);
      else collect(v, key, out);
    }
  }
  return out;
}

describe('fits the other translators', () => {
  for (const node of ['h1', 'h2', 'gw', 'grpc'] as const) {
    test(`${node}: every route config a listener loads and every cluster a tcp_proxy names is built`, () => {
      const out = translateNode(bookinfoInput(node));
      const names = (t: string) => new Set((out[t] ?? []).map((r) => r.name));
      const listeners = out[LDS] ?? [];
      assert.ok(listeners.length > 0);
      const routes = collect(listeners, 'route_config_name');
      assert.ok(routes.length > 0);
      for (const r of routes) assert.ok(names(RDS).has(r), `route config ${r} is missing`);
      const messages = listeners.map((l) => l.message);
      const clusters = [...collect(messages, 'cluster'), ...(node === 'grpc' ? collect(out[RDS], 'cluster') : [])];
      assert.ok(clusters.length > 0);
      for (const c of clusters) assert.ok(names(CDS).has(c), `cluster ${c} is missing`);
    });
  }
});

describe('sidecar outbound', () => {
  test("one unbound listener per service VIP:port; HTTP ports use RDS on the service's own route, TCP ports tcp_proxy", () => {
    const ls = buildListeners(bookinfoInput('h1'));
    const input = bookinfoInput('h1');
    const reviews = input.model.services.get('reviews.default.mesh');
    assert.ok(reviews);
    const l = listener(ls, `${reviews.vip}_9080`);
    assert.deepEqual(l.bind_to_port, { value: false });
    assert.deepEqual(l.address, { socket_address: { address: reviews.vip, port_value: 9080 } });
    const hcm = typed(filters(chains(l)[0] as Msg)[0] as Msg);
    assert.equal((hcm.rds as Msg).route_config_name, 'reviews.default.mesh:9080');
    const httpFilters = hcm.http_filters as Msg[];
    assert.equal(httpFilters.at(-1)?.name, 'envoy.filters.http.router');
    const db = input.model.services.get('legacy-db.default.mesh');
    assert.ok(db);
    const tcp = typed(filters(chains(listener(ls, `${db.vip}_5432`))[0] as Msg)[0] as Msg);
    assert.equal(tcp['@type'], TypedConfigUrl.tcpProxy);
    assert.equal(tcp.cluster, 'outbound|5432||legacy-db.default.mesh');
  });

  test('VirtualService tcp routes split a TCP port by weight', () => {
    const input = inputWith(
      'h1',
      `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: db, namespace: default}
spec:
  hosts: [legacy-db]
  tcp:
  - route:
    - {destination: {host: legacy-db, subset: a}, weight: 80}
    - {destination: {host: legacy-db, subset: b}, weight: 20}
`,
    );
    const vip = input.model.services.get('legacy-db.default.mesh')?.vip ?? '';
    const tcp = typed(filters(chains(listener(buildListeners(input), `${vip}_5432`))[0] as Msg)[0] as Msg);
    assert.equal(tcp.cluster, undefined);
    assert.deepEqual(tcp.weighted_clusters, {
      clusters: [
        { name: 'outbound|5432|a|legacy-db.default.mesh', weight: 80 },
        { name: 'outbound|5432|b|legacy-db.default.mesh', weight: 20 },
      ],
    });
  });

  test('VirtualService tls routes give SNI chains (with tls_inspector) before the default chain', () => {
    const input = inputWith(
      'h1',
      `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: payments, namespace: default}
spec:
  hosts: [api.payments.example.com]
  tls:
  - match: [{sniHosts: [api.payments.example.com], port: 443}]
    route: [{destination: {host: legacy-db, port: {number: 5432}}}]
  - match: [{sniHosts: [other.example.com], port: 8443}]
    route: [{destination: {host: legacy-db}}]
`,
    );
    const vip = input.model.services.get('api.payments.example.com')?.vip ?? '';
    const l = listener(buildListeners(input), `${vip}_443`);
    assert.deepEqual(
      (l.listener_filters as Msg[]).map((f) => f.name),
      ['envoy.filters.listener.tls_inspector'],
    );
    const [sni, fallback, ...rest] = chains(l);
    assert.equal(rest.length, 0, 'the port-8443 match does not apply to port 443');
    assert.deepEqual(match(sni as Msg).server_names, ['api.payments.example.com']);
    assert.equal(typed(filters(sni as Msg)[0] as Msg).cluster, 'outbound|5432||legacy-db.default.mesh');
    assert.equal((fallback as Msg).filter_chain_match, undefined);
    assert.equal(typed(filters(fallback as Msg)[0] as Msg).cluster, 'outbound|443||api.payments.example.com');
    encodeAny(LDS, l);
  });

  test('15001 passes unknown destinations through under ALLOW_ANY', () => {
    const l = listener(buildListeners(bookinfoInput('h1')), 'virtualOutbound');
    assert.deepEqual(l.use_original_dst, { value: true });
    assert.deepEqual(
      (l.listener_filters as Msg[]).map((f) => f.name),
      ['envoy.filters.listener.original_dst'],
    );
    assert.equal(typed(filters(l.default_filter_chain as Msg)[0] as Msg).cluster, 'PassthroughCluster');
  });

  test('REGISTRY_ONLY in the mesh config sends unknown destinations to BlackHoleCluster', () => {
    const mesh: MeshConfig = { ...DEFAULT_MESH_CONFIG, outboundTrafficPolicy: { mode: 'REGISTRY_ONLY' } };
    const l = listener(buildListeners(bookinfoInput('h1', { mesh })), 'virtualOutbound');
    assert.equal(typed(filters(l.default_filter_chain as Msg)[0] as Msg).cluster, 'BlackHoleCluster');
  });

  test("a Sidecar's outboundTrafficPolicy overrides the mesh's", () => {
    const input = inputWith(
      'h1',
      `
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: default}
spec:
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
`,
    );
    const l = listener(buildListeners(input), 'virtualOutbound');
    assert.equal(typed(filters(l.default_filter_chain as Msg)[0] as Msg).cluster, 'BlackHoleCluster');
  });
});

describe('sidecar inbound (15006)', () => {
  test('mesh-wide STRICT: every port has only its mTLS chain, no raw_buffer chain anywhere', () => {
    const l = listener(buildListeners(bookinfoInput('h2')), 'virtualInbound');
    assert.deepEqual(l.address, { socket_address: { address: '0.0.0.0', port_value: 15006 } });
    for (const c of chains(l)) assert.notEqual(match(c).transport_protocol, 'raw_buffer', String(c.name));
    for (const port of [9080, 9081]) {
      const [only, ...rest] = portChains(l, port);
      assert.equal(rest.length, 0);
      assert.equal(match(only as Msg).transport_protocol, 'tls');
      assert.deepEqual(match(only as Msg).application_protocols, ['istio-peer-exchange', 'istio']);
      const tls = typed((only as Msg).transport_socket as Msg);
      assert.deepEqual(tls.require_client_certificate, { value: true });
      const certs = (tls.common_tls_context as Msg).tls_certificate_sds_secret_configs as Msg[];
      assert.equal(certs[0]?.name, 'spiffe://cluster.local/ns/default/sa/reviews');
    }
  });

  test('HTTP ports: HCM with the inbound route, XFCC set from the peer, RBAC in front of the router', () => {
    const l = listener(buildListeners(bookinfoInput('h2')), 'virtualInbound');
    const hcm = typed(filters(portChains(l, 9080)[0] as Msg)[0] as Msg);
    assert.equal((hcm.rds as Msg).route_config_name, 'inbound|9080||');
    assert.equal(hcm.forward_client_cert_details, 'SANITIZE_SET');
    assert.deepEqual(hcm.set_current_client_cert_details, { uri: true });
    const names = (hcm.http_filters as Msg[]).map((f) => f.name);
    assert.deepEqual(names, ['envoy.filters.http.rbac', 'envoy.filters.http.rbac', 'envoy.filters.http.router']);
    const actions = (hcm.http_filters as Msg[]).slice(0, 2).map((f) => (typed(f).rules as Msg).action);
    assert.deepEqual(actions, ['DENY', 'ALLOW']);
  });

  test('a PERMISSIVE workload (ratings) gets the mTLS chain and a raw_buffer chain on its ports', () => {
    const l = listener(buildListeners(inputWith('h2', RATINGS_ON_H2)), 'virtualInbound');
    for (const port of [9082, 9092]) {
      const protocols = portChains(l, port).map((c) => match(c).transport_protocol);
      assert.deepEqual(protocols, ['tls', 'raw_buffer'], `port ${port}`);
      const raw = portChains(l, port)[1] as Msg;
      assert.equal(raw.transport_socket, undefined);
    }
    for (const port of [9080, 9081]) assert.equal(portChains(l, port).length, 1, 'reviews stays STRICT');
  });

  test('a TCP port gets network RBAC and a tcp_proxy to its inbound cluster', () => {
    const l = listener(buildListeners(inputWith('h2', REVIEWS_TCP)), 'virtualInbound');
    const [only] = portChains(l, 9000);
    assert.ok(only);
    const fs = filters(only);
    assert.deepEqual(
      fs.map((f) => f.name),
      ['envoy.filters.network.rbac', 'envoy.filters.network.rbac', 'envoy.filters.network.tcp_proxy'],
    );
    assert.equal(typed(fs[0] as Msg)['@type'], TypedConfigUrl.networkRbac);
    assert.equal(typed(fs[2] as Msg).cluster, 'inbound|9000||');
    encodeAny(LDS, l);
  });

  test('ports no workload declares go to InboundPassthroughCluster, still mTLS-only under STRICT', () => {
    const l = listener(buildListeners(bookinfoInput('h2')), 'virtualInbound');
    const catchAll = chains(l).filter((c) => match(c).destination_port === undefined);
    assert.equal(catchAll.length, 1);
    assert.equal(match(catchAll[0] as Msg).transport_protocol, 'tls');
    assert.equal(typed(filters(catchAll[0] as Msg)[0] as Msg).cluster, 'InboundPassthroughCluster');
  });
});

describe('access logging', () => {
  test('the root Telemetry enables the envoy provider: text format (Envoy default) on HCMs and tcp_proxy', () => {
    const l = listener(buildListeners(bookinfoInput('h2')), 'virtualInbound');
    const hcm = typed(filters(portChains(l, 9080)[0] as Msg)[0] as Msg);
    const [log] = hcm.access_log as Msg[];
    assert.equal(log?.name, 'envoy.access_loggers.stdout');
    assert.equal(typed(log as Msg).log_format, undefined);
  });

  test('JSON encoding writes Envoy default fields as json_format', () => {
    const mesh: MeshConfig = { ...DEFAULT_MESH_CONFIG, defaultAccessLog: { enabled: true, encoding: 'JSON' } };
    const l = listener(buildListeners(bookinfoInput('h1', { mesh })), 'virtualOutbound');
    const [log] = typed(filters(l.default_filter_chain as Msg)[0] as Msg).access_log as Msg[];
    const fields = ((typed(log as Msg).log_format as Msg).json_format as Msg).fields as Msg;
    assert.deepEqual(fields.response_code, { stringValue: '%RESPONSE_CODE%' });
    assert.deepEqual(fields.upstream_host, { stringValue: '%UPSTREAM_HOST%' });
    encodeAny(LDS, l);
  });

  test('a namespace Telemetry disabling logging overrides the mesh-wide one', () => {
    const input = inputWith(
      'h1',
      `
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: quiet, namespace: default}
spec:
  accessLogging: [{disabled: true}]
`,
    );
    for (const l of buildListeners(input)) assert.ok(!JSON.stringify(l.message).includes('access_log'), l.name);
  });
  test('a response.code filter becomes a status_code_filter; true and false filter nothing and everything; an unknown provider logs nothing', () => {
    const filtered = inputWith(
      'h2',
      `
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: errors, namespace: default}
spec:
  accessLogging: [{match: {mode: SERVER}, providers: [{name: envoy}], filter: {expression: "response.code > 499"}}]
`,
    );
    const l = listener(buildListeners(filtered), 'virtualInbound');
    const [log] = typed(filters(portChains(l, 9080)[0] as Msg)[0] as Msg).access_log as Msg[];
    assert.deepEqual((log as Msg).filter, {
      status_code_filter: { comparison: { op: 'GE', value: { default_value: 500, runtime_key: 'vmesh.access_log.status' } } },
    });
    encodeAny(LDS, l);
    const outbound = listener(buildListeners(filtered), 'virtualOutbound');
    assert.equal(((typed(filters(outbound.default_filter_chain as Msg)[0] as Msg).access_log as Msg[])[0] as Msg).filter, undefined);
    const unknown = inputWith(
      'h2',
      `
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: otel, namespace: default}
spec:
  accessLogging: [{providers: [{name: otel}]}]
`,
    );
    const logsOf = (input: ReturnType<typeof inputWith>) =>
      (typed(filters(portChains(listener(buildListeners(input), 'virtualInbound'), 9080)[0] as Msg)[0] as Msg).access_log as
        | Msg[]
        | undefined) ?? [];
    assert.deepEqual(logsOf(unknown), [], 'Istio logs nothing for a provider its mesh config does not define');
    const constant = (expression: string) =>
      inputWith(
        'h2',
        `
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: all, namespace: default}
spec:
  accessLogging: [{providers: [{name: envoy}], filter: {expression: "${expression}"}}]
`,
      );
    assert.equal(logsOf(constant('true')).length, 1);
    assert.equal((logsOf(constant('true'))[0] as Msg).filter, undefined);
    assert.deepEqual(logsOf(constant('false')), []);
  });
});

describe('gateway', () => {
  test('HTTP, HTTPS SIMPLE and TLS PASSTHROUGH servers become bound listeners on their ports', () => {
    const ls = buildListeners(bookinfoInput('gw'));
    assert.deepEqual(
      ls.map((l) => l.name),
      ['0.0.0.0_8080', '0.0.0.0_8443', '0.0.0.0_9443'],
    );
    const http = listener(ls, '0.0.0.0_8080');
    assert.equal(http.bind_to_port, undefined, 'gateways bind their ports');
    assert.equal((typed(filters(chains(http)[0] as Msg)[0] as Msg).rds as Msg).route_config_name, 'http.8080');
    const https = chains(listener(ls, '0.0.0.0_8443'))[0] as Msg;
    assert.deepEqual(match(https).server_names, ['bookinfo.example.com']);
    const ctx = typed(https.transport_socket as Msg);
    const certs = (ctx.common_tls_context as Msg).tls_certificate_sds_secret_configs as Msg[];
    assert.equal(certs[0]?.name, 'file-cert:bookinfo-cert');
    assert.equal((typed(filters(https)[0] as Msg).rds as Msg).route_config_name, 'https.8443.https.bookinfo-gateway.default');
    const pass = listener(ls, '0.0.0.0_9443');
    assert.deepEqual(
      (pass.listener_filters as Msg[]).map((f) => f.name),
      ['envoy.filters.listener.tls_inspector'],
    );
    const [sni] = chains(pass);
    assert.deepEqual(match(sni as Msg).server_names, ['db.example.com']);
    assert.equal((sni as Msg).transport_socket, undefined, 'passthrough does not terminate TLS');
    assert.equal(typed(filters(sni as Msg)[0] as Msg).cluster, 'outbound|443||api.payments.example.com');
  });

  test('MUTUAL requires a client cert checked by the credential CA; ISTIO_MUTUAL uses the mesh identity; AUTO_PASSTHROUGH', () => {
    const input = inputWith(
      'gw',
      `
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: mtls, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 10443, name: https-mutual, protocol: HTTPS}
    hosts: ["secure.example.com"]
    tls: {mode: MUTUAL, credentialName: secure-cert}
  - port: {number: 15443, name: https-mesh, protocol: HTTPS}
    hosts: ["*"]
    tls: {mode: ISTIO_MUTUAL}
  - port: {number: 15444, name: tls-auto, protocol: TLS}
    hosts: ["*.default.mesh"]
    tls: {mode: AUTO_PASSTHROUGH}
`,
    );
    const ls = buildListeners(input);
    const mutual = typed(chains(listener(ls, '0.0.0.0_10443'))[0]?.transport_socket as Msg);
    assert.deepEqual(mutual.require_client_certificate, { value: true });
    assert.equal(((mutual.common_tls_context as Msg).validation_context_sds_secret_config as Msg).name, 'file-cert:secure-cert-cacert');
    const mesh = chains(listener(ls, '0.0.0.0_15443'))[0] as Msg;
    assert.equal(match(mesh).server_names, undefined, 'host * matches any SNI');
    const ctx = typed(mesh.transport_socket as Msg);
    assert.deepEqual(ctx.require_client_certificate, { value: true });
    assert.equal(((ctx.common_tls_context as Msg).tls_certificate_sds_secret_configs as Msg[])[0]?.name, 'default');
    // AUTO_PASSTHROUGH: the client's SNI names the cluster (Istio's convention); external services are not offered.
    const auto = chains(listener(ls, '0.0.0.0_15444'));
    const v1 = auto.find((c) => (match(c).server_names as string[])[0] === 'outbound_.9080_.v1_.reviews.default.mesh');
    assert.ok(v1);
    assert.equal(typed(filters(v1)[0] as Msg).cluster, 'outbound|9080|v1|reviews.default.mesh');
    assert.equal(v1.transport_socket, undefined);
    assert.ok(!auto.some((c) => JSON.stringify(c).includes('api.payments.example.com')));
    for (const l of ls) encodeAny(LDS, l.message);
  });

  test('a gateway whose selector does not match the node contributes nothing', () => {
    assert.deepEqual(buildListeners({ ...bookinfoInput('gw'), node: { ...bookinfoInput('gw').node, labels: { istio: 'egress' } } }), []);
  });
});
