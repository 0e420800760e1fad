// Writes numbered transactions to a FileStore as fast as it can until killed, several at a time (so they share
// journal writes), printing each number once its transaction is acknowledged. Each transaction puts `counter`
// and a large blob tagged with the same number, so a torn or half-applied write would show as a mismatch.
import { FileStore } from '../../src/store/file/file-store.js';

const dir = process.argv[2] ?? '';
const store = await FileStore.open(dir);
const start = Number(store.get('counter') ?? 0);
const blob = 'x'.repeat(50_000);
let next = start + 1;
process.stdout.write('writing\n');
const writer = async () => {
  while (next < start + 100_000) {
    const i = next++;
    await store.txn((r) => [
      { op: 'put', key: 'counter', value: Math.max(i, Number(r.get('counter') ?? 0)) },
      { op: 'put', key: 'blob', value: `${Math.max(i, Number(r.get('counter') ?? 0))}:${blob}` },
      { op: 'put', key: `small/${i % 500}`, value: i },
    ]);
    process.stdout.write(`${i}\n`);
  }
};
await Promise.all([writer(), writer(), writer(), writer()]);
