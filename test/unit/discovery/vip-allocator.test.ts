import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { VipAllocator } from '../../../src/discovery/vip-allocator.js';
import { FileStore } from '../../../src/store/file/file-store.js';

test('VIPs are allocated from 240.240.0.0/16, kept across restarts, freed and reused', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vmesh-vip-'));
  let store = await FileStore.open(dir);
  let vips = new VipAllocator(store);
  const first = await vips.sync(['reviews.default.mesh', 'ratings.default.mesh']);
  assert.equal(first.get('ratings.default.mesh'), '240.240.0.1');
  assert.equal(first.get('reviews.default.mesh'), '240.240.0.2');
  await store.close();

  store = await FileStore.open(dir);
  vips = new VipAllocator(store);
  const again = await vips.sync(['reviews.default.mesh', 'details.default.mesh', 'ratings.default.mesh']);
  assert.equal(again.get('reviews.default.mesh'), '240.240.0.2', 'stable across restart');
  assert.equal(again.get('ratings.default.mesh'), '240.240.0.1');
  assert.equal(again.get('details.default.mesh'), '240.240.0.3');

  const shrunk = await vips.sync(['details.default.mesh', 'reviews.default.mesh']);
  assert.equal(shrunk.has('ratings.default.mesh'), false);
  const grown = await vips.sync(['details.default.mesh', 'reviews.default.mesh', 'productpage.default.mesh']);
  assert.equal(grown.get('productpage.default.mesh'), '240.240.0.1', 'a freed address is reused');
  for (const ip of grown.values()) assert.match(ip, /^240\.240\.\d+\.\d+$/);
  await store.close();
});

test('allocation crosses octet boundaries correctly', async () => {
  const store = await FileStore.open(mkdtempSync(join(tmpdir(), 'vmesh-vip-')));
  const vips = new VipAllocator(store);
  const names = Array.from({ length: 300 }, (_, i) => `s${String(i).padStart(3, '0')}.default.mesh`);
  const all = await vips.sync(names);
  assert.equal(new Set(all.values()).size, 300);
  assert.equal(all.get('s299.default.mesh'), '240.240.1.44');
  await store.close();
});
