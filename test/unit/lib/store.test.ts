import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { FileStore } from '../../../src/lib/store.js';

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
  });

  test('read-modify-write transactions do not interleave', async () => {
    const s = await FileStore.open(tmp());
    await s.txn([{ op: 'put', key: 'n', value: 0 }]);
    await Promise.all(Array.from({ length: 20 }, () => s.txn((r) => [{ op: 'put', key: 'n', value: Number(r.get('n')) + 1 }])));
    assert.equal(s.get('n'), 20);
  });

  test('kill -9 mid-write leaves a whole state, never a torn one', async () => {
    const dir = tmp();
    let last = 0;
    for (let round = 0; round < 5; round++) {
      const child = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, '..', '..', 'support', 'store-writer.ts'), dir], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      await new Promise<void>((resolve, reject) => {
        child.stdout.once('data', () => resolve());
        child.once('exit', (c) => reject(new Error(`writer exited early (${c})`)));
      });
      // Let it get a few writes in, then kill it at an arbitrary point.
      await new Promise((r) => setTimeout(r, 50 + Math.floor(Math.random() * 150)));
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
      const s = await FileStore.open(dir);
      const counter = Number(s.get('counter'));
      const blob = String(s.get('blob'));
      assert.ok(counter >= last, `counter went backwards: ${counter} < ${last}`);
      assert.equal(blob.split(':')[0], String(counter), 'blob and counter come from the same transaction');
      assert.equal(blob.length, String(counter).length + 1 + 200_000);
      last = counter;
      await s.close();
    }
    assert.ok(last > 1, 'the writer made progress');
    assert.deepEqual(
      readdirSync(dir).filter((f) => f.endsWith('.tmp')),
      [],
      'leftover temporary files are cleaned on open',
    );
  });
});
