import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { formatIssue, isKind, type Resource, resourceKey, type ValidationIssue } from '../../../src/api/resource.js';
import { parseResourceObject, parseResources, splitDocuments } from '../../../src/api/resource-parse.js';

function parseOk(text: string, defaultNamespace?: string): Resource[] {
  const r = parseResources(text, { source: 'test.yaml', ...(defaultNamespace ? { defaultNamespace } : {}) });
  assert.ok(r.ok, r.ok ? '' : r.error.map(formatIssue).join('\n'));
  return r.value;
}

function parseErr(text: string): string[] {
  const r = parseResources(text, { source: 'test.yaml' });
  assert.ok(!r.ok, 'expected issues');
  return r.error.map(formatIssue);
}

function only<K extends Resource['kind']>(rs: Resource[], kind: K): Resource<K> {
  assert.equal(rs.length, 1);
  const r = rs[0];
  assert.ok(r && isKind(r, kind));
  return r;
}

const VS = `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - timeout: 1.5s
    retries: {attempts: 3, perTryTimeout: 250ms}
    fault:
      delay: {fixedDelay: 2m, percentage: {value: 0.5}}
    route:
    - destination: {host: reviews, subset: v1}
`;

describe('typed output', () => {
  test('durations become milliseconds', () => {
    const vs = only(parseOk(VS), 'VirtualService');
    const http = vs.spec.http?.[0];
    assert.equal(http?.timeout, 1500);
    assert.equal(http?.retries?.perTryTimeout, 250);
    assert.equal(http?.fault?.delay?.fixedDelay, 120_000);
    assert.equal(http?.fault?.delay?.percentage?.value, 0.5);
  });

  test('Istio defaults are filled in for enums with a meaning', () => {
    const [se, ap, pa] = parseOk(`
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext}
spec: {hosts: [api.example.com], ports: [{number: 443, name: tls, protocol: tls}]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: open}
spec:
  rules: [{to: [{operation: {ports: ["8080", 9090]}}]}]
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default}
spec: {mtls: {}}
`);
    assert.ok(se && isKind(se, 'ServiceEntry') && ap && isKind(ap, 'AuthorizationPolicy') && pa && isKind(pa, 'PeerAuthentication'));
    assert.equal(se.spec.location, 'MESH_EXTERNAL');
    assert.equal(se.spec.resolution, 'NONE');
    assert.equal(se.spec.ports?.[0]?.protocol, 'TLS', 'protocols are uppercased');
    assert.equal(ap.spec.action, 'ALLOW');
    assert.deepEqual(ap.spec.rules?.[0]?.to?.[0]?.operation.ports, [8080, 9090], 'ports become numbers');
    assert.equal(pa.spec.mtls?.mode, 'UNSET');
  });

  test('vmesh kinds get their defaults', () => {
    const [rl, hc] = parseOk(`
apiVersion: vmesh.io/v1alpha1
kind: LocalRateLimit
metadata: {name: rl}
spec: {tokenBucket: {maxTokens: 10, fillInterval: 0.5s}}
---
apiVersion: vmesh.io/v1alpha1
kind: HealthCheck
metadata: {name: hc}
spec: {host: details, port: 9080, http: {}}
`);
    assert.ok(rl && isKind(rl, 'LocalRateLimit') && hc && isKind(hc, 'HealthCheck'));
    assert.deepEqual(rl.spec.tokenBucket, { maxTokens: 10, tokensPerFill: 1, fillInterval: 500 });
    assert.equal(rl.spec.statusCode, 429);
    assert.deepEqual(hc.spec.http, { path: '/' });
    assert.equal(hc.spec.interval, 10_000);
    assert.equal(hc.spec.timeout, 1_000);
    assert.equal(hc.spec.healthyThreshold, 2);
    assert.equal(hc.spec.unhealthyThreshold, 3);
  });

  test('metadata: namespace defaults, labels and annotations always present, server fields dropped', () => {
    const [a, b] = parseOk(
      `
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata:
  name: a
  uid: 1234
  generation: 3
  resourceVersion: "77"
  labels: {team: books}
spec: {host: a}
status: {conditions: []}
---
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata: {name: b, namespace: other}
spec: {host: b}
`,
      'bookinfo',
    );
    assert.deepEqual(a?.metadata, { name: 'a', namespace: 'bookinfo', labels: { team: 'books' }, annotations: {}, resourceVersion: '77' });
    assert.equal(a?.apiVersion, 'networking.istio.io/v1beta1');
    assert.ok(a && !('status' in a));
    assert.equal(b?.metadata.namespace, 'other');
    assert.equal(resourceKey(a as Resource), 'DestinationRule/bookinfo/a');
    assert.equal(
      only(parseOk('apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: c}\nspec: {host: c}\n'), 'DestinationRule')
        .metadata.namespace,
      'default',
    );
  });

  test('resources are deep-frozen', () => {
    const vs = only(parseOk(VS), 'VirtualService');
    assert.ok(Object.isFrozen(vs) && Object.isFrozen(vs.spec) && Object.isFrozen(vs.spec.http?.[0]?.route?.[0]?.destination));
    assert.throws(() => {
      (vs.spec.hosts as string[]).push('x');
    }, TypeError);
  });

  test('null means unset, as in Kubernetes', () => {
    const vs = only(
      parseOk(`
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: r, labels: null}
spec:
  hosts: [r]
  gateways:
  http:
  - route:
    - destination: {host: r, subset: null}
`),
      'VirtualService',
    );
    assert.equal(vs.spec.gateways, undefined);
    assert.deepEqual(vs.spec.http?.[0]?.route?.[0]?.destination, { host: 'r' });
  });
});

describe('documents', () => {
  test('empty documents and comments are skipped; JSON, lists and kind: List are read', () => {
    const text = `---
# nothing here
---
${VS}
---
---
- apiVersion: networking.istio.io/v1
  kind: DestinationRule
  metadata: {name: one}
  spec: {host: one}
---
apiVersion: v1
kind: List
items:
- {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule", "metadata": {"name": "two"}, "spec": {"host": "two"}}
`;
    assert.deepEqual(
      parseOk(text).map((r) => resourceKey(r)),
      ['VirtualService/default/reviews', 'DestinationRule/default/one', 'DestinationRule/default/two'],
    );
    assert.deepEqual(parseOk(''), []);
    assert.deepEqual(parseOk('# only a comment\n'), []);
  });

  test('document labels count every document, and items inside lists', () => {
    const { documents } = splitDocuments('a: 1\n---\n---\n- b: 1\n- c: 2\n', 'f.yaml');
    assert.deepEqual(
      documents.map((d) => d.label),
      ['document 1 of f.yaml', 'document 3 of f.yaml, item 1', 'document 3 of f.yaml, item 2'],
    );
  });

  test('a flow-sequence item ending in ":" reads as a string, as Kubernetes (go-yaml) reads it', () => {
    const { documents } = splitDocuments(
      'a: [1.2.3.4, 001:db8::, x:, 2001:db8::1]\nb: [k: v, k2: , "q":, ? p]\nc: [001:db8::]\nd: {e: [f:]}\n',
      'f.yaml',
    );
    assert.deepEqual(documents[0]?.value, {
      a: ['1.2.3.4', '001:db8::', 'x:', '2001:db8::1'],
      // a value, a blank after the colon, a quoted key, an explicit key: mappings, in go-yaml too
      b: [{ k: 'v' }, { k2: null }, { q: null }, { p: null }],
      c: ['001:db8::'],
      d: { e: ['f:'] },
    });
    const se = parseOk(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: v6}
spec: {hosts: [example.com], addresses: [1.2.3.4, 001:db8::], ports: [{name: http, number: 80, protocol: HTTP}]}
`);
    assert.deepEqual(only(se, 'ServiceEntry').spec.addresses, ['1.2.3.4', '001:db8::']);
  });

  test('YAML errors name the document and line; other documents are still checked', () => {
    const lines = parseErr(`apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: x}
spec: {host: x, bogus: 1}
---
a: 1
a: 2
---
b: *missing
`);
    assert.deepEqual(lines, [
      'document 2 of test.yaml: line 7, column 1: YAML syntax error: Map keys must be unique',
      'document 3 of test.yaml: YAML error: Unresolved alias (the anchor must be set before the alias): missing',
      'DestinationRule default/x: spec.bogus: field "bogus" is not supported by vmesh',
    ]);
  });
});

describe('issues', () => {
  test('several unknown fields in one object each get their own issue', () => {
    const lines = parseErr(`apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"], hostz: [], tlz: {}}]
`);
    assert.deepEqual(lines, [
      'Gateway default/gw: spec.servers[0].hostz: field "hostz" is not supported by vmesh (did you mean "hosts"?)',
      'Gateway default/gw: spec.servers[0].tlz: field "tlz" is not supported by vmesh (did you mean "tls"?)',
    ]);
  });

  test('every issue is one line naming the resource, the path and why', () => {
    const r = parseResources(
      `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: v}
spec:
  hosts: reviews
  http:
  - route:
    - destination: {}
      weight: "50"
extra: true
`,
      { source: 'x.yaml' },
    );
    assert.ok(!r.ok);
    const lines = r.error.map(formatIssue);
    assert.deepEqual(lines, [
      'VirtualService default/v: extra: field "extra" is not supported by vmesh (a resource has apiVersion, kind, metadata and spec)',
      'VirtualService default/v: spec.hosts: must be a list, got "reviews"',
      'VirtualService default/v: spec.http[0].route[0].destination.host: is required',
      'VirtualService default/v: spec.http[0].route[0].weight: must be a number, got "50"',
    ]);
    for (const i of r.error) assert.equal(i.code, 'VMESH_ERR_INVALID_RESOURCE');
  });

  test('formatIssue keeps one line even for odd input and leaves out an empty path', () => {
    const i: ValidationIssue = { resource: 'document 1 of a.yaml', path: '', message: 'bad\nthing', code: 'VMESH_ERR_INVALID_RESOURCE' };
    assert.equal(formatIssue(i), 'document 1 of a.yaml: bad thing');
    assert.equal(formatIssue({ ...i, path: 'spec.x', message: 'm' }), 'document 1 of a.yaml: spec.x: m');
  });

  test('header names with dots and dashes are quoted in paths', () => {
    const lines = parseErr(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: v}
spec:
  hosts: [v]
  http:
  - match: [{headers: {x-user.id: {exact: a, prefix: b}}}]
    route: [{destination: {host: v}}]
`);
    assert.deepEqual(lines, [
      'VirtualService default/v: spec.http[0].match[0].headers["x-user.id"]: set only one of exact, prefix, regex (found exact and prefix)',
    ]);
  });

  test('Gateway names must be DNS labels (no dots), other kinds DNS subdomains', () => {
    assert.match(
      parseErr('apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: a.b}\nspec: {servers: []}\n')[0] ?? '',
      /metadata\.name: "a\.b" is not a valid Gateway name \(DNS-1123 label: no dots\)/,
    );
    parseOk('apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: a.b}\nspec: {host: a}\n');
  });

  test('parseResourceObject reads one value, e.g. from the store', () => {
    const r = parseResourceObject(
      {
        apiVersion: 'security.istio.io/v1',
        kind: 'PeerAuthentication',
        metadata: { name: 'p', namespace: 'ns' },
        spec: { mtls: { mode: 'STRICT' } },
      },
      { source: 'store' },
    );
    assert.ok(r.ok);
    assert.equal(resourceKey(r.value), 'PeerAuthentication/ns/p');
    const bad = parseResourceObject([1], { source: 'store' });
    assert.ok(!bad.ok);
    assert.equal(
      formatIssue(bad.error[0] as ValidationIssue),
      'store: must be a mapping with apiVersion, kind, metadata and spec, got a list',
    );
  });

  test('every listed apiVersion is served', () => {
    const versions: Array<[string, string]> = [
      ['networking.istio.io/v1', 'Sidecar'],
      ['networking.istio.io/v1beta1', 'Sidecar'],
      ['networking.istio.io/v1alpha3', 'Sidecar'],
      ['security.istio.io/v1', 'AuthorizationPolicy'],
      ['security.istio.io/v1beta1', 'AuthorizationPolicy'],
      ['telemetry.istio.io/v1', 'Telemetry'],
      ['telemetry.istio.io/v1alpha1', 'Telemetry'],
    ];
    for (const [apiVersion, kind] of versions) {
      const spec = kind === 'Sidecar' ? '{outboundTrafficPolicy: {mode: ALLOW_ANY}}' : '{}';
      parseOk(`apiVersion: ${apiVersion}\nkind: ${kind}\nmetadata: {name: x}\nspec: ${spec}\n`);
    }
    assert.match(
      parseErr('apiVersion: telemetry.istio.io/v2\nkind: Telemetry\nmetadata: {name: x}\nspec: {}\n')[0] ?? '',
      /use telemetry\.istio\.io\/v1, telemetry\.istio\.io\/v1alpha1$/,
    );
  });
});
