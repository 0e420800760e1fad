import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { parseResources } from '../../../../src/api/resource-parse.js';
import { checkResources } from '../../../../src/api/resource-validate.js';
import { nameTableFrom } from '../../../../src/dns/name-table.js';
import { decodeAny, encodeAny, NDS } from '../../../../src/xds/index.js';
import { buildClusters } from '../../../../src/xds/translate/clusters.js';
import { buildListeners } from '../../../../src/xds/translate/listeners.js';
import { buildNameTable, nameTableShardName } from '../../../../src/xds/translate/name-table.js';
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
  return merged(buildNameTable(input));
}

/** The shards' union, as the DNS proxy reads it (each name in exactly one shard). */
function merged(shards: ReturnType<typeof buildNameTable>): Record<string, NameInfo> {
  const out: Record<string, NameInfo> = {};
  for (const s of shards) {
    for (const [n, info] of Object.entries((s.message as { table: Record<string, NameInfo> }).table)) {
      assert.equal(out[n], undefined, `${n} in two shards`);
      out[n] = info;
    }
  }
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => (a < b ? -1 : 1)));
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
    for (const r of buildNameTable(bookinfoInput('h1'))) {
      const decoded = decodeAny<{ table: Record<string, NameInfo> }>(encodeAny(NDS, r.message));
      assert.deepEqual(decoded.table, (r.message as { table: unknown }).table);
    }
  });

  test('one shard per service, named in hostname order; a new service adds one shard and changes no other', () => {
    const base = bookinfoInput('h1');
    const before = buildNameTable(base);
    assert.deepEqual(
      before.map((s) => s.name),
      base.services
        .filter((s) => s.vip)
        .map((s) => nameTableShardName(s.hostname))
        .sort(),
    );
    const reviews = base.services.find((s) => s.hostname === 'reviews.default.mesh');
    assert.ok(reviews);
    const added = { ...reviews, hostname: 'added.default.mesh', name: 'added', aliases: [], vip: '240.240.9.9' };
    const after = buildNameTable({ ...base, services: [...base.services, added] });
    const changed = after.filter((a) => JSON.stringify(a) !== JSON.stringify(before.find((b) => b.name === a.name)));
    assert.deepEqual(
      changed.map((c) => c.name),
      [nameTableShardName('added.default.mesh')],
    );
    const [shard] = changed;
    assert.ok(shard);
    assert.deepEqual(Object.keys((shard.message as { table: object }).table), ['added', 'added.default', 'added.default.mesh']);
  });

  test('a name two services claim is kept by the first by hostname, in its shard only; the DNS proxy agrees', () => {
    const base = bookinfoInput('h1');
    const services = base.services.map((s) =>
      s.hostname === 'reviews.default.mesh' || s.hostname === 'ratings.default.mesh'
        ? { ...s, aliases: [...s.aliases, 'shared.example.com'] }
        : s,
    );
    const shards = buildNameTable({ ...base, services });
    const t = merged(shards);
    const ratings = services.find((s) => s.hostname === 'ratings.default.mesh');
    assert.deepEqual(t['shared.example.com']?.ips, [ratings?.vip]);
    const dns = nameTableFrom(Object.fromEntries(shards.map((s) => [s.name, s.message])));
    assert.deepEqual(dns.get('shared.example.com')?.ips, [ratings?.vip]);
    assert.equal(dns.size, Object.keys(t).length);
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
    const t = merged(buildNameTable(input));
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
    for (const shard of buildNameTable(bookinfoInput('h1'))) {
      const keys = Object.keys((shard.message as { table: object }).table);
      assert.deepEqual(keys, [...keys].sort());
    }
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
