import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Endpoint } from '../../../../src/api/model.js';
import type { Resource } from '../../../../src/api/resource.js';
import { parseResources } from '../../../../src/api/resource-parse.js';
import type { TranslateInput } from '../../../../src/xds/translate/input.js';
import { effectiveMtlsMode, namespaceMtlsMode } from '../../../../src/xds/translate/peer-authentication.js';
import { bookinfoInput, bookinfoResources } from './fixture.js';

function parse(yaml: string): Resource[] {
  const r = parseResources(yaml, { source: 'test.yaml' });
  if (!r.ok) throw new Error(JSON.stringify(r.error));
  return r.value;
}

/** The fixture with its PeerAuthentications replaced by `docs` (YAML documents without apiVersion/kind). */
function withPolicies(...docs: string[]): TranslateInput {
  const yaml = docs.map((d) => `apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n${d}`).join('\n---\n');
  const resources = [...bookinfoResources().filter((r) => r.kind !== 'PeerAuthentication'), ...parse(yaml)];
  return bookinfoInput('h2', { resources });
}

function workload(input: TranslateInput, labels: Record<string, string> = { app: 'reviews' }, namespace = 'default'): Endpoint {
  const w = input.node.workloads.find((x) => x.workload === 'reviews-v1');
  assert.ok(w);
  return { ...w, labels, namespace };
}

const ROOT_STRICT = 'metadata: {name: default, namespace: vmesh-system}\nspec: {mtls: {mode: STRICT}}';

describe('effectiveMtlsMode', () => {
  test('the fixture: mesh-wide STRICT for reviews, PERMISSIVE for ratings (selector policy)', () => {
    const input = bookinfoInput('h2');
    assert.equal(effectiveMtlsMode(input, workload(input), 9080), 'STRICT');
    assert.equal(effectiveMtlsMode(input, workload(input, { app: 'ratings' }), 9080), 'PERMISSIVE');
  });

  test('no policy anywhere: PERMISSIVE, as Istio', () => {
    const input = withPolicies();
    assert.equal(effectiveMtlsMode(input, workload(input), 9080), 'PERMISSIVE');
    assert.equal(namespaceMtlsMode(input, 'default'), 'PERMISSIVE');
  });

  test('namespace-wide beats mesh-wide; UNSET inherits from the mesh', () => {
    const input = withPolicies(ROOT_STRICT, 'metadata: {name: ns, namespace: default}\nspec: {mtls: {mode: DISABLE}}');
    assert.equal(effectiveMtlsMode(input, workload(input), 9080), 'DISABLE');
    assert.equal(effectiveMtlsMode(input, workload(input, {}, 'prod'), 9080), 'STRICT', 'other namespaces keep the mesh mode');
    const unset = withPolicies(ROOT_STRICT, 'metadata: {name: ns, namespace: default}\nspec: {mtls: {mode: UNSET}}');
    assert.equal(effectiveMtlsMode(unset, workload(unset), 9080), 'STRICT');
  });

  test('a selecting policy beats the namespace; without mtls it inherits; it applies only in its own namespace', () => {
    const input = withPolicies(
      'metadata: {name: ns, namespace: default}\nspec: {mtls: {mode: STRICT}}',
      'metadata: {name: reviews, namespace: default}\nspec: {selector: {matchLabels: {app: reviews}}, mtls: {mode: PERMISSIVE}}',
      'metadata: {name: elsewhere, namespace: prod}\nspec: {selector: {matchLabels: {app: reviews}}, mtls: {mode: DISABLE}}',
    );
    assert.equal(effectiveMtlsMode(input, workload(input), 9080), 'PERMISSIVE');
    assert.equal(effectiveMtlsMode(input, workload(input, { app: 'other' }), 9080), 'STRICT');
    const inherit = withPolicies(
      'metadata: {name: ns, namespace: default}\nspec: {mtls: {mode: STRICT}}',
      'metadata: {name: reviews, namespace: default}\nspec: {selector: {matchLabels: {app: reviews}}, portLevelMtls: {"9999": {mode: DISABLE}}}',
    );
    assert.equal(effectiveMtlsMode(inherit, workload(inherit), 9080), 'STRICT');
  });

  test('portLevelMtls overrides the workload mode for that (workload) port only; UNSET there inherits', () => {
    const input = withPolicies(
      ROOT_STRICT,
      `metadata: {name: reviews, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  mtls: {mode: STRICT}
  portLevelMtls: {"9081": {mode: PERMISSIVE}, "9082": {mode: DISABLE}, "9083": {mode: UNSET}}`,
    );
    const w = workload(input);
    assert.equal(effectiveMtlsMode(input, w, 9080), 'STRICT');
    assert.equal(effectiveMtlsMode(input, w, 9081), 'PERMISSIVE');
    assert.equal(effectiveMtlsMode(input, w, 9082), 'DISABLE');
    assert.equal(effectiveMtlsMode(input, w, 9083), 'STRICT');
  });

  test('two policies at one level: the first by name wins, whatever the order they arrived in', () => {
    const a = withPolicies(
      'metadata: {name: b-disable, namespace: default}\nspec: {mtls: {mode: DISABLE}}',
      'metadata: {name: a-strict, namespace: default}\nspec: {mtls: {mode: STRICT}}',
    );
    assert.equal(effectiveMtlsMode(a, workload(a), 9080), 'STRICT');
  });
});
