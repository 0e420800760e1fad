import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { makeResource, makeSnapshot } from '../../../src/xds/snapshot.js';
import { CDS, EDS, LDS, NDS, RDS, typeLabel } from '../../../src/xds/type-urls.js';
import { delay, type Harness, listener, type RecordedUpdate, rawStream, recordingClient, startAds, waitFor, world } from './fixtures.js';

const all = [CDS, EDS, LDS, RDS];

function acked(h: Harness, nodeId: string, types: readonly string[], version: string): boolean {
  return h.ads.status().some((s) => s.nodeId === nodeId && types.every((t) => s.types[t]?.acked === version));
}

const brief = (us: readonly RecordedUpdate[]) => us.map((u) => `${typeLabel(u.typeUrl)}@${u.version}:${u.names.join(',')}`);

describe('ADS state of the world', () => {
  let h: Harness;
  before(async () => {
    h = await startAds();
  });
  after(async () => {
    await h.close();
  });

  test('wildcard CDS/LDS get everything, EDS/RDS follow by name, every response is ACKed', async () => {
    h.cache.setSnapshot(
      's1',
      world('v1', {
        clusters: { a: ['198.18.0.11'], b: ['198.18.0.12'] },
        listeners: { l1: { route: 'r1', port: 9080 } },
        routes: { r1: 'a' },
      }),
    );
    const { client, updates } = recordingClient(h.port, 'sotw', {
      node: { id: 's1', cluster: 'lab', metadata: { hostname: 'h1', labels: { app: 'reviews' } } },
    });
    client.start();
    try {
      await waitFor('all types ACKed at v1', () => acked(h, 's1', all, 'v1'));
      assert.deepEqual(brief(updates), ['CDS@v1:a,b', 'EDS@v1:a,b', 'LDS@v1:l1', 'RDS@v1:r1']);
      const st = h.ads.status().find((s) => s.nodeId === 's1');
      assert.equal(st?.mode, 'sotw');
      assert.deepEqual(st?.types[CDS], { sent: 'v1', acked: 'v1' });
      assert.ok(h.events.some((e) => e.nodeId === 's1' && e.kind === 'ack' && e.typeUrl === LDS && e.version === 'v1'));
      assert.equal(client.state(CDS).version, 'v1');
      assert.deepEqual(client.state(EDS).names.sort(), ['a', 'b']);
      // The node's Struct metadata reaches authenticate as plain JSON.
      const node = h.nodes.find((n) => n.id === 's1');
      assert.deepEqual(node, { id: 's1', cluster: 'lab', metadata: { hostname: 'h1', labels: { app: 'reviews' } } });
    } finally {
      await client.stop();
    }
  });

  test('a new snapshot pushes only the changed types, CDS before EDS before LDS before RDS; removals follow', async () => {
    h.cache.setSnapshot(
      's2',
      world('v1', {
        clusters: { a: ['198.18.0.11'], b: ['198.18.0.12'] },
        listeners: { l1: { route: 'r1', port: 9080 } },
        routes: { r1: 'a' },
      }),
    );
    const { client, updates } = recordingClient(h.port, 'sotw', { node: { id: 's2', cluster: 'lab' } });
    client.start();
    try {
      await waitFor('v1 ACKed', () => acked(h, 's2', all, 'v1'));
      let mark = updates.length;
      // New cluster c, the route moves to it, the listener changes port: all four types change.
      h.cache.setSnapshot(
        's2',
        world('v2', {
          clusters: { a: ['198.18.0.11'], b: ['198.18.0.12'], c: ['198.18.0.13'] },
          listeners: { l1: { route: 'r1', port: 9081 } },
          routes: { r1: 'c' },
        }),
      );
      await waitFor('v2 ACKed', () => acked(h, 's2', all, 'v2'));
      assert.deepEqual(brief(updates.slice(mark)), ['CDS@v2:a,b,c', 'EDS@v2:a,b,c', 'LDS@v2:l1', 'RDS@v2:r1']);

      // Only endpoints change: only EDS is pushed.
      mark = updates.length;
      h.cache.setSnapshot(
        's2',
        world('v3', {
          clusters: { a: ['198.18.0.21'], b: ['198.18.0.12'], c: ['198.18.0.13'] },
          listeners: { l1: { route: 'r1', port: 9081 } },
          routes: { r1: 'c' },
        }),
      );
      await waitFor('EDS v3 ACKed', () => acked(h, 's2', [EDS], 'v3'));
      await delay(100);
      assert.deepEqual(brief(updates.slice(mark)), ['EDS@v3:a,b,c']);
      assert.ok(acked(h, 's2', [CDS, LDS, RDS], 'v2'), 'unchanged types keep their version');

      // Cluster b goes away: the next CDS response lacks it and the client is told to drop it.
      mark = updates.length;
      h.cache.setSnapshot(
        's2',
        world('v4', {
          clusters: { a: ['198.18.0.21'], c: ['198.18.0.13'] },
          listeners: { l1: { route: 'r1', port: 9081 } },
          routes: { r1: 'c' },
        }),
      );
      await waitFor('CDS v4 ACKed', () => acked(h, 's2', [CDS], 'v4'));
      const cds = updates.slice(mark).find((u) => u.typeUrl === CDS);
      assert.deepEqual(cds?.names, ['a', 'c']);
      assert.deepEqual(cds?.removed, ['b']);
      assert.deepEqual(client.state(CDS).resources.sort(), ['a', 'c']);
    } finally {
      await client.stop();
    }
  });

  test('a NACK is recorded with its error, logged at warn, and the client keeps its version', async () => {
    h.cache.setSnapshot(
      's3',
      world('v1', { clusters: { a: ['198.18.0.11'] }, listeners: { l1: { route: 'r1', port: 9080 } }, routes: { r1: 'a' } }),
    );
    const { client } = recordingClient(h.port, 'sotw', {
      node: { id: 's3', cluster: 'lab' },
      reject: (t, u) => (t === LDS && u.version === 'v2' ? 'listener l1: port 1 is reserved' : undefined),
    });
    client.start();
    try {
      await waitFor('v1 ACKed', () => acked(h, 's3', all, 'v1'));
      h.cache.setSnapshot(
        's3',
        world('v2', { clusters: { a: ['198.18.0.11'] }, listeners: { l1: { route: 'r1', port: 1 } }, routes: { r1: 'a' } }),
      );
      await waitFor('LDS NACK', () => h.ads.status().some((s) => s.nodeId === 's3' && s.types[LDS]?.nacked !== undefined));
      const st = h.ads.status().find((s) => s.nodeId === 's3');
      assert.deepEqual(st?.types[LDS], { sent: 'v2', acked: 'v1', nacked: { version: 'v2', error: 'listener l1: port 1 is reserved' } });
      assert.equal(client.state(LDS).version, 'v1');
      assert.ok(h.events.some((e) => e.nodeId === 's3' && e.kind === 'nack' && e.error === 'listener l1: port 1 is reserved'));
      const warn = h.lines.map((l) => JSON.parse(l)).find((l) => l.nodeId === 's3' && l.level === 40);
      assert.match(warn?.msg ?? '', /s3 rejected LDS version v2: listener l1: port 1 is reserved/);
      // A fixed snapshot is accepted and clears the NACK.
      h.cache.setSnapshot(
        's3',
        world('v3', { clusters: { a: ['198.18.0.11'] }, listeners: { l1: { route: 'r1', port: 9082 } }, routes: { r1: 'a' } }),
      );
      await waitFor('LDS v3 ACKed', () => acked(h, 's3', [LDS], 'v3'));
      assert.equal(h.ads.status().find((s) => s.nodeId === 's3')?.types[LDS]?.nacked, undefined);
      assert.equal(client.state(LDS).version, 'v3');
    } finally {
      await client.stop();
    }
  });

  test('a named EDS subscription returns only the requested assignments', async () => {
    h.cache.setSnapshot('s4', world('v1', { clusters: { a: ['198.18.0.11'], b: ['198.18.0.12'], c: ['198.18.0.13'] } }));
    const { client, updates } = recordingClient(h.port, 'sotw', {
      node: { id: 's4', cluster: 'lab' },
      types: [CDS, EDS],
      initialNames: { [EDS]: ['a'] },
      follow: false,
    });
    client.start();
    try {
      await waitFor('EDS v1 ACKed', () => acked(h, 's4', [CDS, EDS], 'v1'));
      assert.deepEqual(brief(updates), ['CDS@v1:a,b,c', 'EDS@v1:a']);
      client.subscribe(EDS, ['c']);
      await waitFor('EDS for a and c', () => updates.length === 3);
      assert.deepEqual(brief(updates.slice(2)), ['EDS@v1:a,c']);
    } finally {
      await client.stop();
    }
  });

  test('a request carrying a stale nonce is ignored', async () => {
    h.cache.setSnapshot('s5', world('v1', { clusters: { a: ['198.18.0.11'], b: ['198.18.0.12'] } }));
    const raw = rawStream(h.port, 'sotw');
    try {
      raw.send({ node: { id: 's5' }, type_url: EDS, resource_names: ['a'] });
      const r1 = await raw.next();
      assert.equal(r1.version_info, 'v1');
      assert.equal((r1.resources as unknown[]).length, 1);
      raw.send({ type_url: EDS, version_info: 'v1', resource_names: ['a'], response_nonce: r1.nonce });
      await waitFor('EDS v1 ACKed', () => acked(h, 's5', [EDS], 'v1'));

      h.cache.setSnapshot('s5', world('v2', { clusters: { a: ['198.18.0.21'], b: ['198.18.0.12'] } }));
      const r2 = await raw.next();
      assert.equal(r2.version_info, 'v2');
      assert.notEqual(r2.nonce, r1.nonce);
      // Answers r1, which r2 superseded: neither an ACK nor a subscription change.
      raw.send({ type_url: EDS, version_info: 'v1', resource_names: ['a', 'b'], response_nonce: r1.nonce });
      await raw.quiet(250);
      assert.deepEqual(h.ads.status().find((s) => s.nodeId === 's5')?.types[EDS], { sent: 'v2', acked: 'v1' });

      raw.send({ type_url: EDS, version_info: 'v2', resource_names: ['a', 'b'], response_nonce: r2.nonce });
      const r3 = await raw.next();
      assert.equal((r3.resources as unknown[]).length, 2);
      assert.ok(acked(h, 's5', [EDS], 'v2'));
    } finally {
      raw.close();
    }
  });

  test('EDS naming a new cluster never precedes the CDS response that introduces it', async () => {
    h.cache.setSnapshot('s7', world('v1', { clusters: { a: ['198.18.0.11'] } }));
    const raw = rawStream(h.port, 'sotw');
    try {
      raw.send({ node: { id: 's7' }, type_url: CDS });
      const c1 = await raw.next();
      raw.send({ type_url: EDS }); // never named anything: a wildcard EDS subscription
      const e1 = await raw.next();
      assert.deepEqual([c1.type_url, e1.type_url], [CDS, EDS]);
      // Neither response is ACKed yet when cluster d appears: CDS owes an update it cannot send, so nothing moves.
      h.cache.setSnapshot('s7', world('v2', { clusters: { a: ['198.18.0.11'], d: ['198.18.0.14'] } }));
      await raw.quiet(150);
      raw.send({ type_url: EDS, version_info: 'v1', response_nonce: e1.nonce });
      await raw.quiet(150);
      raw.send({ type_url: CDS, version_info: 'v1', response_nonce: c1.nonce });
      const c2 = await raw.next();
      const e2 = await raw.next();
      assert.deepEqual([c2.type_url, c2.version_info, (c2.resources as unknown[]).length], [CDS, 'v2', 2]);
      assert.deepEqual([e2.type_url, e2.version_info, (e2.resources as unknown[]).length], [EDS, 'v2', 2]);
    } finally {
      raw.close();
    }
  });

  test('a node that connects before its snapshot exists is served once it is set', async () => {
    const { client, updates } = recordingClient(h.port, 'sotw', { node: { id: 's8', cluster: 'lab' }, types: [CDS, EDS] });
    client.start();
    try {
      await waitFor('the stream to open', () => h.ads.status().some((s) => s.nodeId === 's8'));
      await delay(50);
      assert.equal(updates.length, 0);
      h.cache.setSnapshot('s8', world('v1', { clusters: { a: ['198.18.0.11'] } }));
      await waitFor('v1 ACKed', () => acked(h, 's8', [CDS, EDS], 'v1'));
      assert.deepEqual(brief(updates), ['CDS@v1:a', 'EDS@v1:a']);
    } finally {
      await client.stop();
    }
  });

  test('the vmesh NameTable travels wrapped in a Resource and arrives by name; a full-state type drops what vanished', async () => {
    const table = (ips: string[]) => ({
      table: { 'reviews.default.mesh': { ips, registry: 'vm', shortname: 'reviews', namespace: 'default' } },
    });
    const set = (v: string, names: string[]) =>
      h.cache.setSnapshot('s9', makeSnapshot(v, { [NDS]: names.map((n) => ({ name: n, message: table(['240.240.0.7']) })) }));
    assert.ok(set('v1', ['names', 'extra']).ok);
    const { client, updates } = recordingClient(h.port, 'sotw', { node: { id: 's9', cluster: 'lab' }, types: [NDS], initialNames: {} });
    client.start();
    try {
      await waitFor('NDS v1 ACKed', () => acked(h, 's9', [NDS], 'v1'));
      assert.deepEqual(brief(updates), ['NDS@v1:extra,names']);
      const t = updates[0]?.resources.get('names') as { table: Record<string, { ips: string[] }> };
      assert.deepEqual(t.table['reviews.default.mesh']?.ips, ['240.240.0.7']);
      assert.ok(set('v2', ['names']).ok);
      await waitFor('NDS v2 ACKed', () => acked(h, 's9', [NDS], 'v2'));
      assert.deepEqual(updates[1]?.removed, ['extra']);
    } finally {
      await client.stop();
    }
  });

  test('a refused node and a first request without a node end the stream with a status', async () => {
    const evil = rawStream(h.port, 'sotw');
    evil.send({ node: { id: 'evil-1' }, type_url: CDS });
    const s1 = await evil.status;
    assert.equal(s1.code, grpc.status.PERMISSION_DENIED);
    assert.match(s1.details, /node evil-1 refused/);
    evil.close();
    const anon = rawStream(h.port, 'sotw');
    anon.send({ type_url: CDS });
    const s2 = await anon.status;
    assert.equal(s2.code, grpc.status.INVALID_ARGUMENT);
    assert.match(s2.details, /node\.id/);
    anon.close();
  });

  test('after a disconnect the client reconnects and catches up', async () => {
    h.cache.setSnapshot('s6', world('v1', { clusters: { a: ['198.18.0.11'] } }));
    const { client, updates } = recordingClient(h.port, 'sotw', { node: { id: 's6', cluster: 'lab' }, types: [CDS, EDS] });
    client.start();
    try {
      await waitFor('v1 ACKed', () => acked(h, 's6', [CDS, EDS], 'v1'));
      assert.equal(h.ads.disconnect('s6'), 1);
      assert.equal(h.ads.status().filter((s) => s.nodeId === 's6').length, 0);
      h.cache.setSnapshot('s6', world('v2', { clusters: { a: ['198.18.0.11'], b: ['198.18.0.12'] } }));
      await waitFor('v2 ACKed on the new stream', () => acked(h, 's6', [CDS, EDS], 'v2'));
      assert.deepEqual(brief(updates.filter((u) => u.version === 'v2')), ['CDS@v2:a,b', 'EDS@v2:a,b']);
    } finally {
      await client.stop();
    }
  });
});

describe('ADS state of the world: names the snapshot lacks, and closed streams', () => {
  let h: Harness;
  const closed: string[] = [];
  before(async () => {
    h = await startAds({
      absent: (typeUrl, name) =>
        typeUrl === LDS && name.startsWith('ghost') ? makeResource(LDS, name, listener(name, 'nowhere', 1)) : undefined,
      onNodeGone: (nodeId) => closed.push(nodeId),
    });
  });
  after(async () => {
    await h.close();
  });

  test("a named listener the snapshot lacks gets the host's stand-in, replaced once the real one exists", async () => {
    const clusters = { c: ['198.18.0.11'] };
    assert.ok(h.cache.setSnapshot('a1', world('v1', { clusters, listeners: { l1: { route: 'r1', port: 9080 } }, routes: { r1: 'c' } })).ok);
    const { client, updates } = recordingClient(h.port, 'sotw', {
      node: { id: 'a1', cluster: 'lab' },
      types: [LDS],
      initialNames: { [LDS]: ['l1', 'ghost-1', 'other'] },
      follow: false,
    });
    client.start();
    try {
      await waitFor('LDS v1 ACKed', () => acked(h, 'a1', [LDS], 'v1'));
      // `other` has no stand-in: it is left out, as before.
      assert.deepEqual(brief(updates), ['LDS@v1:ghost-1,l1']);
      const standIn = updates[0]?.resources.get('ghost-1') as { address?: { socket_address?: { port_value?: number } } };
      assert.equal(standIn.address?.socket_address?.port_value, 1);
      const v2 = world('v2', {
        clusters,
        listeners: { l1: { route: 'r1', port: 9080 }, 'ghost-1': { route: 'r1', port: 7 } },
        routes: { r1: 'c' },
      });
      assert.ok(h.cache.setSnapshot('a1', v2).ok);
      await waitFor('LDS v2 ACKed', () => acked(h, 'a1', [LDS], 'v2'));
      const real = updates.at(-1)?.resources.get('ghost-1') as { address?: { socket_address?: { port_value?: number } } };
      assert.equal(real.address?.socket_address?.port_value, 7);
    } finally {
      await client.stop();
    }
    await waitFor('the close reported', () => closed.includes('a1'));
    assert.deepEqual(
      closed.filter((n) => n === 'a1'),
      ['a1'],
    );
  });
});
