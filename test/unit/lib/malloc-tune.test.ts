import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { loadNative, tuneMalloc } from '../../../src/lib/native.js';

const run = promisify(execFile);

test('the native addon sets fixed glibc malloc thresholds, and refuses nonsense', () => {
  const r = tuneMalloc();
  assert.ok(r.ok, r.ok ? '' : r.error.message);
  assert.throws(() => loadNative().mallocTune(0, 1), /thresholds must be positive/);
  assert.throws(() => (loadNative().mallocTune as unknown as (a: string) => boolean)('x'), /mallocTune\(mmapThreshold, trimThreshold\)/);
});

// The pattern that fragmented the controller's heap: large buffers freed while smaller ones allocated between
// them stay alive, after one large free has raised glibc's adaptive mmap threshold. Run in fresh processes, so
// one has the tuning and one has glibc's defaults.
const PATTERN = `
import { tuneMalloc } from ${JSON.stringify(new URL('../../../src/lib/native.ts', import.meta.url).href)};
if (process.argv.includes('tune') && !tuneMalloc().ok) throw new Error('tuning refused');
const rss = () => process.memoryUsage.rss();
{ let b = Buffer.alloc(1024 * 1024, 1); b = null; globalThis.gc(); }
const keep = [];
let big = [];
const before = rss();
for (let i = 0; i < 128; i++) { big.push(Buffer.alloc(512 * 1024, 1)); keep.push(Buffer.alloc(64 * 1024, 2)); }
big = null;
globalThis.gc();
await new Promise((r) => setTimeout(r, 100));
globalThis.gc();
console.log(JSON.stringify({ retained: rss() - before, kept: keep.length }));
`;

async function retainedMiB(tune: boolean): Promise<number> {
  const args = ['--expose-gc', '--import', 'tsx', '--input-type=module', '-e', PATTERN, ...(tune ? ['tune'] : [])];
  const { stdout } = await run(process.execPath, args, { timeout: 30_000 });
  return (JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as { retained: number }).retained / 2 ** 20;
}

test('64 MiB of large buffers freed between live small ones: given back with the tuning, kept without', async () => {
  const tuned = await retainedMiB(true);
  const untuned = await retainedMiB(false);
  assert.ok(tuned < 24, `tuned process kept ${tuned.toFixed(1)} MiB`);
  assert.ok(untuned > tuned + 32, `glibc defaults kept ${untuned.toFixed(1)} MiB, tuned ${tuned.toFixed(1)} MiB`);
});
