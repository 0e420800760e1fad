import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DEFAULT_MESH_CONFIG, type MeshConfig } from '../../../../src/api/mesh-config.js';
import type { Endpoint } from '../../../../src/api/model.js';
import type { Resource } from '../../../../src/api/resource.js';
import { parseResources } from '../../../../src/api/resource-parse.js';
import { encodeAny, TypedConfigUrl } from '../../../../src/xds/index.js';
import type { TranslateInput } from '../../../../src/xds/translate/input.js';
import { type RbacFilter, rbacFor } from '../../../../src/xds/translate/rbac.js';
import { inlineAny } from '../../../support/envoy-tree.js';
import { bookinfoInput, bookinfoResources } from './fixture.js';

type Msg = Record<string, unknown>;

function parse(yaml: string): Resource[] {
  const r = parseResources(yaml, { source: 'test.yaml' });
  if (!r.ok) throw new Error(JSON.stringify(r.error));
  return r.value;
}

/** h2 with the fixture's AuthorizationPolicies replaced by `yaml`'s. */
function withPolicies(yaml: string, mesh?: MeshConfig): TranslateInput {
  const resources = [...bookinfoResources().filter((r) => r.kind !== 'AuthorizationPolicy'), ...parse(yaml)];
  return bookinfoInput('h2', { resources, ...(mesh ? { mesh } : {}) });
}

function reviewsV1(input: TranslateInput): Endpoint {
  const w = input.node.workloads.find((x) => x.workload === 'reviews-v1');
  assert.ok(w);
  return w;
}

const rules = (f: RbacFilter) => inlineAny(f.typed_config).rules as { action: string; policies: Record<string, Msg> };

/** Encodes each filter's typed config as its RBAC message: the shapes must be Envoy's. */
function encodeAll(filters: readonly RbacFilter[]): void {
  for (const f of filters) {
    const { '@type': url, ...rest } = inlineAny(f.typed_config);
    encodeAny(String(url), rest);
  }
}

const policy = (yaml: string) => `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
${yaml}`;

describe('rbacFor on the fixture (h2, reviews)', () => {
  const input = bookinfoInput('h2');
  const filters = rbacFor(input, reviewsV1(input), 'http');

  test('the DENY filter comes before the ALLOW filter', () => {
    assert.deepEqual(
      filters.map((f) => [f.name, rules(f).action]),
      [
        ['envoy.filters.http.rbac', 'DENY'],
        ['envoy.filters.http.rbac', 'ALLOW'],
      ],
    );
    encodeAll(filters);
  });

  test('ALLOW: productpage may GET /reviews/*; monitoring from 198.18.1.0/24 may read /metrics on 9080', () => {
    const allow = rules(filters[1] as RbacFilter).policies;
    assert.deepEqual(Object.keys(allow), ['default/reviews-viewer[0]', 'default/reviews-viewer[1]']);
    assert.deepEqual(allow['default/reviews-viewer[0]'], {
      permissions: [
        {
          and_rules: {
            rules: [{ header: { name: ':method', string_match: { exact: 'GET' } } }, { url_path: { path: { prefix: '/reviews/' } } }],
          },
        },
      ],
      principals: [{ authenticated: { principal_name: { exact: 'spiffe://cluster.local/ns/default/sa/productpage' } } }],
    });
    assert.deepEqual(allow['default/reviews-viewer[1]'], {
      permissions: [{ and_rules: { rules: [{ url_path: { path: { exact: '/metrics' } } }, { destination_port: 9080 }] } }],
      principals: [
        {
          and_ids: {
            ids: [
              { authenticated: { principal_name: { safe_regex: { regex: 'spiffe://[^/]+/ns/monitoring/sa/[^/]+' } } } },
              { direct_remote_ip: { address_prefix: '198.18.1.0', prefix_len: { value: 24 } } },
            ],
          },
        },
      ],
    });
  });

  test('DENY: /admin* when x-debug is 1, from anyone', () => {
    const deny = rules(filters[0] as RbacFilter).policies;
    assert.deepEqual(deny, {
      'default/deny-admin[0]': {
        permissions: [
          {
            and_rules: {
              rules: [{ url_path: { path: { prefix: '/admin' } } }, { header: { name: 'x-debug', string_match: { exact: '1' } } }],
            },
          },
        ],
        principals: [{ any: true }],
      },
    });
  });

  test('network RBAC (TCP): the ALLOW rules need HTTP fields, so they drop and the ALLOW filter denies everything', () => {
    const net = rbacFor(input, reviewsV1(input), 'network');
    assert.deepEqual(
      net.map((f) => [f.name, inlineAny(f.typed_config)['@type'], rules(f).action]),
      [
        ['envoy.filters.network.rbac', TypedConfigUrl.networkRbac, 'DENY'],
        ['envoy.filters.network.rbac', TypedConfigUrl.networkRbac, 'ALLOW'],
      ],
    );
    assert.deepEqual(rules(net[1] as RbacFilter).policies, {});
    // The DENY rule keeps only what TCP can see (nothing): it denies every connection, as Istio does.
    assert.deepEqual(rules(net[0] as RbacFilter).policies, {
      'default/deny-admin[0]': { permissions: [{ any: true }], principals: [{ any: true }] },
    });
    encodeAll(net);
  });
});

describe('rbacFor semantics', () => {
  test('an ALLOW policy without rules selects the workload and allows nothing', () => {
    const input = withPolicies(policy('metadata: {name: nothing, namespace: default}\nspec: {action: ALLOW}'));
    const [only, ...rest] = rbacFor(input, reviewsV1(input), 'http');
    assert.equal(rest.length, 0);
    assert.deepEqual(rules(only as RbacFilter), { action: 'ALLOW', policies: {} });
  });

  test('no policy: no filter (everything allowed); a rule {} matches everything', () => {
    const none = withPolicies('');
    assert.deepEqual(rbacFor(none, reviewsV1(none), 'http'), []);
    const all = withPolicies(policy('metadata: {name: all, namespace: default}\nspec: {action: ALLOW, rules: [{}]}'));
    assert.deepEqual(rules(rbacFor(all, reviewsV1(all), 'http')[0] as RbacFilter).policies, {
      'default/all[0]': { permissions: [{ any: true }], principals: [{ any: true }] },
    });
  });

  test('from entries OR, fields within a source AND; not-fields negate; trust domain aliases widen principals', () => {
    const mesh: MeshConfig = { ...DEFAULT_MESH_CONFIG, trustDomainAliases: ['old.example'] };
    const input = withPolicies(
      policy(`metadata: {name: p, namespace: default}
spec:
  rules:
  - from:
    - source: {principals: ["cluster.local/ns/a/sa/x"], notNamespaces: [kube*]}
    - source: {principals: ["*"]}
    to:
    - operation: {notPaths: ["*.png"], hosts: ["*.example.com"]}`),
      mesh,
    );
    const p = rules(rbacFor(input, reviewsV1(input), 'http')[0] as RbacFilter).policies['default/p[0]'] as Msg;
    assert.deepEqual(p.principals, [
      {
        and_ids: {
          ids: [
            {
              or_ids: {
                ids: [
                  { authenticated: { principal_name: { exact: 'spiffe://cluster.local/ns/a/sa/x' } } },
                  { authenticated: { principal_name: { exact: 'spiffe://old.example/ns/a/sa/x' } } },
                ],
              },
            },
            { not_id: { authenticated: { principal_name: { safe_regex: { regex: 'spiffe://[^/]+/ns/kube[^/]*/sa/[^/]+' } } } } },
          ],
        },
      },
      { authenticated: { principal_name: { safe_regex: { regex: '.+' } } } },
    ]);
    assert.deepEqual(p.permissions, [
      {
        and_rules: {
          rules: [
            { header: { name: ':authority', string_match: { suffix: '.example.com', ignore_case: true } } },
            { not_rule: { url_path: { path: { suffix: '.png' } } } },
          ],
        },
      },
    ]);
  });

  test("serviceAccounts become Istio's SPIFFE regex; a bare name is in the policy's namespace", () => {
    const input = withPolicies(
      policy(`metadata: {name: p, namespace: default}
spec:
  rules:
  - from:
    - source: {serviceAccounts: ["prod/api.v1", "sleep"], notServiceAccounts: ["default/bad"]}`),
    );
    const filters = rbacFor(input, reviewsV1(input), 'network');
    encodeAll(filters);
    const p = rules(filters[0] as RbacFilter).policies['default/p[0]'] as Msg;
    const id = (regex: string) => ({ authenticated: { principal_name: { safe_regex: { regex } } } });
    assert.deepEqual(p.principals, [
      {
        and_ids: {
          ids: [
            { or_ids: { ids: [id('spiffe://.+/ns/prod/(.+/|)sa/api\\.v1(/.+)?'), id('spiffe://.+/ns/default/(.+/|)sa/sleep(/.+)?')] } },
            { not_id: id('spiffe://.+/ns/default/(.+/|)sa/bad(/.+)?') },
          ],
        },
      },
    ]);
  });

  test('when conditions land on the side they describe and AND with every from/to entry', () => {
    const input = withPolicies(
      policy(`metadata: {name: w, namespace: default}
spec:
  action: DENY
  rules:
  - to: [{operation: {methods: [POST]}}, {operation: {methods: [PUT]}}]
    when:
    - {key: source.ip, values: ["10.0.0.0/8"]}
    - {key: destination.port, notValues: ["9081"]}
    - {key: connection.sni, values: ["*.internal"]}`),
    );
    const p = rules(rbacFor(input, reviewsV1(input), 'http')[0] as RbacFilter).policies['default/w[0]'] as Msg;
    const tail = [{ not_rule: { destination_port: 9081 } }, { requested_server_name: { suffix: '.internal' } }];
    assert.deepEqual(p.permissions, [
      { and_rules: { rules: [{ header: { name: ':method', string_match: { exact: 'POST' } } }, ...tail] } },
      { and_rules: { rules: [{ header: { name: ':method', string_match: { exact: 'PUT' } } }, ...tail] } },
    ]);
    assert.deepEqual(p.principals, [{ direct_remote_ip: { address_prefix: '10.0.0.0', prefix_len: { value: 8 } } }]);
  });

  test('selection: workload labels in its namespace; root-namespace policies mesh-wide; other namespaces never', () => {
    const input = withPolicies(
      [
        policy('metadata: {name: mesh, namespace: vmesh-system}\nspec: {action: DENY, rules: [{from: [{source: {ipBlocks: [1.2.3.4]}}]}]}'),
        policy('metadata: {name: other-ns, namespace: prod}\nspec: {action: DENY, rules: [{}]}'),
        policy('metadata: {name: ratings-only, namespace: default}\nspec: {selector: {matchLabels: {app: ratings}}, rules: [{}]}'),
      ].join('\n---\n'),
    );
    const filters = rbacFor(input, reviewsV1(input), 'http');
    assert.equal(filters.length, 1);
    assert.deepEqual(Object.keys(rules(filters[0] as RbacFilter).policies), ['vmesh-system/mesh[0]']);
    assert.deepEqual((rules(filters[0] as RbacFilter).policies['vmesh-system/mesh[0]'] as Msg).principals, [
      { direct_remote_ip: { address_prefix: '1.2.3.4', prefix_len: { value: 32 } } },
    ]);
  });

  test('network RBAC keeps ALLOW rules that use only TCP fields', () => {
    const input = withPolicies(
      policy(`metadata: {name: tcp, namespace: default}
spec:
  rules:
  - from: [{source: {namespaces: [default]}}]
    to: [{operation: {ports: ["9000"]}}]
  - to: [{operation: {methods: [GET]}}]`),
    );
    const [allow] = rbacFor(input, reviewsV1(input), 'network');
    assert.deepEqual(Object.keys(rules(allow as RbacFilter).policies), ['default/tcp[0]']);
    assert.deepEqual((rules(allow as RbacFilter).policies['default/tcp[0]'] as Msg).permissions, [{ destination_port: 9000 }]);
  });
});
