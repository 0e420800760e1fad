import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseMeshConfig } from '../../../src/api/mesh-config.js';
import { formatIssue, type Resource, resourceKey } from '../../../src/api/resource.js';
import { parseResources } from '../../../src/api/resource-parse.js';
import { checkResources, validateResources } from '../../../src/api/resource-validate.js';

function parse(text: string): Resource[] {
  const r = parseResources(text, { source: 'test.yaml' });
  assert.ok(r.ok, r.ok ? '' : r.error.map(formatIssue).join('\n'));
  return r.value;
}

function vs(ns: string, subset: string, host = 'reviews'): string {
  return `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: ${ns}}
spec:
  hosts: [${host}]
  http:
  - route:
    - destination: {host: ${host}, subset: ${subset}}
`;
}

function dr(ns: string, host: string, subsets: string[], extra = ''): string {
  return `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: dr-${subsets.join('-') || 'none'}, namespace: ${ns}}
spec:
  host: "${host}"
  subsets: [${subsets.map((s) => `{name: ${s}}`).join(', ')}]
${extra}`;
}

const lines = (rs: readonly Resource[], opts?: Parameters<typeof validateResources>[1]) => validateResources(rs, opts).map(formatIssue);
/** References to resources not there are warnings, never errors (Istio accepts them in any order). */
const warned = (rs: readonly Resource[], opts?: Parameters<typeof validateResources>[1]) => {
  const r = checkResources(rs, opts);
  assert.deepEqual(r.errors.map(formatIssue), []);
  return r.warnings.map(formatIssue);
};

describe('subset references', () => {
  test('a DestinationRule already in the store satisfies a new VirtualService', () => {
    const existing = parse(dr('bookinfo', 'reviews.bookinfo.svc.cluster.local', ['v1', 'v2']));
    const added = parse(vs('bookinfo', 'v2'));
    assert.deepEqual(warned(added), [
      'VirtualService bookinfo/reviews: spec.http[0].route[0].destination.subset: subset "v2" of host reviews.bookinfo.mesh is not defined: no DestinationRule for that host is visible from namespace bookinfo; requests routed to it get 503 (no cluster) until one is applied',
    ]);
    assert.deepEqual(warned([...existing, ...added]), []);
  });

  test('host spellings meet after canonicalization', () => {
    for (const host of ['reviews', 'reviews.bookinfo', 'reviews.bookinfo.mesh', 'reviews.bookinfo.svc.cluster.local']) {
      const rs = parse(`${dr('bookinfo', host, ['v1'])}---\n${vs('bookinfo', 'v1', 'reviews.bookinfo.svc.cluster.local')}`);
      assert.deepEqual(warned(rs), [], host);
    }
  });

  test('the client namespace rule wins over the service and root namespace rules', () => {
    const rs = parse(
      [
        dr('web', 'reviews.bookinfo.svc.cluster.local', ['client-only']),
        dr('bookinfo', 'reviews', ['v1']),
        dr('vmesh-system', '*.mesh', ['root']),
        vs('web', 'v1', 'reviews.bookinfo.svc.cluster.local'),
      ].join('---\n'),
    );
    assert.deepEqual(warned(rs), [
      'VirtualService web/reviews: spec.http[0].route[0].destination.subset: subset "v1" is not defined by DestinationRule web/dr-client-only for host reviews.bookinfo.mesh (it defines client-only); requests routed to it get 503 (no cluster)',
    ]);
  });

  test('the root namespace rule applies when nothing closer does; wildcards match', () => {
    const rs = parse([dr('vmesh-system', '*.svc.cluster.local', ['stable']), vs('shop', 'stable', 'cart')].join('---\n'));
    assert.deepEqual(warned(rs), []);
  });

  test('exportTo hides rules from other namespaces', () => {
    const hidden = parse([dr('bookinfo', 'reviews', ['v1'], '  exportTo: ["."]\n'), vs('web', 'v1', 'reviews.bookinfo')].join('---\n'));
    assert.equal(warned(hidden).length, 1);
    const shared = parse(
      [dr('bookinfo', 'reviews', ['v1'], '  exportTo: [".", "web"]\n'), vs('web', 'v1', 'reviews.bookinfo')].join('---\n'),
    );
    assert.deepEqual(warned(shared), []);
  });

  test('rules for one host in one namespace are merged', () => {
    const rs = parse([dr('bookinfo', 'reviews', ['v1']), dr('bookinfo', 'reviews', ['v2']), vs('bookinfo', 'v2')].join('---\n'));
    assert.deepEqual(warned(rs), []);
  });

  test('mirror and tcp destinations are checked too', () => {
    const rs = parse(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: m}
spec:
  hosts: [m]
  http:
  - route: [{destination: {host: m}}]
    mirror: {host: m, subset: shadow}
  tcp:
  - route: [{destination: {host: db, subset: primary}}]
`);
    assert.deepEqual(
      checkResources(rs).warnings.map((i) => i.path),
      ['spec.http[0].mirror.subset', 'spec.tcp[0].route[0].destination.subset'],
    );
  });
});

describe('batch rules', () => {
  test('`only` limits issues to the resources being applied', () => {
    const rs = parse([vs('a', 'v1'), vs('b', 'v1')].join('---\n'));
    assert.equal(warned(rs).length, 2);
    const only = new Set([resourceKey(rs[1] as Resource)]);
    assert.deepEqual(
      checkResources(rs, { only }).warnings.map((i) => i.resource),
      ['VirtualService b/reviews'],
    );
  });

  test('several default Sidecars or namespace-wide PeerAuthentications in a namespace: accepted, the first by name applies', () => {
    const rs = parse(`apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: a, namespace: web}
spec: {outboundTrafficPolicy: {mode: REGISTRY_ONLY}}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: b, namespace: web}
spec: {outboundTrafficPolicy: {mode: ALLOW_ANY}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: a, namespace: web}
spec: {mtls: {mode: STRICT}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: b, namespace: web}
spec: {selector: {matchLabels: {}}, mtls: {mode: DISABLE}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: c, namespace: web}
spec: {selector: {matchLabels: {app: x}}, mtls: {mode: DISABLE}}
`);
    assert.deepEqual(lines(rs), [], 'Istio accepts them: one applies');
    assert.deepEqual(checkResources(rs).warnings.map(formatIssue), [
      'Sidecar web/a: spec: 2 Sidecars without workloadSelector in namespace web (a, b): this one applies (the first by name)',
      'Sidecar web/b: spec: 2 Sidecars without workloadSelector in namespace web (a, b): Sidecar web/a applies (the first by name), not this one',
      'PeerAuthentication web/a: spec: 2 namespace-wide PeerAuthentications (no selector) in namespace web (a, b): this one applies (the first by name)',
      'PeerAuthentication web/b: spec: 2 namespace-wide PeerAuthentications (no selector) in namespace web (a, b): PeerAuthentication web/a applies (the first by name), not this one',
    ]);
  });

  test('the mesh config decides the root namespace and the mesh domain', () => {
    const mesh = parseMeshConfig({ rootNamespace: 'istio-system', dnsDomain: 'corp' }, 'test');
    const rs = parse(`apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: a, namespace: istio-system}
spec: {mtls: {mode: STRICT}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: b, namespace: istio-system}
spec: {mtls: {mode: STRICT}}
---
${vs('shop', 'v9', 'cart')}`);
    assert.deepEqual(lines(rs, { mesh }), []);
    assert.deepEqual(checkResources(rs, { mesh }).warnings.map(formatIssue), [
      'VirtualService shop/reviews: spec.http[0].route[0].destination.subset: subset "v9" of host cart.shop.corp is not defined: no DestinationRule for that host is visible from namespace shop; requests routed to it get 503 (no cluster) until one is applied',
      'PeerAuthentication istio-system/a: spec: 2 mesh-wide PeerAuthentications (namespace istio-system, no selector) (a, b): this one applies (the first by name)',
      'PeerAuthentication istio-system/b: spec: 2 mesh-wide PeerAuthentications (namespace istio-system, no selector) (a, b): PeerAuthentication istio-system/a applies (the first by name), not this one',
    ]);
  });

  test('resources built in code are checked as well as parsed ones', () => {
    const built: Resource<'ServiceEntry'> = {
      apiVersion: 'networking.istio.io/v1',
      kind: 'ServiceEntry',
      metadata: { name: 'vm-db', namespace: 'data', labels: {}, annotations: {} },
      spec: {
        hosts: ['db.data.svc.cluster.local'],
        ports: [{ number: 0, name: 'tcp', protocol: 'TCP' }],
        location: 'MESH_INTERNAL',
        resolution: 'STATIC',
        endpoints: [{ address: '198.18.0.300' }],
      },
    };
    assert.deepEqual(lines([built]), [
      'ServiceEntry data/vm-db: spec.ports[0].number: 0 is not a port number (1-65535)',
      'ServiceEntry data/vm-db: spec.endpoints[0].address: "198.18.0.300" is not an IP address (resolution STATIC takes IP endpoints; DNS names need resolution DNS)',
    ]);
    const broken = { ...built, spec: { resolution: 'STATIC' } } as unknown as Resource;
    assert.match(lines([broken])[0] ?? '', /^ServiceEntry data\/vm-db: spec: is malformed for ServiceEntry: /);
  });
});
