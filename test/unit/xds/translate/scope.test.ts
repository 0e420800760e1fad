import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseResources } from '../../../../src/api/resource-parse.js';
import { buildClusters } from '../../../../src/xds/translate/clusters.js';
import { scopeServices, sidecarFor } from '../../../../src/xds/translate/scope.js';
import { bookinfoInput, bookinfoResources } from './fixture.js';

const ALL = [
  'api.payments.example.com',
  'legacy-db.default.mesh',
  'productpage.default.mesh',
  'ratings.default.mesh',
  'reviews.default.mesh',
];

function sidecar(name: string, namespace: string, body: string): string {
  return `apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: ${name}, namespace: ${namespace}}
spec:
${body
  .split('\n')
  .map((l) => `  ${l}`)
  .join('\n')}
---
`;
}

function scoped(node: 'h1' | 'h2' | 'gw' | 'grpc', yaml: string) {
  const parsed = parseResources(yaml, { source: 'test.yaml' });
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.error));
  const input = bookinfoInput(node, { resources: [...bookinfoResources(), ...parsed.value] });
  const services = scopeServices(input.model, input.config, input.node, input.mesh);
  return { input, services, hosts: services.map((s) => s.hostname) };
}

describe('scopeServices', () => {
  test('without a Sidecar a node sees every service exported to its namespace, sorted', () => {
    assert.deepEqual(scoped('h1', '').hosts, ALL);
    assert.deepEqual(scoped('grpc', '').hosts, ALL);
  });

  test('a namespace Sidecar limits egress to its hosts, plus the services of the node workloads', () => {
    const yaml = sidecar('default', 'default', 'egress: [{hosts: ["./reviews.default.svc.cluster.local", "*/*.example.com"]}]');
    const { input, services, hosts } = scoped('h1', yaml);
    assert.deepEqual(hosts, ['api.payments.example.com', 'productpage.default.mesh', 'reviews.default.mesh']);
    const clusters = buildClusters({ ...input, services }).map((c) => c.name);
    assert.ok(clusters.includes('outbound|9080||reviews.default.mesh'));
    assert.ok(clusters.includes('outbound|9080|v1|reviews.default.mesh'));
    assert.ok(!clusters.some((c) => c.includes('ratings')));
    assert.ok(!clusters.some((c) => c.includes('legacy-db')));
  });

  test('"~/*" leaves only the node workloads\' own services; "." means the Sidecar namespace', () => {
    assert.deepEqual(scoped('h2', sidecar('default', 'default', 'egress: [{hosts: ["~/*"]}]')).hosts, ['reviews.default.mesh']);
    assert.deepEqual(scoped('grpc', sidecar('default', 'default', 'egress: [{hosts: ["~/*"]}]')).hosts, []);
    assert.deepEqual(scoped('grpc', sidecar('default', 'default', 'egress: [{hosts: ["./*"]}]')).hosts, [
      'api.payments.example.com',
      'legacy-db.default.mesh',
      'productpage.default.mesh',
      'ratings.default.mesh',
      'reviews.default.mesh',
    ]);
    assert.deepEqual(scoped('grpc', sidecar('default', 'other', 'egress: [{hosts: ["./*"]}]')).hosts, ALL);
  });

  test('a workloadSelector Sidecar beats the namespace one, which beats the root namespace one', () => {
    const rootOnly = sidecar('root', 'vmesh-system', 'egress: [{hosts: ["*/ratings.default.mesh"]}]');
    const ns = sidecar('ns', 'default', 'egress: [{hosts: ["*/legacy-db.default.mesh"]}]');
    const selected = sidecar(
      'pp',
      'default',
      'workloadSelector: {labels: {app: productpage}}\negress: [{hosts: ["*/api.payments.example.com"]}]',
    );
    assert.deepEqual(scoped('h1', rootOnly).hosts, ['productpage.default.mesh', 'ratings.default.mesh']);
    assert.deepEqual(scoped('h1', rootOnly + ns).hosts, ['legacy-db.default.mesh', 'productpage.default.mesh']);
    assert.deepEqual(scoped('h1', rootOnly + ns + selected).hosts, ['api.payments.example.com', 'productpage.default.mesh']);
    // h2 runs reviews, which the selector does not pick.
    assert.deepEqual(scoped('h2', rootOnly + ns + selected).hosts, ['legacy-db.default.mesh', 'reviews.default.mesh']);
    const { input } = scoped('h1', rootOnly + ns + selected);
    assert.equal(sidecarFor(input.config, input.node, input.mesh)?.metadata.name, 'pp');
  });

  test('an egress listener with a port keeps only that port of the service', () => {
    const yaml = sidecar(
      'default',
      'default',
      'egress:\n- port: {number: 9090, protocol: GRPC, name: grpc}\n  hosts: ["./ratings.default.mesh"]\n- hosts: ["./reviews.default.mesh"]',
    );
    const { services } = scoped('grpc', yaml);
    assert.deepEqual(
      services.map((s) => [s.hostname, s.ports.map((p) => p.number)]),
      [
        ['ratings.default.mesh', [9090]],
        ['reviews.default.mesh', [9080]],
      ],
    );
  });

  test('a Sidecar with only outboundTrafficPolicy does not limit what the node sees', () => {
    assert.deepEqual(scoped('h1', sidecar('default', 'default', 'outboundTrafficPolicy: {mode: REGISTRY_ONLY}')).hosts, ALL);
  });

  test('ServiceEntry exportTo hides services from other namespaces', () => {
    const se = (name: string, exportTo: string) => `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ${name}, namespace: team}
spec: {hosts: [${name}.team.mesh], location: MESH_INTERNAL, resolution: STATIC, ports: [{number: 80, name: http}], exportTo: ${exportTo}, endpoints: [{address: 198.18.0.90}]}
---
`;
    const yaml = se('private', '["."]') + se('shared', '["default"]') + se('hidden', '["~"]') + se('public', '["*"]');
    const hosts = scoped('h1', yaml).hosts.filter((h) => h.endsWith('.team.mesh'));
    assert.deepEqual(hosts, ['public.team.mesh', 'shared.team.mesh']);
  });
});
