import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { DEFAULT_MESH_CONFIG } from '../../../src/api/mesh-config.js';
import { ConfigStore, resolveKind, ValidationFailed } from '../../../src/store/config-store.js';
import { FileStore } from '../../../src/store/file/file-store.js';

const DR = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
`;
const VS = (subset: string, weight = 100) => `apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  http:
  - timeout: 1.5s
    route:
    - destination: {host: reviews, subset: ${subset}}
      weight: ${weight}
`;

async function open(dir = mkdtempSync(join(tmpdir(), 'vmesh-cfg-'))) {
  const store = await FileStore.open(dir);
  return { dir, store, config: new ConfigStore(store, DEFAULT_MESH_CONFIG) };
}

describe('ConfigStore', () => {
  test('applies a batch, reports created/updated/unchanged, and survives a restart typed', async () => {
    const { dir, store, config } = await open();
    let changes = 0;
    config.onChange(() => changes++);
    const r1 = await config.applyText(`${DR}---\n${VS('v1')}`, { source: 'bookinfo.yaml' });
    assert.deepEqual(
      r1.results.map((x) => `${x.key} ${x.action}`),
      ['DestinationRule/default/reviews created', 'VirtualService/default/reviews created'],
    );
    const r2 = await config.applyText(`${DR}---\n${VS('v2')}`, { source: 'bookinfo.yaml' });
    assert.deepEqual(
      r2.results.map((x) => x.action),
      ['unchanged', 'updated'],
    );
    assert.equal(changes, 2);
    await store.close();
    const again = await open(dir);
    const vs = again.config.get('VirtualService', 'default', 'reviews');
    assert.ok(vs && vs.kind === 'VirtualService');
    const http = (vs.spec as { http?: Array<{ timeout?: number; route?: Array<{ destination: { subset?: string } }> }> }).http;
    assert.equal(http?.[0]?.timeout, 1500, 'durations come back typed in ms');
    assert.equal(http?.[0]?.route?.[0]?.destination.subset, 'v2');
    assert.equal(again.config.getRaw('VirtualService', 'default', 'reviews')?.apiVersion, 'networking.istio.io/v1beta1');
  });

  test('a batch with one bad resource changes nothing and names every problem', async () => {
    const { config } = await open();
    await config.applyText(DR, { source: 'dr.yaml' });
    const bad = `${VS('v1').replace('hosts: [reviews.default.svc.cluster.local]', 'hosts: [-reviews.example.com]')}---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: ok}\nspec: {hosts: [db.example.com], ports: [{number: 5432, name: tcp, protocol: TCP}], resolution: DNS}\n`;
    await assert.rejects(config.applyText(bad, { source: 'bad.yaml' }), (e: unknown) => {
      assert.ok(e instanceof ValidationFailed);
      assert.match(e.message, /VirtualService default\/reviews: spec\.hosts\[0\]/);
      return true;
    });
    assert.equal(config.list('ServiceEntry').length, 0, 'the good resource of the batch was not applied either');
    assert.equal(config.list('VirtualService').length, 0);
  });

  test('a route to a subset not defined (yet) is applied with a warning, as Istio accepts it', async () => {
    const { config } = await open();
    const r = await config.applyText(VS('v3'), { source: 'vs.yaml' });
    assert.deepEqual(r.results, [{ key: 'VirtualService/default/reviews', action: 'created' }]);
    assert.equal(r.warnings.length, 1);
    assert.match(
      r.warnings[0] ?? '',
      /^VMESH_WARN_REFERENCE_NOT_FOUND: VirtualService default\/reviews: .*subset "v3" of host reviews\.default\.mesh is not defined/,
    );
    const again = await config.applyText(DR, { source: 'dr.yaml' });
    assert.deepEqual(again.warnings, [], 'the DestinationRule arriving later is just applied');
  });

  test('Kubernetes documents are skipped with a warning each; an empty text applies nothing', async () => {
    const { config } = await open();
    const svc = 'apiVersion: v1\nkind: Service\nmetadata: {name: reviews}\nspec: {ports: [{port: 9080, name: http}]}\n';
    const deploy = 'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: reviews-v1}\nspec: {replicas: 1}\n';
    const r = await config.applyText(`${svc}---\n${DR}---\n${deploy}`, { source: 'bookinfo.yaml' });
    assert.deepEqual(r.results, [{ key: 'DestinationRule/default/reviews', action: 'created' }]);
    assert.deepEqual(r.warnings, [
      'VMESH_WARN_SKIPPED_KIND: document 1 of bookinfo.yaml: skipped Service reviews (v1): not mesh config, vmesh does not read Kubernetes core resources',
      'VMESH_WARN_SKIPPED_KIND: document 3 of bookinfo.yaml: skipped Deployment reviews-v1 (apps/v1): not mesh config, vmesh does not read apps resources',
    ]);
    assert.deepEqual(await config.applyText('', { source: 'empty.yaml' }), { results: [], warnings: [] });
  });

  test('schema errors refuse the batch before anything is checked against the store', async () => {
    const { config } = await open();
    await assert.rejects(
      config.applyText('apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: x}\nspec: {hosts: [x], bogus: 1}\n', {
        source: 'x.yaml',
      }),
      /spec\.bogus/,
    );
    await assert.rejects(config.applyText('kind: [unclosed', { source: 'y.yaml' }), /y\.yaml/);
  });

  test('dry run validates without storing; delete removes; kinds resolve from short names', async () => {
    const { config } = await open();
    const r = await config.applyText(DR, { source: 'dr.yaml', dryRun: true });
    assert.equal(r.results[0]?.action, 'created');
    assert.equal(config.list().length, 0);
    await config.applyText(DR, { source: 'dr.yaml' });
    await config.delete('DestinationRule', 'default', 'reviews');
    assert.equal(config.list().length, 0);
    await assert.rejects(config.delete('DestinationRule', 'default', 'reviews'), /not found/);
    assert.equal(resolveKind('vs'), 'VirtualService');
    assert.equal(resolveKind('authorizationpolicies'), 'AuthorizationPolicy');
    assert.equal(resolveKind('ServiceEntry'), 'ServiceEntry');
    assert.throws(() => resolveKind('pods'), /unknown kind "pods"/);
  });
});
