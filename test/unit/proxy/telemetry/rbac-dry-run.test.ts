import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Resource } from '../../../../src/api/resource.js';
import { parseResources } from '../../../../src/api/resource-parse.js';
import { checkResources } from '../../../../src/api/resource-validate.js';
import type { Logger } from '../../../../src/lib/logger.js';
import { MetricsRegistry, renderPrometheus } from '../../../../src/lib/metrics-registry.js';
import { compileRbacRules } from '../../../../src/proxy/compile/rbac.js';
import type { RbacConfig } from '../../../../src/proxy/proxy-config.js';
import { AccessLog } from '../../../../src/proxy/telemetry/access-log.js';
import { IstioMetrics } from '../../../../src/proxy/telemetry/istio-metrics.js';
import { encodeAny } from '../../../../src/xds/index.js';
import { rbacFor } from '../../../../src/xds/translate/rbac.js';
import { bookinfoInput, bookinfoResources } from '../../xds/translate/fixture.js';
import {
  cluster,
  forward,
  httpAction,
  noFilters,
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
} from '../http/http-fixture.js';

type Msg = Record<string, unknown>;

// istio.io/dry-run: "true" makes an AuthorizationPolicy a shadow policy: Istio translates it to Envoy's
// shadow_rules, and the proxy evaluates it, reports what it would have decided, and never enforces it.
const POLICIES = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: no-get
  namespace: default
  annotations: {istio.io/dry-run: "true"}
spec:
  action: DENY
  rules: [{to: [{operation: {methods: [GET]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-delete, namespace: default}
spec:
  action: DENY
  rules: [{to: [{operation: {methods: [DELETE]}}]}]
`;

function translated(kind: 'http' | 'network'): Array<{ name: string; typed_config: Msg }> {
  const parsed = parseResources(POLICIES, { source: 'p.yaml' });
  assert.ok(parsed.ok);
  assert.deepEqual(checkResources(parsed.value).errors, [], 'a dry-run policy is accepted');
  const resources: Resource[] = [...bookinfoResources().filter((r) => r.kind !== 'AuthorizationPolicy'), ...parsed.value];
  const input = bookinfoInput('h2', { resources });
  const w = input.node.workloads.find((x) => x.workload === 'reviews-v1');
  assert.ok(w);
  return rbacFor(input, w, kind) as Array<{ name: string; typed_config: Msg }>;
}

describe('dry-run AuthorizationPolicy', () => {
  let u: Upstream;
  let p: ProxyHarness;
  let filters: RbacConfig[];

  before(async () => {
    const http = translated('http');
    filters = http.map((f, i) => {
      const c = compileRbacRules(f.typed_config, `filter[${i}]`);
      assert.ok(c);
      return c;
    });
    u = await upstream('u');
    p = await startProxy(
      proxyConfig([cluster('u', [u.port])], [table('r', [vhost('any', ['*'], [route('all', prefix('/'), forward('u'))])])]),
      httpAction('r', { ...noFilters, rbac: filters }),
    );
  });
  after(async () => {
    await p?.close();
    await u?.close();
  });

  test("translates to Envoy shadow_rules in a filter of its own, first; the enforced policy keeps 'rules'", () => {
    for (const kind of ['http', 'network'] as const) {
      const fs = translated(kind);
      assert.equal(fs.length, 2, kind);
      const [shadow, enforced] = fs.map((f) => f.typed_config) as [Msg, Msg];
      assert.equal(shadow.rules, undefined);
      assert.equal(shadow.shadow_rules_stat_prefix, 'istio_dry_run_deny_');
      assert.deepEqual(Object.keys((shadow.shadow_rules as { policies: Msg }).policies), ['default/no-get[0]']);
      assert.deepEqual(Object.keys((enforced.rules as { policies: Msg }).policies), ['default/no-delete[0]']);
      for (const f of fs) {
        const { '@type': url, ...rest } = f.typed_config;
        encodeAny(String(url), rest);
      }
    }
    assert.deepEqual(
      filters.map((f) => [f.action, f.shadow?.statPrefix]),
      [
        ['DENY', 'istio_dry_run_deny_'],
        ['DENY', undefined],
      ],
    );
  });

  test('a request the dry-run DENY matches is served, and reported as shadow-denied by that policy', async () => {
    const r = await send(p.port, { host: 'reviews', path: '/x' });
    assert.equal(r.status, 200);
    assert.equal(r.body, 'u GET /x');
    assert.deepEqual(p.stats.at(-1)?.rbacShadow, [{ statPrefix: 'istio_dry_run_deny_', allowed: false, policy: 'default/no-get[0]' }]);
    const post = await send(p.port, { method: 'POST', host: 'reviews', path: '/x' });
    assert.equal(post.status, 200);
    assert.deepEqual(p.stats.at(-1)?.rbacShadow, [{ statPrefix: 'istio_dry_run_deny_', allowed: true }]);
  });

  test('enforced policies still enforce, with the shadow result reported alongside', async () => {
    const r = await send(p.port, { method: 'DELETE', host: 'reviews', path: '/x' });
    assert.equal(r.status, 403);
    assert.equal(p.stats.at(-1)?.responseFlags, 'RBAC');
    assert.deepEqual(p.stats.at(-1)?.rbacShadow, [{ statPrefix: 'istio_dry_run_deny_', allowed: true }]);
  });

  test('the access log carries the shadow result fields, the metrics count them', async () => {
    await send(p.port, { host: 'reviews', path: '/y' });
    const s = p.stats.at(-1);
    assert.ok(s);
    const lines: Msg[] = [];
    const log = new AccessLog({ info: (o: Msg) => lines.push(o) } as unknown as Logger);
    log.request(s, '-', '-');
    assert.equal(lines[0]?.istio_dry_run_deny_shadow_engine_result, 'denied');
    assert.equal(lines[0]?.istio_dry_run_deny_shadow_effective_policy_id, 'default/no-get[0]');

    const registry = new MetricsRegistry();
    const m = new IstioMetrics({ registry, identityOf: () => undefined, config: () => proxyConfig([], []) });
    m.request(s);
    m.request(s);
    const text = renderPrometheus(registry.snapshot());
    assert.match(text, /vmesh_proxy_rbac_shadow_total\{stat_prefix="http",shadow_prefix="istio_dry_run_deny_",result="shadow_denied"\} 2/);
  });
});
