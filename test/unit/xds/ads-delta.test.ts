import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { makeSnapshot } from '../../../src/xds/snapshot.js';
import { proxyStatus } from '../../../src/xds/sync-status.js';
import { CDS, EDS, LDS, RDS, typeLabel } from '../../../src/xds/type-urls.js';
import { cluster, endpoints, type Harness, type RecordedUpdate, rawStream, recordingClient, startAds, waitFor, world } from './fixtures.js';

const all = [CDS, EDS, LDS, RDS];

function acked(h: Harness, nodeId: string, types: readonly string[], version: string): boolean {
  return h.ads.status().some((s) => s.nodeId === nodeId && types.every((t) => s.types[t]?.acked === version));
}

const brief = (us: readonly RecordedUpdate[]) =>
  us.map((u) => `${typeLabel(u.typeUrl)}@${u.version}:${u.names.join(',')}${u.removed.length ? ` -${u.removed.join(',')}` : ''}`);

interface DeltaResource {
  name: string;
  version: string;
}

describe('ADS delta (incremental)', () => {
  let h: Harness;
  before(async () => {
    h = await startAds();
  });
  after(async () => {
    await h.close();
  });

  test('the first responses carry everything with per-resource versions', async () => {
    const snap = world('v1', {
      clusters: { a: ['198.18.0.11'], b: ['198.18.0.12'] },
      listeners: { l1: { route: 'r1', port: 9080 } },
      routes: { r1: 'a' },
    });
    h.cache.setSnapshot('d1', snap);
    const raw = rawStream(h.port, 'delta');
    try {
      raw.send({ node: { id: 'd1' }, type_url: CDS });
      const r = await raw.next();
      assert.equal(r.system_version_info, 'v1');
      assert.deepEqual(r.removed_resources, []);
      const got = (r.resources as DeltaResource[]).map((x) => [x.name, x.version]);
      assert.deepEqual(got, [
        ['a', snap.resources.get(CDS)?.get('a')?.version],
        ['b', snap.resources.get(CDS)?.get('b')?.version],
      ]);
    } finally {
      raw.close();
    }

    const { client, updates } = recordingClient(h.port, 'delta', { node: { id: 'd1', cluster: 'lab' } });
    client.start();
    try {
      await waitFor('all types ACKed at v1', () => acked(h, 'd1', all, 'v1'));
      assert.deepEqual(brief(updates), ['CDS@v1:a,b', 'EDS@v1:a,b', 'LDS@v1:l1', 'RDS@v1:r1']);
      assert.equal(h.ads.status().find((s) => s.nodeId === 'd1')?.mode, 'delta');
      assert.equal(client.state(EDS).version, 'v1');
    } finally {
      await client.stop();
    }
  });

  test('a change sends only the changed resource; a removal goes to removed_resources', async () => {
    h.cache.setSnapshot(
      'd2',
      world('v1', {
        clusters: { a: ['198.18.0.11'], b: ['198.18.0.12'] },
        listeners: { l1: { route: 'r1', port: 9080 } },
        routes: { r1: 'a' },
      }),
    );
    const { client, updates } = recordingClient(h.port, 'delta', { node: { id: 'd2', cluster: 'lab' } });
    client.start();
    try {
      await waitFor('v1 ACKed', () => acked(h, 'd2', all, 'v1'));
      let mark = updates.length;
      h.cache.setSnapshot(
        'd2',
        world('v2', {
          clusters: { a: ['198.18.0.21'], b: ['198.18.0.12'] },
          listeners: { l1: { route: 'r1', port: 9080 } },
          routes: { r1: 'a' },
        }),
      );
      await waitFor('EDS v2 ACKed', () => acked(h, 'd2', [EDS], 'v2'));
      assert.deepEqual(brief(updates.slice(mark)), ['EDS@v2:a']);

      mark = updates.length;
      h.cache.setSnapshot(
        'd2',
        world('v3', { clusters: { a: ['198.18.0.21'] }, listeners: { l1: { route: 'r1', port: 9080 } }, routes: { r1: 'a' } }),
      );
      await waitFor('CDS and EDS v3 ACKed', () => acked(h, 'd2', [CDS, EDS], 'v3'));
      assert.deepEqual(brief(updates.slice(mark)), ['CDS@v3: -b', 'EDS@v3: -b']);
      assert.deepEqual(client.state(CDS).resources, ['a']);
    } finally {
      await client.stop();
    }
  });

  test('a reconnect with initial_resource_versions gets only what changed while away', async () => {
    h.cache.setSnapshot('d3', world('v1', { clusters: { a: ['198.18.0.11'], b: ['198.18.0.12'], c: ['198.18.0.13'] } }));
    const first = rawStream(h.port, 'delta');
    let versions: Record<string, string>;
    try {
      first.send({ node: { id: 'd3' }, type_url: CDS });
      const r = await first.next();
      versions = Object.fromEntries((r.resources as DeltaResource[]).map((x) => [x.name, x.version]));
      assert.deepEqual(Object.keys(versions), ['a', 'b', 'c']);
      first.send({ type_url: CDS, response_nonce: r.nonce });
      await waitFor('CDS v1 ACKed', () => acked(h, 'd3', [CDS], 'v1'));
    } finally {
      first.close();
    }
    // While away: b changes, c goes, d arrives.
    const changedB = { ...cluster('b'), connect_timeout: { seconds: 5 } };
    const away = h.cache.setSnapshot(
      'd3',
      makeSnapshot('v2', {
        [CDS]: [
          { name: 'a', message: cluster('a') },
          { name: 'b', message: changedB },
          { name: 'd', message: { ...cluster('d'), type: 'STATIC' } },
        ],
        [EDS]: [
          { name: 'a', message: endpoints('a', ['198.18.0.11']) },
          { name: 'b', message: endpoints('b', ['198.18.0.12']) },
        ],
      }),
    );
    assert.ok(away.ok);
    const again = rawStream(h.port, 'delta');
    try {
      again.send({ node: { id: 'd3' }, type_url: CDS, initial_resource_versions: versions });
      const r = await again.next();
      assert.equal(r.system_version_info, 'v2');
      assert.deepEqual((r.resources as DeltaResource[]).map((x) => x.name).sort(), ['b', 'd']);
      assert.deepEqual(r.removed_resources, ['c']);
    } finally {
      again.close();
    }
  });

  test('AdsClient resumes with its versions after a disconnect and is sent only the difference', async () => {
    h.cache.setSnapshot('d4', world('v1', { clusters: { a: ['198.18.0.11'], b: ['198.18.0.12'] } }));
    const { client, updates } = recordingClient(h.port, 'delta', { node: { id: 'd4', cluster: 'lab' }, types: [CDS, EDS] });
    client.start();
    try {
      await waitFor('v1 ACKed', () => acked(h, 'd4', [CDS, EDS], 'v1'));
      const mark = updates.length;
      assert.equal(h.ads.disconnect('d4'), 1);
      h.cache.setSnapshot('d4', world('v2', { clusters: { a: ['198.18.0.11'], b: ['198.18.0.22'], c: ['198.18.0.13'] } }));
      await waitFor('v2 ACKed on the new stream', () => acked(h, 'd4', [CDS, EDS], 'v2'));
      const after = updates.slice(mark);
      const names = (t: string) => [...new Set(after.filter((u) => u.typeUrl === t).flatMap((u) => u.names))].sort();
      assert.deepEqual(names(CDS), ['c']);
      assert.deepEqual(names(EDS), ['b', 'c']);
      assert.deepEqual(client.state(EDS).resources.sort(), ['a', 'b', 'c']);
    } finally {
      await client.stop();
    }
  });

  test('a client that resumes holding exactly the snapshot is SYNCED for every type, though nothing is sent', async () => {
    // A restarted controller rebuilds the same snapshot: the agent's initial_resource_versions already match it.
    h.cache.setSnapshot(
      'd9',
      world('v1', { clusters: { a: ['198.18.0.11'] }, listeners: { l1: { route: 'r1', port: 9080 } }, routes: { r1: 'a' } }),
    );
    const { client } = recordingClient(h.port, 'delta', { node: { id: 'd9', cluster: 'lab' } });
    client.start();
    try {
      await waitFor('v1 ACKed', () => acked(h, 'd9', all, 'v1'));
      assert.equal(h.ads.disconnect('d9'), 1);
      await waitFor('a new stream, in sync for every type', () => {
        const rows = proxyStatus({ nodes: ['d9'], streams: h.ads.status(), cache: h.cache, lastPush: new Map() });
        return all.every((t) => rows[0]?.types[typeLabel(t)]?.state === 'SYNCED') && rows[0]?.connected === true;
      });
    } finally {
      await client.stop();
    }
  });

  test('NACKs are recorded; subscription changes apply even under a stale nonce; absent names are reported', async () => {
    h.cache.setSnapshot('d5', world('v1', { clusters: { a: ['198.18.0.11'], b: ['198.18.0.12'] } }));
    const raw = rawStream(h.port, 'delta');
    try {
      raw.send({ node: { id: 'd5' }, type_url: EDS, resource_names_subscribe: ['a', 'nope'] });
      const r1 = await raw.next();
      assert.deepEqual(
        (r1.resources as DeltaResource[]).map((x) => x.name),
        ['a'],
      );
      assert.deepEqual(r1.removed_resources, ['nope']);
      raw.send({ type_url: EDS, response_nonce: r1.nonce, error_detail: { code: 3, message: 'endpoint a: bad port' } });
      await waitFor('NACK recorded', () =>
        h.ads.status().some((s) => s.nodeId === 'd5' && s.types[EDS]?.nacked?.error === 'endpoint a: bad port'),
      );

      h.cache.setSnapshot('d5', world('v2', { clusters: { a: ['198.18.0.21'], b: ['198.18.0.12'] } }));
      const r2 = await raw.next();
      assert.deepEqual(
        (r2.resources as DeltaResource[]).map((x) => x.name),
        ['a'],
      );
      // r1 is stale now, yet the new subscription to b counts; b goes out once r2 is answered.
      raw.send({ type_url: EDS, response_nonce: r1.nonce, resource_names_subscribe: ['b'] });
      await raw.quiet(150);
      raw.send({ type_url: EDS, response_nonce: r2.nonce });
      const r3 = await raw.next();
      assert.deepEqual(
        (r3.resources as DeltaResource[]).map((x) => x.name),
        ['b'],
      );
      const st = h.ads.status().find((s) => s.nodeId === 'd5')?.types[EDS];
      assert.equal(st?.acked, 'v2');
      assert.equal(st?.nacked, undefined);
    } finally {
      raw.close();
    }
  });
});
