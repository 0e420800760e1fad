import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { decodeAny, encodeAny, NDS } from '../../../../src/xds/index.js';
import { buildNameTable, NAME_TABLE_RESOURCE } from '../../../../src/xds/translate/name-table.js';
import { assertGolden } from '../../../support/golden.js';
import { bookinfoInput } from './fixture.js';

interface NameInfo {
  ips: string[];
  registry: string;
  shortname: string;
  namespace: string;
}

function table(node: 'h1' | 'h2' | 'gw' | 'grpc', namespace?: string): Record<string, NameInfo> {
  const base = bookinfoInput(node);
  const input = namespace ? { ...base, node: { ...base.node, namespace } } : base;
  const out = buildNameTable(input);
  const [only] = out;
  assert.ok(only && out.length === 1);
  assert.equal(only.name, NAME_TABLE_RESOURCE);
  return (only.message as { table: Record<string, NameInfo> }).table;
}

describe('buildNameTable', () => {
  for (const node of ['h1', 'h2', 'grpc'] as const) {
    test(`golden ${node}`, () => {
      assertGolden(
        join(import.meta.dirname, 'golden', `name-table-${node}.json`),
        `${JSON.stringify(buildNameTable(bookinfoInput(node)), null, 2)}\n`,
      );
    });
  }

  test('encodes as vmesh.v1.NameTable and decodes to the same table', () => {
    const [r] = buildNameTable(bookinfoInput('h1'));
    assert.ok(r);
    const decoded = decodeAny<{ table: Record<string, NameInfo> }>(encodeAny(NDS, r.message));
    assert.deepEqual(decoded.table, (r.message as { table: unknown }).table);
  });

  test('hostname, aliases, name.namespace and the short name all answer the VIP', () => {
    const t = table('h1');
    const vip = bookinfoInput('h1').model.services.get('reviews.default.mesh')?.vip;
    assert.ok(vip);
    for (const name of ['reviews.default.mesh', 'reviews.default.svc.cluster.local', 'reviews.default', 'reviews']) {
      assert.deepEqual(t[name], { ips: [vip], registry: 'vmesh', shortname: 'reviews', namespace: 'default' }, name);
    }
    assert.deepEqual(t['api.payments.example.com']?.ips, [bookinfoInput('h1').model.services.get('api.payments.example.com')?.vip]);
    assert.equal(t['api.payments'], undefined);
  });

  test('short names only for services in the node namespace', () => {
    const t = table('h1', 'elsewhere');
    assert.equal(t.reviews, undefined);
    assert.ok(t['reviews.default']);
    assert.ok(t['reviews.default.mesh']);
  });

  test('keys are sorted, so the output is byte-identical for the same input', () => {
    const keys = Object.keys(table('h1'));
    assert.deepEqual(keys, [...keys].sort());
    assert.equal(JSON.stringify(buildNameTable(bookinfoInput('h1'))), JSON.stringify(buildNameTable(bookinfoInput('h1'))));
  });
});
