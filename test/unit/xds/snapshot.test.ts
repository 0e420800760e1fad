import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { decodeAny, decodeMessage, encodeAny, encodeMessage, loadProtoRegistry } from '../../../src/xds/protos.js';
import { checkConsistent, makeSnapshot } from '../../../src/xds/snapshot.js';
import { SnapshotCache } from '../../../src/xds/snapshot-cache.js';
import { fromStruct, toStruct } from '../../../src/xds/struct.js';
import { CDS, EDS, LDS, NDS, pushOrder, RDS, TypedConfigUrl } from '../../../src/xds/type-urls.js';
import { cluster, endpoints, listener, route, world } from './fixtures.js';

describe('protos', () => {
  test('a Cluster round-trips through Any with enums as names', () => {
    const any = encodeAny(CDS, cluster('reviews'));
    assert.equal(any.type_url, CDS);
    const c = decodeAny<{ name: string; type: string; eds_cluster_config: { eds_config: { config_source_specifier: string } } }>(any);
    assert.equal(c.name, 'reviews');
    assert.equal(c.type, 'EDS');
    assert.equal(c.eds_cluster_config.eds_config.config_source_specifier, 'ads');
  });

  test('typed configs nest as Any and decode on their own', () => {
    const l = decodeAny<{ filter_chains: Array<{ filters: Array<{ typed_config: { type_url: string; value: Buffer } }> }> }>(
      encodeAny(LDS, listener('l1', 'r1', 9080)),
    );
    const tc = l.filter_chains[0]?.filters[0]?.typed_config;
    assert.equal(tc?.type_url, TypedConfigUrl.httpConnectionManager);
    const hcm = decodeAny<{ route_specifier: string; rds: { route_config_name: string } }>(tc as { type_url: string; value: Buffer });
    assert.equal(hcm.route_specifier, 'rds');
    assert.equal(hcm.rds.route_config_name, 'r1');
  });

  test('the vmesh NameTable type loads from src/xds/proto', () => {
    const t = decodeAny<{ table: Record<string, { ips: string[]; registry: string; shortname: string; namespace: string }> }>(
      encodeAny(NDS, {
        table: { 'reviews.default.mesh': { ips: ['240.240.0.7'], registry: 'vm', shortname: 'reviews', namespace: 'default' } },
      }),
    );
    assert.deepEqual(t.table['reviews.default.mesh'], { ips: ['240.240.0.7'], registry: 'vm', shortname: 'reviews', namespace: 'default' });
  });

  test('unknown fields, unknown enum names and doubly-set oneofs are refused, naming the path', () => {
    assert.throws(() => encodeAny(CDS, { name: 'c', eds_cluster_confg: {} }), /Cluster\.eds_cluster_confg: .*no field "eds_cluster_confg"/);
    assert.throws(() => encodeAny(CDS, { name: 'c', type: 'EDZ' }), /Cluster\.type: "EDZ" is not a value of/);
    assert.throws(() => encodeAny(CDS, { name: 'c', type: 'EDS', cluster_type: { name: 'x' } }), /type and cluster_type are exclusive/);
    assert.throws(
      () => encodeMessage('envoy.config.endpoint.v3.ClusterLoadAssignment', { cluster_name: 'c', endpoints: [{ lb_endpoint: [] }] }),
      /endpoints\[0\]\.lb_endpoint/,
    );
  });

  test('the small loader holds only the files it was given', () => {
    const small = loadProtoRegistry(['envoy/config/endpoint/v3/endpoint.proto']);
    assert.ok(small.has('envoy.config.endpoint.v3.ClusterLoadAssignment'));
    assert.ok(!small.has('envoy.config.listener.v3.Listener'));
    const cla = small.decodeAny<{ cluster_name: string }>(encodeAny(EDS, endpoints('reviews', ['198.18.0.12'])));
    assert.equal(cla.cluster_name, 'reviews');
    assert.throws(() => small.decodeAny(encodeAny(CDS, cluster('x'))), /unknown message type envoy\.config\.cluster\.v3\.Cluster/);
  });

  test('Struct metadata survives encoding and decoding', () => {
    const meta = { hostname: 'h1', port: 15001, tls: true, labels: { app: 'reviews' }, ips: ['198.18.0.1'], none: null };
    const bytes = encodeMessage('google.protobuf.Struct', toStruct(meta));
    assert.deepEqual(fromStruct(decodeMessage('google.protobuf.Struct', bytes)), meta);
  });

  test('push order puts clusters before endpoints, listeners before routes', () => {
    assert.deepEqual(pushOrder([NDS, RDS, LDS, EDS, CDS]), [CDS, EDS, LDS, RDS, NDS]);
  });
});

describe('snapshot', () => {
  test('resource versions are content hashes: equal content, equal version', () => {
    const a = world('v1', { clusters: { a: ['198.18.0.1'], b: ['198.18.0.2'] } });
    const b = world('v2', { clusters: { a: ['198.18.0.1'], b: ['198.18.0.3'] } });
    assert.equal(a.resources.get(CDS)?.get('a')?.version, b.resources.get(CDS)?.get('a')?.version);
    assert.equal(a.resources.get(EDS)?.get('a')?.version, b.resources.get(EDS)?.get('a')?.version);
    assert.notEqual(a.resources.get(EDS)?.get('b')?.version, b.resources.get(EDS)?.get('b')?.version);
    assert.match(a.resources.get(EDS)?.get('b')?.version ?? '', /^[0-9a-f]{16}$/);
  });

  test('a resource whose own name field disagrees with its name is refused', () => {
    assert.throws(() => makeSnapshot('v1', { [CDS]: [{ name: 'a', message: cluster('b') }] }), /CDS resource "a": its name is "b"/);
    assert.throws(
      () =>
        makeSnapshot('v1', {
          [CDS]: [
            { name: 'a', message: cluster('a') },
            { name: 'a', message: cluster('a') },
          ],
        }),
      /two CDS/,
    );
  });

  test('checkConsistent names the missing ClusterLoadAssignment and RouteConfiguration', () => {
    const s = makeSnapshot('v3', {
      [CDS]: [{ name: 'reviews', message: cluster('reviews') }],
      [LDS]: [{ name: 'l1', message: listener('l1', 'r-missing', 9080) }],
      [RDS]: [{ name: 'r-other', message: route('r-other', 'reviews') }],
    });
    const r = checkConsistent(s);
    assert.equal(r.ok, false);
    assert.ok(!r.ok);
    assert.equal(r.error.length, 2);
    assert.match(r.error[0] ?? '', /cluster "reviews" \(type EDS\) needs ClusterLoadAssignment "reviews", which is missing/);
    assert.match(r.error[1] ?? '', /listener "l1" loads RouteConfiguration "r-missing" over RDS/);
    assert.ok(checkConsistent(world('v4', { clusters: { a: [] }, listeners: { l: { route: 'r', port: 80 } }, routes: { r: 'a' } })).ok);
  });

  test('an EDS cluster with a service_name needs the assignment of that name', () => {
    const c = { ...cluster('outbound|9080||reviews'), eds_cluster_config: { service_name: 'reviews', eds_config: { ads: {} } } };
    const bad = makeSnapshot('v1', { [CDS]: [{ name: 'outbound|9080||reviews', message: c }] });
    assert.match((checkConsistent(bad) as { error: string[] }).error[0] ?? '', /needs ClusterLoadAssignment "reviews"/);
    const good = makeSnapshot('v1', {
      [CDS]: [{ name: 'outbound|9080||reviews', message: c }],
      [EDS]: [{ name: 'reviews', message: endpoints('reviews', ['198.18.0.12']) }],
    });
    assert.ok(checkConsistent(good).ok);
  });
});

describe('SnapshotCache', () => {
  test('refuses an inconsistent snapshot, keeps the previous one and tells no watcher', () => {
    const cache = new SnapshotCache();
    const seen: string[] = [];
    const unwatch = cache.watch('n1', (s) => seen.push(s.version));
    assert.ok(cache.setSnapshot('n1', world('v1', { clusters: { a: ['198.18.0.1'] } })).ok);
    const bad = makeSnapshot('v2', {
      [CDS]: [
        { name: 'a', message: cluster('a') },
        { name: 'b', message: cluster('b') },
      ],
    });
    const r = cache.setSnapshot('n1', bad);
    assert.ok(!r.ok);
    assert.match(r.error.join('\n'), /ClusterLoadAssignment "a"/);
    assert.equal(cache.getSnapshot('n1')?.version, 'v1');
    assert.deepEqual(seen, ['v1']);
    unwatch();
    assert.ok(cache.setSnapshot('n1', world('v3', {})).ok);
    assert.deepEqual(seen, ['v1']);
    assert.deepEqual(cache.nodes(), ['n1']);
    cache.clear('n1');
    assert.equal(cache.getSnapshot('n1'), undefined);
    assert.deepEqual(cache.nodes(), []);
  });
});
