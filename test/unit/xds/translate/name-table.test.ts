import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { parseResources } from '../../../../src/api/resource-parse.js';
import { checkResources } from '../../../../src/api/resource-validate.js';
import { decodeAny, encodeAny, NDS } from '../../../../src/xds/index.js';
import { buildClusters } from '../../../../src/xds/translate/clusters.js';
import { buildListeners } from '../../../../src/xds/translate/listeners.js';
import { buildNameTable, NAME_TABLE_RESOURCE } from '../../../../src/xds/translate/name-table.js';
import { assertGolden } from '../../../support/golden.js';
import { bookinfoInput, bookinfoResources } from './fixture.js';

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

  test("a ServiceEntry's IPv6 addresses answer AAAA and get outbound listeners; CIDRs and IPv4 addresses do not", () => {
    const base = bookinfoInput('h1');
    const extra = ['2001:DB8:0::11/128', '2001:db8::10', '2001:db8::/64', '10.1.2.3'];
    const services = base.services.map((s) => (s.hostname === 'reviews.default.mesh' ? { ...s, aliases: [...s.aliases, ...extra] } : s));
    const input = { ...base, services };
    const [nt] = buildNameTable(input);
    assert.ok(nt);
    const t = (nt.message as { table: Record<string, NameInfo> }).table;
    const reviews = services.find((s) => s.hostname === 'reviews.default.mesh');
    assert.ok(reviews);
    assert.deepEqual(t['reviews.default.mesh']?.ips, [reviews.vip, '2001:db8::10', '2001:db8::11']);
    const names = buildListeners(input).map((l) => l.name);
    for (const p of reviews.ports) {
      assert.ok(names.includes(`2001:db8::10_${p.number}`), names.join(' '));
      assert.ok(names.includes(`2001:db8::11_${p.number}`), names.join(' '));
    }
    assert.ok(!names.some((n) => n.startsWith('2001:db8::_') || n.startsWith('10.1.2.3_')), names.join(' '));
    const l = buildListeners(input).find((x) => x.name.startsWith('2001:db8::10_'));
    assert.ok(l);
    assert.deepEqual((l.message as { address: unknown }).address, {
      socket_address: { address: '2001:db8::10', port_value: reviews.ports[0]?.number },
    });
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

describe('partial wildcard ServiceEntry hosts', () => {
  test('like *.example.com, *-db.example.com and *x get no service, VIP, name or cluster', () => {
    const r = parseResources(
      `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: partial, namespace: default}
spec:
  hosts: ["*-db.example.com", "*x", "*.wild.example.com"]
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  resolution: NONE
  location: MESH_EXTERNAL
`,
      { source: 'se.yaml' },
    );
    assert.ok(r.ok);
    assert.deepEqual(checkResources(r.value).errors, [], 'accepted, as Istio accepts them');
    const input = bookinfoInput('h1', { resources: [...bookinfoResources(), ...r.value] });
    assert.ok(![...input.model.services.keys()].some((h) => h.includes('*')), 'no service for a wildcard host');
    const names = JSON.stringify(buildNameTable(input));
    const clusters = JSON.stringify(buildClusters(input));
    for (const h of ['db.example.com', '*x', 'wild.example.com']) {
      assert.ok(!names.includes(h), `name table: ${h}`);
      assert.ok(!clusters.includes(h), `clusters: ${h}`);
    }
  });
});
