import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseResources } from '../../../../src/api/resource-parse.js';
import { makeSnapshot } from '../../../../src/xds/snapshot.js';
import { applyEnvoyFilters, type EnvoyResource, translateNode } from '../../../../src/xds/translate/index.js';
import { CDS, EDS, LDS, RDS } from '../../../../src/xds/type-urls.js';
import { bookinfoInput, bookinfoResources } from './fixture.js';

// istiod's EnvoyFilter patch engine over the translator's output: which filters apply to a node, the patch
// contexts, match rules and operations, checked on the bookinfo fixture (h1: productpage, gw: ingress gateway).

type Obj = Record<string, unknown>;
type Out = Readonly<Record<string, readonly EnvoyResource[]>>;

function ef(name: string, spec: string, namespace = 'default'): string {
  return `apiVersion: networking.istio.io/v1alpha3\nkind: EnvoyFilter\nmetadata: {name: ${name}, namespace: ${namespace}}\nspec:\n${spec}\n---\n`;
}

function patched(yaml: string, node: 'h1' | 'h2' | 'gw' = 'h1'): { before: Out; after: Out } {
  const parsed = parseResources(yaml, { source: 'test.yaml' });
  assert.ok(parsed.ok, parsed.ok ? '' : JSON.stringify(parsed.error));
  const input = bookinfoInput(node, { resources: [...bookinfoResources(), ...parsed.value] });
  const before = translateNode(input);
  const frozen = JSON.stringify(before);
  const after = applyEnvoyFilters(input, before);
  assert.equal(JSON.stringify(before), frozen, 'the translation given to the patch step is not changed');
  // What is served must still be a consistent snapshot that encodes.
  makeSnapshot('t', after);
  return { before, after };
}

/** A value deep in a message, or undefined where the path ends early. */
function dig(v: unknown, ...path: (string | number)[]): unknown {
  let cur = v;
  for (const k of path) cur = cur === null || typeof cur !== 'object' ? undefined : (cur as Record<string | number, unknown>)[k];
  return cur;
}

const get = (out: Out, type: string, name: string) => out[type]?.find((r) => r.name === name)?.message as Obj | undefined;

function hcmFilters(listener: Obj | undefined, port: number): string[][] {
  const chains = (((listener?.filter_chains ?? []) as Obj[]) ?? []).filter(
    (c) => ((c.filter_chain_match as Obj | undefined)?.destination_port as Obj | undefined)?.value === port,
  );
  return chains.map((c) => ((dig(c, 'filters', 0, 'typed_config', 'http_filters') ?? []) as Obj[]).map((f) => String(f.name)));
}

const INSERT = (op: string, extra = '') => `  workloadSelector: {labels: {app: productpage}}
  configPatches:
  - applyTo: HTTP_FILTER
    match:
      context: SIDECAR_INBOUND
      listener:
        filterChain:
          filter:
            name: envoy.filters.network.http_connection_manager
${extra}
    patch:
      operation: ${op}
      value:
        name: my.local_ratelimit
        typed_config:
          "@type": type.googleapis.com/udpa.type.v1.TypedStruct
          type_url: type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
          value: {stat_prefix: http_local_rate_limiter}`;

const SUB_ROUTER = '            subFilter: {name: envoy.filters.http.router}';

describe('EnvoyFilter: HTTP filters', () => {
  test('INSERT_BEFORE without a subFilter goes first; with the router named, just before it; on every inbound chain', () => {
    const first = patched(ef('rl', INSERT('INSERT_BEFORE'))).after;
    for (const chain of hcmFilters(get(first, LDS, 'virtualInbound'), 9080)) assert.equal(chain[0], 'my.local_ratelimit');
    const beforeRouter = patched(ef('rl', INSERT('INSERT_BEFORE', SUB_ROUTER))).after;
    const chains = hcmFilters(get(beforeRouter, LDS, 'virtualInbound'), 9080);
    assert.ok(chains.length >= 1, 'the mTLS chain of 9080');
    for (const chain of chains) assert.deepEqual(chain.slice(-2), ['my.local_ratelimit', 'envoy.filters.http.router']);
  });

  test('a TypedStruct of a known type is served as that type', () => {
    const { after } = patched(ef('rl', INSERT('INSERT_FIRST')));
    const chain = dig(get(after, LDS, 'virtualInbound'), 'filter_chains', 0, 'filters', 0, 'typed_config') as Obj;
    const f = (chain.http_filters as Obj[])[0] as Obj;
    assert.deepEqual(f.typed_config, {
      '@type': 'type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit',
      stat_prefix: 'http_local_rate_limiter',
    });
  });

  test('REMOVE and REPLACE need a subFilter; INSERT_AFTER without one appends; the outbound side is untouched', () => {
    const removed = patched(ef('rm', INSERT('REMOVE', SUB_ROUTER))).after;
    for (const chain of hcmFilters(get(removed, LDS, 'virtualInbound'), 9080)) assert.ok(!chain.includes('envoy.filters.http.router'));
    const noMatch = patched(ef('rm', INSERT('REMOVE'))).after;
    assert.deepEqual(
      hcmFilters(get(noMatch, LDS, 'virtualInbound'), 9080),
      hcmFilters(get(patched('').after, LDS, 'virtualInbound'), 9080),
    );
    const appended = patched(ef('ia', INSERT('INSERT_AFTER'))).after;
    for (const chain of hcmFilters(get(appended, LDS, 'virtualInbound'), 9080)) assert.equal(chain.at(-1), 'my.local_ratelimit');
    const out = get(appended, LDS, '240.240.0.6_9080') ?? get(appended, LDS, '240.240.0.5_9080');
    assert.ok(!JSON.stringify(out ?? {}).includes('my.local_ratelimit'), 'SIDECAR_INBOUND patches stay inbound');
  });

  test("on a host with several workloads, a selector patches the inbound chains and routes of its workload's ports only", () => {
    const other = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: other, namespace: default}
spec:
  hosts: [other.default.mesh]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9999, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: other}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: other-1, namespace: default, annotations: {vmesh.io/host: h1}}
spec: {address: 198.18.0.11, ports: {http: 9999}, labels: {app: other}, serviceAccount: other}
---
`;
    const { after } = patched(other + ef('rl', INSERT('INSERT_FIRST')));
    const inbound = get(after, LDS, 'virtualInbound');
    for (const chain of hcmFilters(inbound, 9080)) assert.equal(chain[0], 'my.local_ratelimit');
    const others = hcmFilters(inbound, 9999);
    assert.ok(others.length > 0, 'the other workload has its chains');
    for (const chain of others) assert.ok(!chain.includes('my.local_ratelimit'), 'another workload on the host is not patched');
  });

  test('selection: another workload, another namespace, targetRefs, a proxyVersion or WAYPOINT never apply; root namespace does', () => {
    const none = (yaml: string) => !JSON.stringify(patched(yaml).after[LDS]).includes('my.local_ratelimit');
    assert.ok(none(ef('rl', INSERT('INSERT_FIRST').replace('app: productpage', 'app: reviews'))));
    assert.ok(none(ef('rl', INSERT('INSERT_FIRST'), 'other')));
    assert.ok(
      none(
        ef(
          'rl',
          INSERT('INSERT_FIRST').replace('context: SIDECAR_INBOUND', 'context: SIDECAR_INBOUND\n      proxy: {proxyVersion: "^1\\\\..*"}'),
        ),
      ),
    );
    assert.ok(!none(ef('rl', INSERT('INSERT_FIRST'), 'vmesh-system')), 'the root namespace reaches every namespace');
  });

  test('filters apply by priority, then root namespace first, then name', () => {
    const named = (n: string) => INSERT('INSERT_FIRST').replace('my.local_ratelimit', n);
    const yaml =
      ef('b', named('second')) +
      ef('a', `${named('third')}\n  priority: 5`) +
      ef('z', named('first'), 'vmesh-system') +
      ef('c', `${named('fourth')}\n  priority: 10`);
    const chain = hcmFilters(get(patched(yaml).after, LDS, 'virtualInbound'), 9080)[0] ?? [];
    // Each INSERT_FIRST goes before the earlier ones: the last applied is first.
    assert.deepEqual(chain.slice(0, 4), ['fourth', 'third', 'second', 'first']);
  });
});

describe('EnvoyFilter: network filters, listeners, routes, clusters', () => {
  test('MERGE_AND_REPLACE_LIST into the HCM of TLS chains only (the corpus websocket example)', () => {
    const { after } = patched(
      ef(
        'ws',
        `  configPatches:
  - applyTo: NETWORK_FILTER
    match: {listener: {filterChain: {transportProtocol: tls, filter: {name: envoy.filters.network.http_connection_manager}}}}
    patch:
      operation: MERGE_AND_REPLACE_LIST
      value:
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          upgrade_configs: [{upgrade_type: websocket}]`,
      ),
    );
    const chains = ((get(after, LDS, 'virtualInbound')?.filter_chains ?? []) as Obj[]).filter(
      (c) => (c.filters as Obj[])[0]?.name === 'envoy.filters.network.http_connection_manager',
    );
    const tls = chains.filter((c) => (c.filter_chain_match as Obj | undefined)?.transport_protocol === 'tls');
    assert.ok(tls.length > 0);
    for (const c of chains) {
      const hcm = (c.filters as Obj[])[0]?.typed_config as Obj;
      const isTls = (c.filter_chain_match as Obj | undefined)?.transport_protocol === 'tls';
      assert.equal(JSON.stringify(hcm.upgrade_configs ?? null) === '[{"upgrade_type":"websocket"}]', isTls, String(c.name));
      assert.ok(hcm.http_filters, 'the rest of the HCM is kept');
    }
  });

  test('HTTP_ROUTE MERGE on the inbound vhost by name; VIRTUAL_HOST MERGE appends to lists', () => {
    const { after } = patched(
      ef(
        'routes',
        `  configPatches:
  - applyTo: HTTP_ROUTE
    match: {context: SIDECAR_INBOUND, routeConfiguration: {vhost: {name: "inbound|http|9080", route: {action: ANY}}}}
    patch: {operation: MERGE, value: {route: {rate_limits: [{actions: [{remote_address: {}}]}], timeout: 3s}}}
  - applyTo: VIRTUAL_HOST
    match: {context: SIDECAR_OUTBOUND, routeConfiguration: {portNumber: 9080, vhost: {name: ""}}}
    patch: {operation: MERGE, value: {domains: [extra.example.com]}}`,
      ),
    );
    const inbound = get(after, RDS, 'inbound|9080||');
    const route = dig(inbound, 'virtual_hosts', 0, 'routes', 0) as Obj;
    assert.deepEqual((route.route as Obj).rate_limits, [{ actions: [{ remote_address: {} }] }]);
    assert.equal((route.route as Obj).cluster, 'inbound|9080||', 'the route keeps its action');
    assert.deepEqual((route.route as Obj).timeout, { seconds: 3, nanos: 0 });
    const out = get(after, RDS, 'reviews.default.mesh:9080');
    const vh = ((out?.virtual_hosts ?? []) as Obj[])[0] as Obj;
    assert.ok((vh.domains as string[]).includes('extra.example.com') && (vh.domains as string[]).length > 1);
  });

  test('CLUSTER: ADD (context ANY: once), MERGE by service and port, REMOVE drops the cluster and its endpoints', () => {
    const { before, after } = patched(
      ef(
        'clusters',
        `  configPatches:
  - applyTo: CLUSTER
    patch:
      operation: ADD
      value: {name: rate_limit_cluster, type: STRICT_DNS, connect_timeout: 10s, load_assignment: {cluster_name: rate_limit_cluster, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: ratelimit.example.com, port_value: 8081}}}}]}]}}
  - applyTo: CLUSTER
    match: {context: SIDECAR_OUTBOUND, cluster: {service: reviews.default.mesh, portNumber: 9080, subset: v1}}
    patch: {operation: MERGE, value: {connect_timeout: 2.5s}}
  - applyTo: CLUSTER
    match: {cluster: {name: "outbound|9080|v2|reviews.default.mesh"}}
    patch: {operation: REMOVE}`,
      ),
    );
    assert.equal(after[CDS]?.filter((c) => c.name === 'rate_limit_cluster').length, 1);
    assert.deepEqual(get(after, CDS, 'outbound|9080|v1|reviews.default.mesh')?.connect_timeout, { seconds: 2, nanos: 500_000_000 });
    assert.notDeepEqual(get(before, CDS, 'outbound|9080||reviews.default.mesh'), undefined);
    assert.deepEqual(get(after, CDS, 'outbound|9080||reviews.default.mesh'), get(before, CDS, 'outbound|9080||reviews.default.mesh'));
    assert.equal(get(after, CDS, 'outbound|9080|v2|reviews.default.mesh'), undefined);
    assert.equal(get(after, EDS, 'outbound|9080|v2|reviews.default.mesh'), undefined);
  });

  test('LISTENER REMOVE by name, and GATEWAY patches reach the gateway only', () => {
    const yaml = ef(
      'gw',
      `  workloadSelector: {labels: {istio: ingressgateway}}
  configPatches:
  - applyTo: LISTENER
    match: {context: GATEWAY, listener: {portNumber: 8080}}
    patch: {operation: MERGE, value: {per_connection_buffer_limit_bytes: 32768}}`,
    );
    const gw = patched(yaml, 'gw').after;
    const l = gw[LDS]?.find((r) => r.name === '0.0.0.0_8080')?.message as Obj;
    assert.deepEqual(l.per_connection_buffer_limit_bytes, { value: 32768 });
    const h1 = patched(yaml.replace('{istio: ingressgateway}', '{app: productpage}'), 'h1').after;
    assert.ok(!JSON.stringify(h1[LDS]).includes('32768'), 'GATEWAY context never matches a sidecar');
    const removed = patched(
      ef('rm', '  configPatches:\n  - applyTo: LISTENER\n    match: {listener: {name: virtualOutbound}}\n    patch: {operation: REMOVE}'),
    ).after;
    assert.equal(get(removed, LDS, 'virtualOutbound'), undefined);
    assert.ok(get(removed, LDS, 'virtualInbound'));
  });
});
