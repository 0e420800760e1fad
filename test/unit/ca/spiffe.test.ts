import assert from 'node:assert/strict';
import { test } from 'node:test';
import { controllerSpiffeId, hostSpiffeId, parseSpiffeId, workloadSpiffeId } from '../../../src/ca/spiffe.js';

test('SPIFFE ids round-trip through parseSpiffeId as a discriminated union', () => {
  const h = parseSpiffeId(hostSpiffeId('cluster.local', 'h2'));
  assert.deepEqual(h, {
    ok: true,
    value: { kind: 'host', trustDomain: 'cluster.local', host: 'h2', uri: 'spiffe://cluster.local/vmesh/host/h2' },
  });
  const w = parseSpiffeId(workloadSpiffeId('cluster.local', 'default', 'sleep'));
  assert.ok(w.ok && w.value.kind === 'workload' && w.value.namespace === 'default' && w.value.serviceAccount === 'sleep');
  const c = parseSpiffeId(controllerSpiffeId('example.org'));
  assert.ok(c.ok && c.value.kind === 'controller' && c.value.trustDomain === 'example.org');
});

test('parseSpiffeId refuses other URIs with a reason', () => {
  for (const bad of [
    'https://cluster.local/ns/a/sa/b',
    'spiffe://cluster.local',
    'spiffe://Cluster.Local/ns/a/sa/b',
    'spiffe://cluster.local/ns/a/sa/b/extra',
    'spiffe://cluster.local/vmesh/host/../x',
    'spiffe://cluster.local/ns//sa/b',
    'spiffe://cluster.local/something/else',
  ]) {
    const r = parseSpiffeId(bad);
    assert.ok(!r.ok, bad);
    assert.ok(r.error.includes(bad), r.error);
  }
});
