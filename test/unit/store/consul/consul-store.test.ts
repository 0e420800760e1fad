import assert from 'node:assert/strict';
import { after, afterEach, beforeEach, describe, test } from 'node:test';
import { isVmeshError } from '../../../../src/lib/errors.js';
import { createLogger } from '../../../../src/lib/logger.js';
import { ConsulStore } from '../../../../src/store/consul/consul-store.js';
import type { StoreOp } from '../../../../src/store/store.js';
import { type FakeConsul, startFakeConsul } from '../../../support/fake-consul.js';

const logger = createLogger({ level: 'silent' });

async function until<T>(what: string, probe: () => T | undefined, ms = 5000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const txnCount = (c: FakeConsul) => c.requests.filter((r) => r.path === '/v1/txn').length;

describe('ConsulStore against the fake Consul', () => {
  let consul: FakeConsul;
  const open: ConsulStore[] = [];
  const store = async (prefix?: string) => {
    const s = await ConsulStore.open({ url: consul.url, waitSeconds: 2, logger, ...(prefix ? { prefix } : {}) });
    open.push(s);
    return s;
  };

  beforeEach(async () => {
    consul = await startFakeConsul({ jitter: false });
  });
  afterEach(async () => {
    for (const s of open.splice(0)) await s.close();
    await consul.stop();
  });
  after(() => {});

  test('keys live under the prefix as JSON; reads, lists and deletes follow the writes at once', async () => {
    const a = await store();
    await a.txn([
      { op: 'put', key: 'hosts/h1', value: { name: 'h1', n: 1 } },
      { op: 'put', key: 'hosts/h2', value: { name: 'h2', n: 2 } },
      { op: 'put', key: 'vips/reviews.default.mesh', value: '240.240.0.1' },
    ]);
    assert.deepEqual(a.get('hosts/h1'), { name: 'h1', n: 1 });
    assert.deepEqual(
      a.list('hosts/').map((e) => e.key),
      ['hosts/h1', 'hosts/h2'],
    );
    assert.equal(consul.kvGet('vmesh/vips/reviews.default.mesh'), '"240.240.0.1"');
    assert.ok(consul.kvGet('vmesh/.store/rev'), 'every write moves the revision key');
    await a.txn([{ op: 'delete', key: 'hosts/h1' }]);
    assert.equal(a.get('hosts/h1'), undefined);
    assert.equal(consul.kvGet('vmesh/hosts/h1'), undefined);
    await assert.rejects(a.txn([{ op: 'put', key: '../escape', value: 1 }]), /invalid key/);
  });

  test('a second store instance sees the first one’s writes and deletes, and is told which keys changed', async () => {
    const a = await store();
    const b = await store();
    const seen: string[][] = [];
    b.onRemoteChange((keys) => seen.push([...keys].sort()));
    await a.txn([
      { op: 'put', key: 'config/VirtualService/default/r', value: { raw: { a: 1 }, resourceVersion: '1' } },
      { op: 'put', key: 'meta/configVersion', value: 1 },
    ]);
    await until('b to see the config', () => b.get('config/VirtualService/default/r'));
    assert.deepEqual(b.get('meta/configVersion'), 1);
    assert.deepEqual(seen.at(-1), ['config/VirtualService/default/r', 'meta/configVersion']);
    await a.txn([{ op: 'delete', key: 'config/VirtualService/default/r' }]);
    await until('b to see the delete', () => (b.get('config/VirtualService/default/r') === undefined ? true : undefined));
    assert.deepEqual(seen.at(-1), ['config/VirtualService/default/r']);
    // Its own writes are not announced as remote changes.
    const before = seen.length;
    await b.txn([{ op: 'put', key: 'tokens/x', value: { host: 'h' } }]);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(seen.length, before);
    await until('a to see b’s token', () => a.get('tokens/x'));
    // A store on another prefix shares nothing.
    const other = await store('other/');
    assert.equal(other.get('tokens/x'), undefined);
  });

  test('a read-modify-write overtaken by another controller is rolled back by Consul and computed again (no lost update)', async () => {
    const a = await store();
    const b = await store();
    await a.txn([{ op: 'put', key: 'meta/counter', value: 0 }]);
    await until('b to see the counter', () => (b.get('meta/counter') === 0 ? true : undefined));
    const increment = (s: Pick<ConsulStore, 'get'>): StoreOp[] => [
      { op: 'put', key: 'meta/counter', value: Number(s.get('meta/counter')) + 1 },
    ];
    let runs = 0;
    // B's increment lands between A computing its transaction and Consul applying it.
    consul.interceptTxn(() => b.txn(increment));
    const txnsBefore = txnCount(consul);
    await a.txn((s) => {
      runs++;
      return increment(s);
    });
    assert.equal(runs, 2, 'A computed its transaction again after the conflict');
    assert.equal(a.get('meta/counter'), 2);
    assert.equal(consul.kvGet('vmesh/meta/counter'), '2');
    assert.equal(txnCount(consul) - txnsBefore, 3, 'A rolled back, B applied, A applied');
    await until('b to converge', () => (b.get('meta/counter') === 2 ? true : undefined));
  });

  test('concurrent read-modify-writes from two controllers all count', async () => {
    const a = await store();
    const b = await store();
    const inc = (s: Pick<ConsulStore, 'get'>): StoreOp[] => [{ op: 'put', key: 'meta/n', value: Number(s.get('meta/n') ?? 0) + 1 }];
    await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).txn(inc)));
    assert.equal(consul.kvGet('vmesh/meta/n'), '10');
  });

  test('a batch is all or nothing: a refused value or a throwing function writes none of it', async () => {
    const a = await store();
    const big = 'x'.repeat(600 * 1024);
    await assert.rejects(
      a.txn([
        { op: 'put', key: 'config/a', value: 1 },
        { op: 'put', key: 'config/b', value: big },
      ]),
      (e: unknown) => isVmeshError(e),
    );
    assert.deepEqual(consul.kvKeys('vmesh/config/'), []);
    assert.equal(a.get('config/a'), undefined);
    await assert.rejects(
      a.txn(() => {
        throw new Error('refused');
      }),
      /refused/,
    );
    assert.deepEqual(consul.kvKeys('vmesh/config/'), []);
  });

  test('a batch larger than one Consul transaction is atomic for readers and written out in full', async () => {
    const a = await store();
    const b = await store();
    const n = 150;
    const views: number[] = [];
    b.onRemoteChange(() => views.push(b.list('vips/').length));
    await a.txn(
      Array.from({ length: n }, (_, i) => ({ op: 'put' as const, key: `vips/s${String(i).padStart(3, '0')}`, value: `240.240.0.${i}` })),
    );
    assert.equal(a.list('vips/').length, n);
    assert.equal(consul.kvKeys('vmesh/vips/').length, n, 'written out');
    assert.doesNotMatch(consul.kvGet('vmesh/.store/rev') ?? '', /pending/, 'the intent is cleared');
    assert.ok(consul.requests.filter((r) => r.path === '/v1/txn').length >= 4, 'intent, three chunks, clear');
    await until('b to see the batch', () => (b.list('vips/').length === n ? true : undefined));
    assert.ok(
      views.every((v) => v === 0 || v === n),
      `b only ever saw none or all of the batch: ${views.join(',')}`,
    );
  });

  test('a batch committed but not written out (writer died) is visible at once and finished by the next writer', async () => {
    const pending = [
      { op: 'put', key: 'hosts/h9', value: { name: 'h9' } },
      { op: 'delete', key: 'hosts/h1' },
    ];
    consul.kvPut('vmesh/hosts/h1', '{"name":"h1"}');
    consul.kvPut('vmesh/.store/rev', JSON.stringify({ seq: 7, pending }));
    const b = await store();
    assert.deepEqual(b.get('hosts/h9'), { name: 'h9' });
    assert.equal(b.get('hosts/h1'), undefined);
    await b.txn([{ op: 'put', key: 'tokens/t', value: 1 }]);
    assert.equal(consul.kvGet('vmesh/hosts/h9'), '{"name":"h9"}');
    assert.equal(consul.kvGet('vmesh/hosts/h1'), undefined);
    assert.equal(JSON.parse(consul.kvGet('vmesh/.store/rev') ?? '{}').seq, 8);
  });

  test('a refusal is checked against a fresh read: a token made on another controller is usable at once', async () => {
    const a = await store();
    const b = await store();
    consul.setWatchDelay(1500);
    await a.txn([{ op: 'put', key: 'tokens/abc', value: { usedAt: null } }]);
    assert.equal(b.get('tokens/abc'), undefined, 'b’s watch lags');
    await b.txn((s) => {
      const t = s.get('tokens/abc') as { usedAt: string | null } | undefined;
      if (!t) throw new Error('unknown token');
      return [{ op: 'put', key: 'tokens/abc', value: { usedAt: 'now' } }];
    });
    assert.equal(consul.kvGet('vmesh/tokens/abc'), '{"usedAt":"now"}');
    // A refusal that a fresh read confirms stands.
    await assert.rejects(
      b.txn((s) => {
        if (!s.get('tokens/none')) throw new Error('unknown token');
        return [];
      }),
      /unknown token/,
    );
  });

  test('a decision to write nothing stands only on a current read: taken on a lagging mirror, it is made again', async () => {
    const a = await store();
    const b = await store();
    await a.txn([{ op: 'put', key: 'tokens/t', value: 1 }]);
    await until('b to see tokens/t', () => b.get('tokens/t'));
    consul.setWatchDelay(1500);
    await a.txn([{ op: 'delete', key: 'tokens/t' }]);
    assert.equal(b.get('tokens/t'), 1, 'b’s watch lags');
    // "Already there, nothing to do" on b's mirror would acknowledge a write that never happened.
    const seen: unknown[] = [];
    await b.txn((s) => {
      seen.push(s.get('tokens/t'));
      return s.get('tokens/t') === 1 ? [] : [{ op: 'put', key: 'tokens/t', value: 1 }];
    });
    assert.deepEqual(seen, [1, undefined]);
    assert.equal(consul.kvGet('vmesh/tokens/t'), '1');
  });

  test('refusals in quick succession are each checked against the state after them', async () => {
    const a = await store();
    const b = await store();
    consul.setWatchDelay(1500);
    const need = (key: string) => (s: { get(k: string): unknown }) => {
      if (s.get(key) === undefined) throw new Error(`no ${key}`);
      return [{ op: 'delete' as const, key }];
    };
    await assert.rejects(b.txn(need('tokens/x')), /no tokens\/x/);
    // Made right after that refusal's check, and used at once on b: no earlier check may stand for this one.
    await a.txn([{ op: 'put', key: 'tokens/x', value: 1 }]);
    await b.txn(need('tokens/x'));
    assert.equal(consul.kvGet('vmesh/tokens/x'), undefined);
  });

  test('with Consul down reads keep serving the last state and writes fail; it catches up when Consul is back', async () => {
    const a = await store();
    const b = await store();
    await a.txn([{ op: 'put', key: 'hosts/h1', value: 1 }]);
    await until('b', () => b.get('hosts/h1'));
    await consul.pause();
    assert.equal(b.get('hosts/h1'), 1);
    await assert.rejects(a.txn([{ op: 'put', key: 'hosts/h2', value: 2 }]), /VMESH_ERR|consul/i);
    // A function that decides to write nothing is a read: it stands on the last state read (a model build's VIP
    // sync must not fail while Consul is away).
    let seen: unknown;
    await b.txn((s) => {
      seen = s.get('hosts/h1');
      return [];
    });
    assert.equal(seen, 1);
    await consul.resume();
    consul.kvPut('vmesh/hosts/h3', '3');
    await until('b to catch up', () => b.get('hosts/h3'), 20_000);
    await a.txn([{ op: 'put', key: 'hosts/h2', value: 2 }]);
    await until('b to see h2', () => b.get('hosts/h2'), 5000);
  });

  test('after a Consul restore (the index goes back) the store follows the restored state and later writes', async () => {
    const a = await store();
    const b = await store();
    await a.txn([{ op: 'put', key: 'hosts/h1', value: 1 }]);
    await until('b', () => b.get('hosts/h1'));
    consul.resetIndex(1);
    await a.txn([{ op: 'put', key: 'hosts/h2', value: 2 }]);
    await until('b to see h2 after the restore', () => b.get('hosts/h2'), 10_000);
  });

  test('a prefix wiped by hand (revision key gone) is taken as it is, and writes go on', async () => {
    const a = await store();
    await a.txn([{ op: 'put', key: 'hosts/h1', value: 1 }]);
    for (const k of consul.kvKeys('vmesh/')) consul.kvDelete(k);
    await a.txn([{ op: 'put', key: 'hosts/h2', value: 2 }]);
    assert.equal(a.get('hosts/h1'), undefined);
    assert.equal(a.get('hosts/h2'), 2);
    assert.equal(consul.kvGet('vmesh/hosts/h2'), '2');
  });

  test('opening fails with a clear error when Consul does not answer', async () => {
    await consul.pause();
    await assert.rejects(ConsulStore.open({ url: consul.url, logger }), /store: cannot read vmesh\/ from Consul/);
    await assert.rejects(ConsulStore.open({ url: consul.url, logger, prefix: 'no-slash' }), /want a KV path ending in/);
  });
});
