// Writes numbered transactions to a FileStore as fast as it can until killed; each transaction puts
// `counter` and a large blob tagged with the same number, so a torn write would show as a mismatch.
import { FileStore } from '../../src/lib/store.js';

const dir = process.argv[2] ?? '';
const store = await FileStore.open(dir);
const start = Number(store.get('counter') ?? 0);
const blob = 'x'.repeat(200_000);
for (let i = start + 1; i < start + 100_000; i++) {
  await store.txn([
    { op: 'put', key: 'counter', value: i },
    { op: 'put', key: 'blob', value: `${i}:${blob}` },
  ]);
  if (i === start + 1) process.stdout.write('writing\n');
}
