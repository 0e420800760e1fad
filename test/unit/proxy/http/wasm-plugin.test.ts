import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { socketAddr, toOrigDst, toRemote } from '../../../../src/lib/addr.js';
import { evaluateRbac, type RbacAttrs } from '../../../../src/proxy/match/rbac-eval.js';
import type { HttpFilters, NetworkAction, ProxyConfig, RbacConfig } from '../../../../src/proxy/proxy-config.js';
import { compiledFor, fixtureWith } from '../translated.js';
import {
  cluster,
  forward,
  httpAction,
  type ProxyHarness,
  prefix,
  proxyConfig,
  route,
  send,
  startProxy,
  table,
  type Upstream,
  upstream,
  vhost,
} from './http-fixture.js';

// WasmPlugin with no Wasm VM: Istio YAML -> the translator's substitute filter -> encoded and decoded as the
// agent receives it -> the proxy's compiled filters -> requests served by the proxy. FAIL_CLOSE (the default)
// and FAIL_RELOAD deny what the plugin would have seen, with Envoy's RBAC reply; FAIL_OPEN changes nothing.

const plugin = (name: string, spec: string) => `apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata: {name: ${name}, namespace: default}
spec:
  url: oci://registry.example.com/${name}:1.0
${spec}
---
`;

/** A TCP service on h1 (beside productpage's HTTP port), for NETWORK plugins. */
const TCP_SERVICE = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: cache, namespace: default}
spec:
  hosts: [cache.default.mesh]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 6379, name: tcp, protocol: TCP}]
  workloadSelector: {labels: {app: cache}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: cache-1
  namespace: default
  annotations: {vmesh.io/host: h1}
spec: {address: 198.18.0.11, ports: {tcp: 6379}, labels: {app: cache}, serviceAccount: cache}
---
`;

type HttpAction = Extract<NetworkAction, { kind: 'http' }>;
type TcpAction = Extract<NetworkAction, { kind: 'tcp' }>;

/** The compiled actions of the inbound chains for one workload port of h1 (or the gateway's). */
function actionsOn(cfg: ProxyConfig, listener: string, port: number): NetworkAction[] {
  const l = cfg.listeners.get(listener);
  assert.ok(l, `no listener ${listener}`);
  return l.filterChains.filter((c) => c.match.destinationPort === port).map((c) => c.action);
}

function inboundHttp(yaml: string, port = 9080): HttpFilters {
  const actions = actionsOn(compiledFor(fixtureWith(yaml)), 'virtualInbound', port);
  const http = actions.filter((a): a is HttpAction => a.kind === 'http');
  assert.ok(http.length > 0, `no HTTP chain on inbound ${port}`);
  return http[0]?.filters as HttpFilters;
}

const request = (port: number): RbacAttrs => ({
  remote: toRemote(socketAddr('198.18.0.12', 40000)),
  originalDst: toOrigDst(socketAddr('198.18.0.11', port)),
  path: '/productpage',
  header: () => undefined,
});
const anyRequest = request(9080);

describe('WasmPlugin: the module cannot be loaded, so the proxy does what Envoy does per failStrategy', () => {
  test('FAIL_CLOSE (default) on the selected workload: an allow-nothing RBAC filter on its inbound HTTP port', () => {
    const f = inboundHttp(plugin('authn', '  selector: {matchLabels: {app: productpage}}\n  phase: AUTHN'));
    const deny = f.rbac.filter((r: RbacConfig) => r.action === 'ALLOW' && r.policies.length === 0);
    assert.equal(deny.length, 1, JSON.stringify(f.rbac));
    assert.equal(evaluateRbac(f.rbac, anyRequest).allowed, false);
  });

  test('FAIL_OPEN, another workload, another port or the client side only: nothing added', () => {
    for (const spec of [
      '  selector: {matchLabels: {app: productpage}}\n  failStrategy: FAIL_OPEN',
      '  selector: {matchLabels: {app: reviews}}',
      '  match: [{ports: [{number: 9999}]}]',
      '  match: [{mode: CLIENT}]',
    ]) {
      const f = inboundHttp(plugin('p', spec));
      assert.equal(evaluateRbac(f.rbac, anyRequest).allowed, true, spec);
    }
  });

  test('a plugin attached to a Service (targetRefs) denies on the workloads serving it', () => {
    const f = inboundHttp(plugin('svc', '  targetRefs: [{kind: ServiceEntry, group: networking.istio.io, name: productpage}]'));
    assert.equal(evaluateRbac(f.rbac, anyRequest).allowed, false);
  });

  test('a mesh-wide plugin (root namespace, no selector) with mode CLIENT denies on the gateway', () => {
    const yaml = plugin('edge', '  match: [{mode: CLIENT}]').replace('namespace: default', 'namespace: vmesh-system');
    const cfg = compiledFor(fixtureWith(yaml), 'gw');
    const http = [...cfg.listeners.values()]
      .flatMap((l) => l.filterChains.map((c) => c.action))
      .filter((a): a is HttpAction => a.kind === 'http');
    assert.ok(http.length > 0);
    for (const a of http) assert.equal(evaluateRbac(a.filters.rbac, anyRequest).allowed, false);
  });

  test('a NETWORK plugin (mode SERVER) denies the TCP port with network RBAC, and HTTP ports per request', () => {
    const yaml = TCP_SERVICE + plugin('tcp', '  type: NETWORK\n  failStrategy: FAIL_RELOAD\n  match: [{mode: SERVER}]');
    const cfg = compiledFor(fixtureWith(yaml));
    const tcp = actionsOn(cfg, 'virtualInbound', 6379).filter((a): a is TcpAction => a.kind === 'tcp');
    assert.ok(tcp.length > 0, 'no TCP chain on inbound 6379');
    for (const a of tcp) assert.equal(evaluateRbac(a.rbac, request(6379)).allowed, false);
    assert.equal(evaluateRbac(inboundHttp(yaml).rbac, anyRequest).allowed, false);
  });
});

describe('WasmPlugin FAIL_CLOSE served by the proxy', () => {
  let u: Upstream;
  let denied: ProxyHarness;
  let open: ProxyHarness;

  const serve = (filters: HttpFilters) =>
    startProxy(
      proxyConfig([cluster('u', [u.port])], [table('r', [vhost('pp', ['*'], [route('all', prefix('/'), forward('u'))])])]),
      httpAction('r', filters),
    );

  before(async () => {
    u = await upstream('productpage');
    denied = await serve(inboundHttp(plugin('openid', '  selector: {matchLabels: {app: productpage}}')));
    open = await serve(inboundHttp(plugin('openid', '  selector: {matchLabels: {app: productpage}}\n  failStrategy: FAIL_OPEN')));
  });
  after(async () => {
    await denied?.close();
    await open?.close();
    await u?.close();
  });

  test('every request gets Envoy RBAC 403 "RBAC: access denied" and none reaches the workload', async () => {
    const seen = u.requests.length;
    for (const path of ['/', '/productpage', '/health']) {
      const r = await send(denied.port, { host: 'productpage', path });
      assert.equal(r.status, 403, path);
      assert.equal(r.body, 'RBAC: access denied');
    }
    assert.equal(u.requests.length, seen);
  });

  test('FAIL_OPEN: the request reaches the workload', async () => {
    const seen = u.requests.length;
    const r = await send(open.port, { host: 'productpage', path: '/productpage' });
    assert.equal(r.status, 200);
    assert.equal(u.requests.length, seen + 1);
  });
});
