import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, test } from 'node:test';
import { createLogger } from '../../../src/lib/logger.js';
import { DeltaStream } from '../../../src/xds/delta-stream.js';
import { type AdsCall, SendGate } from '../../../src/xds/server-stream.js';
import { type Snapshot, snapshotFromTypes, type XdsResource } from '../../../src/xds/snapshot.js';
import { SnapshotCache } from '../../../src/xds/snapshot-cache.js';
import { SotwStream } from '../../../src/xds/sotw-stream.js';
import { CDS, EDS, LDS, RDS } from '../../../src/xds/type-urls.js';
import { world } from './fixtures.js';

const logger = createLogger({ level: 'silent' });

interface Written {
  msg: Record<string, unknown>;
  done: () => void;
}

/** A call that records writes; `more` is what write() answers, `autoComplete` runs the write callback at once. */
class FakeCall extends EventEmitter {
  readonly written: Written[] = [];
  more = true;
  autoComplete = true;
  write(msg: unknown, cb?: () => void): boolean {
    const done = cb ?? (() => undefined);
    this.written.push({ msg: msg as Record<string, unknown>, done });
    if (this.autoComplete) done();
    return this.more;
  }
  getPeer(): string {
    return 'fake:1';
  }
  last(): Record<string, unknown> {
    const w = this.written.at(-1);
    assert.ok(w, 'something was written');
    return w.msg;
  }
}

/** A map that counts every read: a stream that answers in O(1) does not touch it. */
class CountingMap<K, V> extends Map<K, V> {
  reads = 0;
  override get(k: K): V | undefined {
    this.reads += 1;
    return super.get(k);
  }
  override has(k: K): boolean {
    this.reads += 1;
    return super.has(k);
  }
  override keys(): MapIterator<K> {
    this.reads += 1;
    return super.keys();
  }
  override entries(): MapIterator<[K, V]> {
    this.reads += 1;
    return super.entries();
  }
  override values(): MapIterator<V> {
    this.reads += 1;
    return super.values();
  }
  override [Symbol.iterator](): MapIterator<[K, V]> {
    this.reads += 1;
    return super[Symbol.iterator]();
  }
}

const clusters = (n: number, changed?: string) =>
  Object.fromEntries(
    Array.from({ length: n }, (_, i) => [`c${i}`, [`198.18.0.${(i % 200) + 1}`, ...(changed === `c${i}` ? ['198.18.1.1'] : [])]]),
  );

/** The world's snapshot with every per-type map replaced by a counting copy (or by `reuse`'s map). */
function counted(s: Snapshot, reuse?: Snapshot, keep: readonly string[] = []): Snapshot {
  const byType = new Map<string, ReadonlyMap<string, XdsResource>>();
  for (const [t, m] of s.resources) {
    const prev = reuse?.resources.get(t);
    byType.set(t, prev && keep.includes(t) ? prev : new CountingMap(m));
  }
  return snapshotFromTypes(s.version, byType);
}

const reads = (s: Snapshot) => [...s.resources.values()].reduce((n, m) => n + (m as CountingMap<string, XdsResource>).reads, 0);
const resetReads = (s: Snapshot) => {
  for (const m of s.resources.values()) (m as CountingMap<string, XdsResource>).reads = 0;
};

function deltaStream(cache: SnapshotCache, nodeId: string, gate?: SendGate) {
  const call = new FakeCall();
  const stream = new DeltaStream({ cache, logger, gate }, call as unknown as AdsCall, 'delta');
  stream.attach(nodeId);
  return { call, stream };
}

/** Subscribes to all four types by wildcard and ACKs every response until the stream is quiet. */
function syncDelta(call: FakeCall, stream: DeltaStream): void {
  stream.handle({ node: { id: 'n' }, type_url: CDS });
  for (const t of [EDS, LDS, RDS]) stream.handle({ type_url: t });
  for (let i = 0; i < 20; i += 1) {
    const pending = call.written.filter((w) => !(w as { acked?: boolean }).acked);
    if (pending.length === 0) return;
    for (const w of pending) {
      (w as { acked?: boolean }).acked = true;
      stream.handle({ type_url: w.msg.type_url, response_nonce: w.msg.nonce });
    }
  }
  assert.fail('the stream did not settle');
}

const names = (msg: Record<string, unknown>) => (msg.resources as Array<{ name: string }>).map((r) => r.name);

describe('ADS stream fast paths', () => {
  test('delta: an ACK and an identical snapshot answer without reading the resources', () => {
    const cache = new SnapshotCache();
    const w = { clusters: clusters(50), listeners: { l1: { route: 'r1', port: 9080 } }, routes: { r1: 'c1' } };
    const s1 = counted(world('v1', w));
    cache.setSnapshot('n', s1);
    const { call, stream } = deltaStream(cache, 'n');
    syncDelta(call, stream);
    assert.deepEqual(
      call.written.map((x) => [x.msg.type_url, names(x.msg).length]),
      [
        [CDS, 50],
        [EDS, 50],
        [LDS, 1],
        [RDS, 1],
      ],
    );
    // One more send then its ACK: the ACK itself must not rescan.
    const s2 = counted(world('v2', { ...w, clusters: clusters(50, 'c7') }), s1, [CDS, LDS, RDS]);
    cache.setSnapshot('n', s2);
    assert.equal(call.written.length, 5);
    const eds = call.last();
    assert.equal(eds.type_url, EDS);
    assert.deepEqual(names(eds), ['c7'], 'exactly the one changed resource');
    assert.deepEqual(eds.removed_resources, []);
    resetReads(s2);
    stream.handle({ type_url: EDS, response_nonce: eds.nonce });
    assert.equal(call.written.length, 5, 'nothing more to send');
    assert.equal(reads(s2), 0, 'the ACK did not scan any resource map');
    const again = snapshotFromTypes('v2b', s2.resources);
    cache.setSnapshot('other', again); // the cache checks a new snapshot object's consistency once, not per stream
    resetReads(s2);
    cache.setSnapshot('n', again);
    assert.equal(reads(s2), 0, 'the same maps again: O(1) per type');
    assert.equal(call.written.length, 5);
  });

  test('delta: the changed names of a pair of maps are computed once for all streams; removals still go out', () => {
    const cache = new SnapshotCache();
    const w = { clusters: clusters(30) };
    const s1 = counted(world('v1', w));
    const streams = ['a', 'b', 'c'].map((id) => {
      cache.setSnapshot(id, s1);
      const x = deltaStream(cache, id);
      syncDelta(x.call, x.stream);
      return x;
    });
    const smaller = { ...w.clusters };
    delete smaller.c3;
    const s2 = counted(world('v2', { clusters: smaller }), s1, []);
    cache.setSnapshot('other', s2);
    resetReads(s1);
    cache.setSnapshot('a', s2);
    const first = reads(s1);
    cache.setSnapshot('b', s2);
    cache.setSnapshot('c', s2);
    const perLaterStream = (reads(s1) - first) / 2;
    for (const { call } of streams) {
      const [cds, eds] = call.written.slice(-2).map((x) => x.msg);
      assert.equal(cds?.type_url, CDS);
      assert.deepEqual(cds?.removed_resources, ['c3']);
      assert.deepEqual(names(cds ?? {}), []);
      assert.equal(eds?.type_url, EDS);
      assert.deepEqual(eds?.removed_resources, ['c3']);
    }
    // The first stream pays for the diff of each pair of maps (a read per name); the others reuse it.
    assert.ok(first >= 60, `first stream: ${first} reads`);
    assert.ok(perLaterStream <= 6, `later streams: ${perLaterStream} reads each, not a scan`);
  });

  test('delta: a reconnect with initial_resource_versions gets only what differs, then ACKs stay O(1)', () => {
    const cache = new SnapshotCache();
    const w = { clusters: clusters(10) };
    const s1 = counted(world('v1', w));
    cache.setSnapshot('n', s1);
    const { call, stream } = deltaStream(cache, 'n');
    const versions = Object.fromEntries([...(s1.resources.get(CDS) ?? [])].map(([n, r]) => [n, r.version]));
    versions.c2 = 'stale';
    versions.gone = 'x';
    stream.handle({ node: { id: 'n' }, type_url: CDS, initial_resource_versions: versions });
    const cds = call.last();
    assert.deepEqual(names(cds), ['c2']);
    assert.deepEqual(cds.removed_resources, ['gone']);
    resetReads(s1);
    stream.handle({ type_url: CDS, response_nonce: cds.nonce });
    assert.equal(reads(s1), 0);
  });

  test('backpressure: a stream whose write returns false gets nothing more until drain', () => {
    const cache = new SnapshotCache();
    cache.setSnapshot('n', world('v1', { clusters: clusters(3) }));
    const { call, stream } = deltaStream(cache, 'n');
    call.more = false;
    stream.handle({ node: { id: 'n' }, type_url: CDS });
    assert.equal(call.written.length, 1);
    stream.handle({ type_url: EDS });
    stream.handle({ type_url: CDS, response_nonce: call.last().nonce });
    cache.setSnapshot('n', world('v2', { clusters: clusters(4) }));
    assert.equal(call.written.length, 1, 'nothing written while the call waits for drain');
    call.more = true;
    call.emit('drain');
    assert.deepEqual(
      call.written.slice(1).map((x) => [x.msg.type_url, names(x.msg)]),
      [
        [CDS, ['c3']],
        [EDS, ['c0', 'c1', 'c2', 'c3']],
      ],
      'after drain what is owed goes out, in order',
    );
  });

  test('the global gate queues responses while its budget is spent and sends them as bytes complete', () => {
    const cache = new SnapshotCache();
    const gate = new SendGate(1);
    const snap = world('v1', { clusters: clusters(3) });
    cache.setSnapshot('a', snap);
    cache.setSnapshot('b', snap);
    const a = deltaStream(cache, 'a', gate);
    const b = deltaStream(cache, 'b', gate);
    a.call.autoComplete = false;
    b.call.autoComplete = false;
    a.stream.handle({ node: { id: 'a' }, type_url: CDS });
    b.stream.handle({ node: { id: 'b' }, type_url: CDS });
    assert.equal(a.call.written.length, 1, 'one response fits an empty budget, however large');
    assert.equal(b.call.written.length, 0, 'the second waits');
    assert.ok(gate.bytesInFlight() > 1);
    a.call.written[0]?.done();
    assert.equal(b.call.written.length, 1, 'woken when the first completed');
    b.stream.close();
    assert.equal(gate.bytesInFlight(), 0, 'a closed stream returns what it held');
  });

  test('sotw: an ACK and the same map again answer without reading the resources', () => {
    const cache = new SnapshotCache();
    const s1 = counted(world('v1', { clusters: clusters(20) }));
    cache.setSnapshot('n', s1);
    const call = new FakeCall();
    const stream = new SotwStream({ cache, logger }, call as unknown as AdsCall, 'sotw');
    stream.attach('n');
    stream.handle({ node: { id: 'n' }, type_url: CDS, resource_names: [] });
    const cds = call.last();
    assert.equal((cds.resources as unknown[]).length, 20);
    stream.handle({ type_url: EDS, resource_names: [] });
    stream.handle({ type_url: CDS, version_info: 'v1', response_nonce: cds.nonce, resource_names: [] });
    const eds = call.last();
    assert.equal(eds.type_url, EDS);
    resetReads(s1);
    stream.handle({ type_url: EDS, version_info: 'v1', response_nonce: eds.nonce, resource_names: [] });
    assert.equal(reads(s1), 0, 'the ACK did not scan');
    const again = snapshotFromTypes('v1b', s1.resources);
    cache.setSnapshot('other', again);
    resetReads(s1);
    cache.setSnapshot('n', again);
    assert.equal(reads(s1), 0, 'the same maps again: O(1)');
    assert.equal(call.written.length, 2);
    const s2 = counted(world('v2', { clusters: clusters(20, 'c5') }), s1, [CDS]);
    cache.setSnapshot('n', s2);
    assert.equal(call.written.length, 3);
    assert.equal(call.last().type_url, EDS, 'only the changed type is answered');
    assert.equal((call.last().resources as unknown[]).length, 20, 'SotW EDS carries all it subscribes to');
  });
});
