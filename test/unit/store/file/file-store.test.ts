import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { appendFileSync, mkdtempSync, readdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { FileStore } from '../../../../src/store/file/file-store.js';

const WRITER = join(import.meta.dirname, '..', '..', '..', 'support', 'store-writer.ts');
const tmp = () => mkdtempSync(join(tmpdir(), 'vmesh-store-'));

describe('FileStore', () => {
  test('puts, deletes, lists by prefix in key order, and survives reopening', async () => {
    const dir = tmp();
    const s = await FileStore.open(dir);
    await s.txn([
      { op: 'put', key: 'hosts/b', value: { n: 2 } },
      { op: 'put', key: 'hosts/a', value: { n: 1 } },
      { op: 'put', key: 'tokens/x', value: 'y' },
    ]);
    await s.txn([{ op: 'delete', key: 'tokens/x' }]);
    assert.deepEqual(
      s.list('hosts/').map((e) => e.key),
      ['hosts/a', 'hosts/b'],
    );
    await s.close();
    const again = await FileStore.open(dir);
    assert.deepEqual(again.get('hosts/b'), { n: 2 });
    assert.equal(again.get('tokens/x'), undefined);
    assert.equal(statSync(join(dir, 'state.json')).mode & 0o777, 0o600);
    assert.equal(statSync(join(dir, 'state.journal')).mode & 0o777, 0o600);
    await again.close();
  });

  test('a transaction whose function throws changes nothing', async () => {
    const s = await FileStore.open(tmp());
    await s.txn([{ op: 'put', key: 'k', value: 1 }]);
    await assert.rejects(
      s.txn((r) => {
        if (r.get('k') === 1) throw new Error('abort');
        return [{ op: 'put', key: 'k', value: 2 }];
      }),
      /abort/,
    );
    assert.equal(s.get('k'), 1);
    await s.close();
  });

  test('read-modify-write transactions do not interleave', async () => {
    const s = await FileStore.open(tmp());
    await s.txn([{ op: 'put', key: 'n', value: 0 }]);
    await Promise.all(Array.from({ length: 20 }, () => s.txn((r) => [{ op: 'put', key: 'n', value: Number(r.get('n')) + 1 }])));
    assert.equal(s.get('n'), 20);
    await s.close();
  });

  test('kill -9 mid-write loses no acknowledged transaction and leaves none half-applied', async () => {
    const dir = tmp();
    let last = 0;
    for (let round = 0; round < 6; round++) {
      const child = spawn(process.execPath, ['--import', 'tsx', WRITER, dir], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let out = '';
      child.stdout.setEncoding('utf8');
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (d: string) => {
          out += d;
          if (out.includes('writing\n')) resolve();
        });
        child.once('exit', (c) => reject(new Error(`writer exited early (${c})`)));
      });
      // Let it get writes in (and compactions: each record is ~50 KB), then kill it at an arbitrary point.
      await new Promise((r) => setTimeout(r, 100 + Math.floor(Math.random() * 400)));
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
      const acked = Math.max(
        0,
        ...out
          .split('\n')
          .filter((l) => /^\d+$/.test(l))
          .map(Number),
      );
      const s = await FileStore.open(dir);
      const counter = Number(s.get('counter'));
      const blob = String(s.get('blob'));
      assert.ok(counter >= acked, `transaction ${acked} was acknowledged but the state has only ${counter}`);
      assert.ok(counter >= last, `counter went backwards: ${counter} < ${last}`);
      assert.equal(blob.split(':')[0], String(counter), 'blob and counter come from the same transaction');
      assert.equal(blob.length, String(counter).length + 1 + 50_000);
      for (const { value } of s.list('small/')) assert.ok(Number(value) <= counter, 'a later transaction is half there');
      last = counter;
      await s.close();
    }
    assert.ok(last > 10, `the writer made progress (${last})`);
    assert.deepEqual(
      readdirSync(dir).filter((f) => f.endsWith('.tmp')),
      [],
      'leftover temporary files are cleaned on open',
    );
  });

  test('a write costs what it changes: the journal grows by the record, not by the state', async () => {
    const dir = tmp();
    const s = await FileStore.open(dir);
    const big = 'y'.repeat(1000);
    await s.txn(Array.from({ length: 800 }, (_, i) => ({ op: 'put' as const, key: `hosts/h${i}`, value: big })));
    const before = await s.sizes();
    for (let i = 0; i < 50; i++)
      await s.txn([{ op: 'put', key: 'hosts/h1/lastSeen', value: `2026-12-07T00:00:${String(i).padStart(2, '0')}Z` }]);
    const after = await s.sizes();
    assert.ok(before.journalBytes > 800_000, `the first batch is journalled (${before.journalBytes} bytes)`);
    const perWrite = (after.journalBytes - before.journalBytes) / 50;
    assert.ok(perWrite < 200, `each small write appends ${perWrite} bytes (state is ~800 KB)`);
    assert.equal(after.snapshotBytes, before.snapshotBytes, 'no snapshot rewrite for small writes');
    // Past the journal's threshold the journal folds into the snapshot and empties.
    await s.txn([{ op: 'put', key: 'blob', value: 'z'.repeat(1_200_000) }]);
    await s.close(); // compaction follows the commit: close waits for it
    const compacted = await s.sizes();
    assert.equal(compacted.journalBytes, 0, 'journal emptied after compaction');
    assert.ok(compacted.snapshotBytes > 2_000_000);
    const again = await FileStore.open(dir);
    assert.equal(again.get('hosts/h1/lastSeen'), '2026-12-07T00:00:49Z');
    assert.equal(String(again.get('blob')).length, 1_200_000);
    assert.equal(again.list('hosts/').length, 801);
    await again.close();
  });

  test('concurrent transactions share journal writes and each sees the ones before it', async () => {
    const dir = tmp();
    const s = await FileStore.open(dir);
    await s.txn([{ op: 'put', key: 'n', value: 0 }]);
    await Promise.all(
      Array.from({ length: 300 }, (_, i) =>
        s.txn((r) => [
          { op: 'put', key: 'n', value: Number(r.get('n')) + 1 },
          { op: 'put', key: `items/${String(i).padStart(3, '0')}`, value: r.list('items/').length },
        ]),
      ),
    );
    assert.equal(s.get('n'), 300);
    // Each transaction saw exactly the items before it: the values are 0..299 in some order.
    assert.deepEqual(
      s
        .list('items/')
        .map((e) => Number(e.value))
        .sort((a, b) => a - b),
      Array.from({ length: 300 }, (_, i) => i),
    );
    await s.close();
    const lines = readFileSync(join(dir, 'state.journal'), 'utf8').trim().split('\n');
    assert.equal(lines.length, 301, 'one record per transaction');
    const again = await FileStore.open(dir);
    assert.equal(again.get('n'), 300);
    await again.close();
  });

  test('a torn last record (crash before its newline) is dropped; damage before it is refused', async () => {
    const dir = tmp();
    const s = await FileStore.open(dir);
    await s.txn([{ op: 'put', key: 'a', value: 1 }]);
    await s.txn([{ op: 'put', key: 'b', value: 2 }]);
    await s.close();
    const journal = join(dir, 'state.journal');
    const whole = readFileSync(journal, 'utf8');
    appendFileSync(journal, '{"seq":3,"ops":[{"op":"put","key":"c","va');
    const torn = await FileStore.open(dir);
    assert.equal(torn.get('b'), 2);
    assert.equal(torn.get('c'), undefined);
    await torn.txn([{ op: 'put', key: 'd', value: 4 }]);
    await torn.close();
    const reopened = await FileStore.open(dir);
    assert.equal(reopened.get('d'), 4, 'a record after a dropped torn one is read');
    await reopened.close();
    writeFileSync(journal, `garbage\n${whole}`);
    await assert.rejects(FileStore.open(dir), { code: 'VMESH_ERR_STORE', message: /state\.journal: record 1 is damaged/ });
  });

  test('a state.json from before the journal (format 1) is read, and a journal without its snapshot refused', async () => {
    const dir = tmp();
    writeFileSync(join(dir, 'state.json'), JSON.stringify({ format: 1, data: { k: 'v' } }), { mode: 0o600 });
    const s = await FileStore.open(dir);
    assert.equal(s.get('k'), 'v');
    await s.txn([{ op: 'put', key: 'k2', value: 'v2' }]);
    await s.close();
    const again = await FileStore.open(dir);
    assert.deepEqual([again.get('k'), again.get('k2')], ['v', 'v2']);
    await again.close();
    unlinkSync(join(dir, 'state.json'));
    await assert.rejects(FileStore.open(dir), { code: 'VMESH_ERR_STORE', message: /state\.json is not: the snapshot was lost/ });
  });
});
