import assert from 'node:assert/strict';
import { test } from 'node:test';
import { backoffDelay, sleep } from '../../../src/lib/backoff.js';

test('backoffDelay: the cap doubles per attempt from baseMs and stops at maxMs', () => {
  const half = () => 0.5;
  const caps = [0, 1, 2, 3, 4, 5, 6].map((a) => backoffDelay(a, { baseMs: 100, maxMs: 1000, random: half }));
  assert.deepEqual(caps, [50, 100, 200, 400, 500, 500, 500]);
});

test('backoffDelay: full jitter spans [0, cap) and never leaves it', () => {
  assert.equal(backoffDelay(3, { baseMs: 100, maxMs: 10_000, random: () => 0 }), 0);
  assert.ok(backoffDelay(3, { baseMs: 100, maxMs: 10_000, random: () => 0.999999 }) < 800);
  assert.ok(backoffDelay(3, { baseMs: 100, maxMs: 10_000, random: () => 0.999999 }) >= 799);
  for (let i = 0; i < 500; i++) {
    const attempt = i % 60;
    const d = backoffDelay(attempt, { baseMs: 50, maxMs: 2000 });
    assert.ok(d >= 0 && d < Math.min(2000, 50 * 2 ** attempt), `attempt ${attempt}: ${d}`);
    assert.ok(Number.isInteger(d));
  }
});

test('backoffDelay: hostile inputs give a bounded, finite delay', () => {
  const one = () => 1;
  assert.ok(backoffDelay(1e9, { baseMs: 100, maxMs: 5000, random: one }) < 5000);
  assert.ok(backoffDelay(Number.POSITIVE_INFINITY, { baseMs: 100, maxMs: 5000, random: one }) < 5000);
  assert.ok(backoffDelay(Number.POSITIVE_INFINITY, { baseMs: 100, maxMs: 5000, random: one }) > 4000);
  assert.equal(backoffDelay(Number.NaN, { baseMs: 100, maxMs: 5000, random: () => 0.5 }), 50);
  assert.equal(backoffDelay(-3, { baseMs: 100, maxMs: 5000, random: () => 0.5 }), 50);
  assert.equal(backoffDelay(2, { baseMs: 100, maxMs: 5000, random: () => Number.NaN }), 0);
  assert.equal(backoffDelay(2, { baseMs: 100, maxMs: 5000, random: () => -4 }), 0);
  // Bad options fall back to the defaults (100 ms base, 30 s max).
  assert.equal(backoffDelay(0, { baseMs: Number.NaN, maxMs: -1, random: () => 0.5 }), 50);
  assert.ok(backoffDelay(100, { random: () => 0.999 }) <= 30_000);
});

test('sleep waits, and an abort ends it early without throwing', async () => {
  let t0 = performance.now();
  assert.equal(await sleep(40), true);
  assert.ok(performance.now() - t0 >= 35);

  const ac = new AbortController();
  t0 = performance.now();
  setTimeout(() => ac.abort(), 20);
  assert.equal(await sleep(5000, ac.signal), false);
  assert.ok(performance.now() - t0 < 1000);

  assert.equal(await sleep(5000, ac.signal), false); // already aborted: returns at once
  assert.equal(await sleep(Number.NaN), true);
});
