import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { loadControllerConfig } from '../../../src/config/controller.js';
import { startController } from '../../../src/controller/controller.js';
import { writeFileAtomic } from '../../../src/lib/atomic-file.js';
import { createLogger } from '../../../src/lib/logger.js';
import { FileStore } from '../../../src/store/file/file-store.js';

/*
 * The controller refuses to start on a data dir that lost its state or that others could tamper with, and a
 * full disk is reported as such (issue 15, item 6).
 */

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
const newDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'vmesh-state-safety-'));
  dirs.push(d);
  return d;
};

async function start(dataDir: string, extra: Record<string, unknown> = {}) {
  const cfg = loadControllerConfig({
    flags: { dataDir, listen: '127.0.0.1', grpcPort: '0', apiPort: '0', ...extra },
    env: {},
    file: {},
  });
  return startController(cfg, createLogger({ level: 'silent' }));
}

describe('data dir safety', () => {
  test('a first start writes state.json; a restart with it missing is refused unless --fresh-state', async () => {
    const dir = newDir();
    await (await start(dir)).stop();
    assert.deepEqual(JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')), { format: 2, seq: 0, data: {} });
    await (await start(dir)).stop();
    unlinkSync(join(dir, 'state.json'));
    await assert.rejects(start(dir), {
      code: 'VMESH_ERR_STORE',
      message: /state\.json is missing but .*state\.journal is there from an earlier run: .*--fresh-state/,
    });
    await (await start(dir, { freshState: true })).stop();
    assert.ok(
      readdirSync(dir).some((f) => f.startsWith('state.journal.without-snapshot-')),
      'the old journal is kept aside, not deleted',
    );
  });

  test('a state.json whose data is null (or not an object) is refused, not read as empty', async () => {
    const dir = newDir();
    await (await start(dir)).stop();
    for (const data of ['null', '[]', '"x"']) {
      writeFileSync(join(dir, 'state.json'), `{"format":1,"data":${data}}`, { mode: 0o600 });
      await assert.rejects(start(dir), { code: 'VMESH_ERR_STORE', message: /"data" is .*not the state object: the file is damaged/ });
    }
  });

  test('a data dir others may write, or a key others may read, is refused naming the path and the fix', async () => {
    const dir = newDir();
    await (await start(dir)).stop();
    chmodSync(dir, 0o777);
    await assert.rejects(start(dir), {
      code: 'VMESH_ERR_INVALID_CONFIG',
      message: new RegExp(`^${dir} has mode 0777: .*chmod go-w ${dir}$`),
    });
    chmodSync(dir, 0o700);
    const key = join(dir, 'ca', 'ca-key.pem');
    chmodSync(key, 0o644);
    await assert.rejects(start(dir), {
      code: 'VMESH_ERR_INVALID_CONFIG',
      message: new RegExp(`^${key} has mode 0644: .*chmod 0600 ${key}$`),
    });
    chmodSync(key, 0o600);
    chmodSync(join(dir, 'admin-token'), 0o640);
    await assert.rejects(start(dir), { code: 'VMESH_ERR_INVALID_CONFIG', message: /admin-token has mode 0640/ });
    chmodSync(join(dir, 'admin-token'), 0o600);
    await (await start(dir)).stop();
  });

  test('a full disk is VMESH_ERR_NO_SPACE, and the previous state stands', async () => {
    if (process.getuid?.() !== 0) throw new Error('this test mounts a 1 MiB tmpfs: run it as root');
    const dir = newDir();
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m,mode=0700', 'tmpfs', dir]);
    try {
      const store = await FileStore.open(dir);
      await store.txn([{ op: 'put', key: 'a', value: 'small' }]);
      await assert.rejects(store.txn([{ op: 'put', key: 'b', value: 'x'.repeat(2 * 1024 * 1024) }]), {
        code: 'VMESH_ERR_NO_SPACE',
        message: /no space left for .*state\.journal \(ENOSPC\): nothing was written/,
      });
      assert.equal(store.get('b'), undefined);
      // The failed record was cut off again: the store keeps working once there is room, and reads back whole.
      await store.txn([{ op: 'put', key: 'c', value: 'after' }]);
      await store.close();
      const again = await FileStore.open(dir);
      assert.deepEqual([again.get('a'), again.get('b'), again.get('c')], ['small', undefined, 'after']);
      await again.close();
      await assert.rejects(writeFileAtomic(join(dir, 'f'), Buffer.alloc(2 * 1024 * 1024)), { code: 'VMESH_ERR_NO_SPACE' });
    } finally {
      execFileSync('umount', [dir]);
    }
  });
});
