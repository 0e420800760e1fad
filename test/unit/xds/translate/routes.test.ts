import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { Resource } from '../../../../src/api/resource.js';
import { parseResources } from '../../../../src/api/resource-parse.js';
import { isVmeshError } from '../../../../src/lib/errors.js';
import { decodeAny, encodeAny, loadProtoRegistry, RDS } from '../../../../src/xds/index.js';
import type { EnvoyResource, TranslateInput } from '../../../../src/xds/translate/input.js';
import { buildListeners } from '../../../../src/xds/translate/listeners.js';
import { outboundClusterName, parseOutboundClusterName } from '../../../../src/xds/translate/names.js';
import { corsConfig, retryPolicy } from '../../../../src/xds/translate/route-action.js';
import {
  buildGatewayRoutes,
  buildInboundRoutes,
  buildOutboundRoutes,
  gatewayServerRouteName,
  inboundHttpPorts,
} from '../../../../src/xds/translate/routes.js';
import { inlineAny, tree } from '../../../support/envoy-tree.js';
import { assertGolden } from '../../../support/golden.js';
import { bookinfoInput, bookinfoResources } from './fixture.js';

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

function config(resources: readonly EnvoyResource[], name: string): Msg {
  const c = resources.find((r) => r.name === name);
  assert.ok(c, `no route config ${name} among ${resources.map((r) => r.name).join(', ')}`);
  return tree(c.message);
}

function vhost(rc: Msg, name: string): Msg {
  const vhs = rc.virtual_hosts as Msg[];
  const v = vhs.find((x) => x.name === name);
  assert.ok(v, `no virtual host ${name} among ${vhs.map((x) => x.name).join(', ')}`);
  return v;
}

/** A field of a route that must be there. */
function field<T = Msg>(r: Msg | undefined, key: string): T {
  assert.ok(r && r[key] !== undefined, `no ${key} in ${JSON.stringify(r)}`);
  return r[key] as T;
}

/** The routes of a service's virtual host on `port`, in the service's own route config (named as its virtual host). */
function routesOf(resources: readonly EnvoyResource[], port: string, vhName: string): Msg[] {
  assert.ok(vhName.endsWith(`:${port}`), `${vhName} is not on port ${port}`);
  return vhost(config(resources, vhName), vhName).routes as Msg[];
}

/** Every cluster name a route config mentions: routes, weighted clusters and mirrors. */
function clusterNames(resources: readonly EnvoyResource[]): string[] {
  const out: string[] = [];
  const walk = (v: unknown, key: string) => {
    if (Array.isArray(v)) for (const x of v) walk(x, key);
    else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) walk(x, k);
    else if (typeof v === 'string' && (key === 'cluster' || (key === 'name' && v.startsWith('outbound|')))) out.push(v);
  };
  walk(resources, '');
  return out;
}

const REVIEWS_VH = 'reviews.default.mesh:9080';
const RATINGS_VH = 'ratings.default.mesh:9080';
const PRODUCTPAGE_VH = 'productpage.default.mesh:9080';

describe('routes golden', () => {
  const cases: Array<[NodeId, (i: TranslateInput) => EnvoyResource[]]> = [
    ['h1', buildOutboundRoutes],
    ['h2', buildInboundRoutes],
    ['gw', buildGatewayRoutes],
  ];
  for (const [node, build] of cases) {
    test(`bookinfo ${node}`, () => {
      assertGolden(join(import.meta.dirname, 'golden', `routes-${node}.json`), `${JSON.stringify(build(bookinfoInput(node)), null, 2)}\n`);
    });
  }

  test('every route config of every node encodes as envoy.config.route.v3.RouteConfiguration, named as the resource', () => {
    let count = 0;
    for (const node of ['h1', 'h2', 'gw', 'grpc'] as const) {
      const input = bookinfoInput(node);
      for (const r of [...buildOutboundRoutes(input), ...buildInboundRoutes(input), ...buildGatewayRoutes(input)]) {
        const decoded = decodeAny<{ name: string }>(encodeAny(RDS, r.message));
        assert.equal(decoded.name, r.name);
        count++;
      }
    }
    assert.ok(count >= 8, `only ${count} route configs`);
  });

  test('output is deterministic and sorted by name', () => {
    for (const node of ['h1', 'h2', 'gw'] as const) {
      const all = (i: TranslateInput) => [...buildOutboundRoutes(i), ...buildInboundRoutes(i), ...buildGatewayRoutes(i)];
      assert.equal(JSON.stringify(all(bookinfoInput(node))), JSON.stringify(all(bookinfoInput(node))));
      for (const build of [buildOutboundRoutes, buildInboundRoutes, buildGatewayRoutes]) {
        const names = build(bookinfoInput(node)).map((r) => r.name);
        assert.deepEqual(names, [...names].sort());
      }
    }
  });
});

describe('outbound routes', () => {
  test('one route config per service and HTTP port, its virtual host taking every name a client may use, and any Host', () => {
    const rs = buildOutboundRoutes(bookinfoInput('h1'));
    assert.deepEqual(
      rs.map((r) => r.name),
      [PRODUCTPAGE_VH, RATINGS_VH, 'ratings.default.mesh:9090', REVIEWS_VH],
    );
    const vhs = (config(rs, REVIEWS_VH).virtual_hosts as Msg[]).map((v) => v.name);
    assert.deepEqual(vhs, [REVIEWS_VH]);
    const domains = vhost(config(rs, REVIEWS_VH), REVIEWS_VH).domains as string[];
    for (const d of [
      'reviews.default.mesh',
      'reviews:9080',
      'reviews.default',
      'reviews.default.svc.cluster.local:9080',
      '240.240.0.5',
      '*',
    ]) {
      assert.ok(domains.includes(d), `${d} missing from ${domains.join(', ')}`);
    }
  });

  test("ServiceEntry hosts on one IPv6 address share its first host's route config there, told apart by Host", () => {
    const yaml = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: shared, namespace: default}
spec:
  hosts: [b.shared.example, a.shared.example]
  addresses: ["2001:db8::77"]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
`;
    const input = inputWith('h1', yaml);
    const rs = buildOutboundRoutes(input);
    // Each host has its own VIP (and its own route there); the shared IPv6 address's listener is the first host's.
    assert.deepEqual(
      (config(rs, 'b.shared.example:80').virtual_hosts as Msg[]).map((v) => v.name),
      ['b.shared.example:80'],
    );
    const rc = config(rs, 'a.shared.example:80');
    const [a, b] = rc.virtual_hosts as Msg[];
    assert.ok(a && b);
    assert.equal(a.name, 'a.shared.example:80');
    assert.ok((a.domains as string[]).includes('*'));
    assert.equal(b.name, 'b.shared.example:80');
    assert.ok((b.domains as string[]).includes('b.shared.example'));
    assert.ok(!(b.domains as string[]).includes('2001:db8::77'), "the shared address is the first host's");
    const listeners = buildListeners(input).filter((l) => l.name === '2001:db8::77_80');
    assert.equal(listeners.length, 1);
    assert.match(JSON.stringify(listeners[0]?.message), /"route_config_name":"a\.shared\.example:80"/);
  });

  test('REGISTRY_ONLY: no catch-all domain, so a Host no service claims gets 404 as Istio blocks it', () => {
    const yaml = `apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: default}
spec:
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
`;
    const rs = buildOutboundRoutes(inputWith('h1', yaml));
    const domains = vhost(config(rs, REVIEWS_VH), REVIEWS_VH).domains as string[];
    assert.ok(domains.includes('reviews') && !domains.includes('*'), domains.join(', '));
  });

  test('a change to one service leaves the other route configs byte-identical', () => {
    const yaml = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - route: [{destination: {host: reviews, subset: v3}}]
`;
    const before = buildOutboundRoutes(bookinfoInput('h1'));
    const after = buildOutboundRoutes(inputWith('h1', yaml));
    const changed = after.filter((a) => JSON.stringify(a) !== JSON.stringify(before.find((b) => b.name === a.name))).map((c) => c.name);
    assert.deepEqual(changed, [REVIEWS_VH]);
  });

  test('a service without a VirtualService gets the default route to its cluster, with Istio default retries', () => {
    const [r, ...rest] = routesOf(buildOutboundRoutes(bookinfoInput('h1')), '9080', PRODUCTPAGE_VH);
    assert.equal(rest.length, 0);
    assert.deepEqual(r?.match, { prefix: '/' });
    const action = r?.route as Msg;
    assert.equal(action.cluster, outboundClusterName(9080, '', 'productpage.default.mesh'));
    assert.deepEqual(action.timeout, { seconds: 0, nanos: 0 });
    const retry = action.retry_policy as Msg;
    assert.equal(retry.retry_on, 'connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes');
    assert.deepEqual(retry.num_retries, { value: 2 });
    assert.deepEqual(retry.retriable_status_codes, [503]);
    assert.equal((retry.retry_host_predicate as Msg[])[0]?.name, 'envoy.retry_host_predicates.previous_hosts');
  });

  test('weights are preserved per weighted cluster, with per-destination headers', () => {
    const canary = routesOf(buildOutboundRoutes(bookinfoInput('h1')), '9080', REVIEWS_VH).find((r) => r.name === 'canary');
    const clusters = (field(canary, 'route').weighted_clusters as Msg).clusters as Msg[];
    assert.deepEqual(
      clusters.map((c) => [c.name, (c.weight as Msg).value]),
      [
        ['outbound|9080|v1|reviews.default.mesh', 90],
        ['outbound|9080|v2|reviews.default.mesh', 10],
      ],
    );
    assert.equal(clusters[0]?.request_headers_to_add, undefined);
    assert.deepEqual(clusters[1]?.request_headers_to_add, [
      { header: { key: 'x-canary', value: 'true' }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' },
    ]);
  });

  test('the header-matched route carries its retries, timeout and the subset hash policy', () => {
    const [jason] = routesOf(buildOutboundRoutes(bookinfoInput('h1')), '9080', REVIEWS_VH);
    assert.equal(jason?.name, 'jason');
    assert.deepEqual(jason?.match, { prefix: '/reviews', headers: [{ name: 'end-user', string_match: { exact: 'jason' } }] });
    const action = jason?.route as Msg;
    assert.equal(action.cluster, 'outbound|9080|v2|reviews.default.mesh');
    assert.deepEqual(action.timeout, { seconds: 6, nanos: 0 });
    assert.deepEqual(action.hash_policy, [{ header: { header_name: 'x-user' } }]);
    const retry = action.retry_policy as Msg;
    assert.equal(retry.retry_on, '5xx,connect-failure');
    assert.deepEqual(retry.num_retries, { value: 3 });
    assert.deepEqual(retry.per_try_timeout, { seconds: 2, nanos: 0 });
    // Consistent hashing keeps retries on the same host, and user retryOn replaces the default 503 code.
    assert.equal(retry.retry_host_predicate, undefined);
    assert.equal(retry.retriable_status_codes, undefined);
  });

  test('ratings: regex + method match, fault, rewrite, redirect and mirror', () => {
    const [first, redirect, mirror] = routesOf(buildOutboundRoutes(bookinfoInput('h1')), '9080', RATINGS_VH);
    assert.deepEqual(first?.match, {
      safe_regex: { regex: '^/ratings/[0-9]+$' },
      headers: [{ name: ':method', string_match: { exact: 'GET' } }],
    });
    assert.equal(field(first, 'route').prefix_rewrite, '/v1/ratings');
    const fault = field(first, 'typed_per_filter_config')['envoy.filters.http.fault'] as Msg;
    assert.deepEqual(fault.delay, { fixed_delay: { seconds: 5, nanos: 0 }, percentage: { numerator: 100_000, denominator: 'MILLION' } });
    assert.deepEqual(fault.abort, { http_status: 503, percentage: { numerator: 50_000, denominator: 'MILLION' } });
    assert.deepEqual(redirect?.redirect, { path_redirect: '/new', response_code: 'MOVED_PERMANENTLY' });
    assert.deepEqual(field(mirror, 'route').request_mirror_policies, [
      {
        cluster: 'outbound|9080||ratings.default.mesh',
        runtime_fraction: { default_value: { numerator: 250_000, denominator: 'MILLION' } },
        trace_sampled: { value: false },
      },
    ]);
  });

  test('every cluster a route names is an outbound cluster name with a subset the DestinationRule defines', () => {
    const names = clusterNames(buildOutboundRoutes(bookinfoInput('h1')));
    assert.ok(names.length > 0);
    const subsets: Record<string, string[]> = { 'reviews.default.mesh': ['', 'v1', 'v2'] };
    for (const n of names) {
      const parsed = parseOutboundClusterName(n);
      assert.ok(parsed, `${n} is not an outbound cluster name`);
      assert.ok((subsets[parsed.hostname] ?? ['']).includes(parsed.subset), `${n}: unknown subset`);
      assert.equal(outboundClusterName(parsed.port, parsed.subset, parsed.hostname), n);
    }
  });

  test('a gateway-bound VirtualService does not route mesh traffic', () => {
    const input = inputWith(
      'h1',
      `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: productpage-edge, namespace: default}
spec:
  hosts: [productpage]
  gateways: [bookinfo-gateway]
  http:
  - route: [{destination: {host: productpage, port: {number: 9999}}}]
`,
    );
    const rs = buildOutboundRoutes(input);
    assert.equal(routesOf(rs, '9080', PRODUCTPAGE_VH)[0]?.name, 'default');
    assert.ok(!JSON.stringify(rs).includes('bookinfo.example.com'));
    assert.ok(!clusterNames(rs).some((c) => c.includes('|9999|')));
  });

  test('a VirtualService bound to mesh and a gateway routes the mesh too', () => {
    const input = inputWith(
      'h1',
      `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: productpage-both, namespace: default}
spec:
  hosts: [productpage]
  gateways: [mesh, default/bookinfo-gateway]
  http:
  - route: [{destination: {host: productpage, port: {number: 9080}}}]
    timeout: 3s
`,
    );
    const [r] = routesOf(buildOutboundRoutes(input), '9080', PRODUCTPAGE_VH);
    assert.deepEqual(field(r, 'route').timeout, { seconds: 3, nanos: 0 });
  });

  test('short hosts resolve in the VirtualService namespace; another namespace names them with .namespace', () => {
    const input = inputWith(
      'h1',
      `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: pp, namespace: other}
spec:
  hosts: [productpage.default]
  http:
  - route: [{destination: {host: productpage.default, subset: v1}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: pp-short, namespace: other}
spec:
  hosts: [productpage]
  http:
  - route: [{destination: {host: productpage}}]
    timeout: 1s
`,
    );
    const [r, ...rest] = routesOf(buildOutboundRoutes(input), '9080', PRODUCTPAGE_VH);
    // `productpage` in namespace other is productpage.other.mesh: not this service.
    assert.equal(rest.length, 0);
    assert.equal(field(r, 'route').cluster, 'outbound|9080|v1|productpage.default.mesh');
  });

  test('exportTo "." hides a VirtualService from other namespaces', () => {
    const yaml = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: pp, namespace: other}
spec:
  hosts: [productpage.default]
  exportTo: ["."]
  http:
  - route: [{destination: {host: productpage.default}}]
    timeout: 1s
`;
    assert.equal(routesOf(buildOutboundRoutes(inputWith('h1', yaml)), '9080', PRODUCTPAGE_VH)[0]?.name, 'default');
  });

  test('match port, sourceLabels and sourceNamespace keep only the matches that apply to this node', () => {
    const yaml = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings, namespace: default}
spec:
  hosts: [ratings]
  http:
  - name: grpc-only
    match: [{port: 9090, uri: {prefix: /g}}]
    route: [{destination: {host: ratings, port: {number: 9090}}}]
  - name: from-productpage
    match: [{sourceLabels: {app: productpage}, uri: {prefix: /pp}}]
    route: [{destination: {host: ratings, port: {number: 9080}}}]
  - name: from-other-ns
    match: [{sourceNamespace: other, uri: {prefix: /o}}]
    route: [{destination: {host: ratings, port: {number: 9080}}}]
`;
    const names = (node: NodeId, port: string, vh: string) =>
      routesOf(buildOutboundRoutes(inputWith(node, yaml)), port, vh).map((r) => r.name);
    assert.deepEqual(names('h1', '9080', RATINGS_VH), ['from-productpage']);
    assert.deepEqual(names('h2', '9080', RATINGS_VH), ['default']);
    assert.deepEqual(names('h1', '9090', 'ratings.default.mesh:9090'), ['grpc-only', 'from-productpage']);
  });

  test('nothing after a catch-all route is kept', () => {
    const yaml = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: productpage, namespace: default}
spec:
  hosts: [productpage]
  http:
  - name: a
    match: [{uri: {prefix: /a}}, {uri: {prefix: /}}, {uri: {prefix: /never}}]
    route: [{destination: {host: productpage}}]
  - name: b
    route: [{destination: {host: productpage}}]
`;
    const rs = routesOf(buildOutboundRoutes(inputWith('h1', yaml)), '9080', PRODUCTPAGE_VH);
    assert.deepEqual(
      rs.map((r) => [r.name, r.match]),
      [
        ['a', { prefix: '/a' }],
        ['a', { prefix: '/' }],
      ],
    );
  });

  test('match kinds, header edits, rewrites, redirects, direct responses and retry settings', () => {
    const yaml = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: productpage, namespace: default}
spec:
  hosts: [productpage]
  http:
  - name: m
    match:
    - uri: {exact: /Login}
      ignoreUriCase: true
      withoutHeaders: {x-debug: {exact: "1"}, x-trace: {}}
      queryParams: {user: {regex: "a.*"}, flag: {}}
      authority: {prefix: shop}
      scheme: {exact: https}
    headers:
      request: {set: {x-b: "2", x-a: "1", host: other.example}, add: {x-c: "3"}, remove: [x-drop]}
      response: {remove: [server]}
    rewrite: {uriRegexRewrite: {match: "^/login(.*)$", rewrite: "/auth\\\\1"}}
    retries: {attempts: 0}
    route: [{destination: {host: productpage}}]
  - name: r
    match: [{uri: {prefix: /go}}]
    redirect: {authority: example.com, scheme: https, port: 443, redirectCode: 308}
  - name: d
    match: [{uri: {prefix: /gone}}]
    directResponse: {status: 410, body: {string: gone}}
  - name: codes
    retries: {attempts: 4, retryOn: "gateway-error,503,504", retryRemoteLocalities: true}
    route: [{destination: {host: productpage}}]
`;
    const [m, r, d, codes] = routesOf(buildOutboundRoutes(inputWith('h1', yaml)), '9080', PRODUCTPAGE_VH);
    assert.deepEqual(m?.match, {
      path: '/Login',
      case_sensitive: { value: false },
      headers: [
        { name: 'x-debug', string_match: { exact: '1' }, invert_match: true, treat_missing_header_as_empty: true },
        { name: 'x-trace', present_match: true, invert_match: true },
        { name: ':authority', string_match: { prefix: 'shop' } },
        { name: ':scheme', string_match: { exact: 'https' } },
      ],
      query_parameters: [
        { name: 'flag', present_match: true },
        { name: 'user', string_match: { safe_regex: { regex: 'a.*' } } },
      ],
    });
    const action = m?.route as Msg;
    assert.deepEqual(action.regex_rewrite, { pattern: { regex: '^/login(.*)$' }, substitution: '/auth\\1' });
    assert.equal(action.host_rewrite_literal, 'other.example');
    assert.equal(action.retry_policy, undefined, 'attempts: 0 disables retries');
    assert.deepEqual(
      field<Msg[]>(m, 'request_headers_to_add').map((h) => [(h.header as Msg).key, h.append_action]),
      [
        ['x-a', 'OVERWRITE_IF_EXISTS_OR_ADD'],
        ['x-b', 'OVERWRITE_IF_EXISTS_OR_ADD'],
        ['x-c', 'APPEND_IF_EXISTS_OR_ADD'],
      ],
    );
    assert.deepEqual(m?.request_headers_to_remove, ['x-drop']);
    assert.deepEqual(m?.response_headers_to_remove, ['server']);
    // 443 is https's default port: left out of the Location, as Istio does.
    assert.deepEqual(r?.redirect, { scheme_redirect: 'https', host_redirect: 'example.com', response_code: 'PERMANENT_REDIRECT' });
    assert.deepEqual(d?.direct_response, { status: 410, body: { inline_string: 'gone' } });
    const retry = field(codes, 'route').retry_policy as Msg;
    assert.equal(retry.retry_on, 'gateway-error,retriable-status-codes');
    assert.deepEqual(retry.retriable_status_codes, [503, 504]);
    assert.deepEqual(retry.num_retries, { value: 4 });
    assert.equal((retry.retry_priority as Msg).name, 'envoy.retry_priorities.previous_priorities');
    for (const rc of buildOutboundRoutes(inputWith('h1', yaml))) encodeAny(RDS, rc.message);
  });

  test('grpc fault aborts carry the gRPC status code', () => {
    const yaml = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings, namespace: default}
spec:
  hosts: [ratings]
  http:
  - fault: {abort: {grpcStatus: UNAVAILABLE, percentage: {value: 0.5}}}
    route: [{destination: {host: ratings, port: {number: 9090}}}]
`;
    const [r] = routesOf(buildOutboundRoutes(inputWith('h1', yaml)), '9090', 'ratings.default.mesh:9090');
    const fault = field(r, 'typed_per_filter_config')['envoy.filters.http.fault'] as Msg;
    assert.deepEqual(fault.abort, { grpc_status: 14, percentage: { numerator: 5000, denominator: 'MILLION' } });
  });

  test('a redirect code Envoy cannot send is refused, naming the resource and field', () => {
    const yaml = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: productpage, namespace: default}
spec:
  hosts: [productpage]
  http:
  - redirect: {uri: /x, redirectCode: 300}
`;
    assert.throws(
      () => buildOutboundRoutes(inputWith('h1', yaml)),
      (e: unknown) =>
        isVmeshError(e) &&
        e.code === 'VMESH_ERR_UNSUPPORTED_FIELD' &&
        /default\/productpage.*spec\.http\[0\]\.redirect\.redirectCode/.test(e.message),
    );
  });
});

describe('retry and CORS configs', () => {
  test('raw retry extension configs decode as the messages they name', () => {
    const reg = loadProtoRegistry([
      'envoy/config/route/v3/route.proto',
      'envoy/extensions/retry/priority/previous_priorities/v3/previous_priorities_config.proto',
      'envoy/extensions/retry/host/previous_hosts/v3/previous_hosts.proto',
    ]);
    const policy = retryPolicy({ attempts: 2, retryRemoteLocalities: true }, false);
    assert.ok(policy);
    const priority = (policy.retry_priority as { typed_config: { type_url: string; value: string } }).typed_config;
    const decoded = reg.decodeAny({ type_url: priority.type_url, value: Buffer.from(priority.value, 'base64') });
    assert.equal(decoded.update_frequency, 2);
    const host = (policy.retry_host_predicate as Array<{ typed_config: { type_url: string } }>)[0]?.typed_config;
    assert.ok(host && reg.has(host.type_url.slice(host.type_url.lastIndexOf('/') + 1)));
  });

  test('a CORS policy encodes as the CORS filter per-route config', () => {
    const reg = loadProtoRegistry(['envoy/extensions/filters/http/cors/v3/cors.proto']);
    const { '@type': type, ...fields } = inlineAny(
      corsConfig({
        allowOrigins: [{ exact: 'https://a.example' }, { regex: 'https://.*\\.b\\.example' }],
        allowMethods: ['GET', 'POST'],
        allowHeaders: ['x-a'],
        maxAge: 86_400_000,
        allowCredentials: true,
      }),
    );
    assert.equal(type, 'type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy');
    const decoded = reg.decodeMessage(
      'envoy.extensions.filters.http.cors.v3.CorsPolicy',
      reg.encodeMessage(String(type).split('/')[1] ?? '', fields),
    );
    assert.equal(decoded.allow_methods, 'GET,POST');
    assert.equal(decoded.max_age, '86400');
  });
});

describe('inbound routes', () => {
  test('one route config per HTTP workload port, everything to the inbound cluster without timeout', () => {
    const input = bookinfoInput('h2');
    assert.deepEqual(inboundHttpPorts(input), [9080, 9081]);
    const rs = buildInboundRoutes(input);
    assert.deepEqual(
      rs.map((r) => r.name),
      ['inbound|9080||', 'inbound|9081||'],
    );
    const vh = vhost(config(rs, 'inbound|9081||'), 'inbound|http|9081');
    assert.deepEqual(vh.domains, ['*']);
    const route = (vh.routes as Msg[])[0]?.route as Msg;
    assert.equal(route.cluster, 'inbound|9081||');
    assert.deepEqual(route.timeout, { seconds: 0, nanos: 0 });
  });

  test('gateways and nodes without workloads have no inbound routes', () => {
    assert.deepEqual(buildInboundRoutes(bookinfoInput('gw')), []);
  });
});

describe('gateway routes', () => {
  test('HTTP and terminated HTTPS servers get route configs; TLS passthrough does not', () => {
    const input = bookinfoInput('gw');
    const rs = buildGatewayRoutes(input);
    assert.deepEqual(
      rs.map((r) => r.name),
      ['http.8080', 'https.8443.https.bookinfo-gateway.default'],
    );
    const gw = input.config.gateways[0];
    assert.ok(gw);
    assert.deepEqual(
      gw.spec.servers.map((s) => gatewayServerRouteName(gw, s)),
      ['http.8080', 'https.8443.https.bookinfo-gateway.default', undefined],
    );
    const vh = vhost(config(rs, 'http.8080'), 'bookinfo.example.com:8080');
    assert.deepEqual(vh.domains, ['bookinfo.example.com', 'bookinfo.example.com:8080']);
    const [r] = vh.routes as Msg[];
    assert.deepEqual(r?.match, { prefix: '/productpage' });
    assert.equal(field(r, 'route').cluster, 'outbound|9080||productpage.default.mesh');
  });

  test('a partial wildcard VirtualService host is a gateway virtual host domain, as Envoy takes it', () => {
    const yaml = `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: bookinfo-gateway, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: ["*.example.com"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shops, namespace: default}
spec:
  hosts: ["*-shop.example.com"]
  gateways: [bookinfo-gateway]
  http:
  - route: [{destination: {host: productpage}}]
`;
    const rs = buildGatewayRoutes(inputWith('gw', yaml));
    const vh = vhost(config(rs, 'http.8080'), '*-shop.example.com:8080');
    assert.deepEqual(vh.domains, ['*-shop.example.com', '*-shop.example.com:8080']);
  });

  test('mesh VirtualServices do not reach the gateway', () => {
    const text = JSON.stringify(buildGatewayRoutes(bookinfoInput('gw')));
    assert.ok(!text.includes('jason') && !text.includes('reviews') && !text.includes('ratings'));
  });

  test('sidecars get no gateway routes', () => {
    assert.deepEqual(buildGatewayRoutes(bookinfoInput('h1')), []);
  });

  test('a server without bound VirtualServices answers 404; httpsRedirect requires TLS; match gateways narrow', () => {
    const yaml = `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: bookinfo-gateway, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: ["bookinfo.example.com"]
    tls: {httpsRedirect: true}
  - port: {number: 8081, name: http-admin, protocol: HTTP}
    hosts: ["admin.example.com"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: bookinfo, namespace: default}
spec:
  hosts: ["bookinfo.example.com"]
  gateways: [bookinfo-gateway, mesh]
  http:
  - name: mesh-only
    match: [{gateways: [mesh], uri: {prefix: /internal}}]
    route: [{destination: {host: productpage}}]
  - name: edge
    route: [{destination: {host: productpage}}]
`;
    const rs = buildGatewayRoutes(inputWith('gw', yaml));
    const vh = vhost(config(rs, 'http.8080'), 'bookinfo.example.com:8080');
    assert.equal(vh.require_tls, 'ALL');
    assert.deepEqual(
      (vh.routes as Msg[]).map((r) => r.name),
      ['edge'],
    );
    const admin = vhost(config(rs, 'http.8081'), 'blackhole:8081');
    assert.deepEqual(admin.domains, ['*']);
    assert.deepEqual((admin.routes as Msg[])[0]?.direct_response, { status: 404 });
  });

  test('a server host namespace limits which VirtualServices bind', () => {
    const yaml = `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: bookinfo-gateway, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: ["shop/*.example.com"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop, namespace: shop}
spec:
  hosts: ["shop.example.com"]
  gateways: [default/bookinfo-gateway]
  http:
  - route: [{destination: {host: productpage.default}}]
`;
    const rs = buildGatewayRoutes(inputWith('gw', yaml));
    const names = (config(rs, 'http.8080').virtual_hosts as Msg[]).map((v) => v.name);
    // bookinfo (namespace default) is excluded by "shop/"; shop.example.com is the narrower of the two hosts.
    assert.deepEqual(names, ['shop.example.com:8080']);
  });
});
