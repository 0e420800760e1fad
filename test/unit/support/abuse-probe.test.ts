import assert from 'node:assert/strict';
import { test } from 'node:test';
import { eventLoopProbe } from '../../support/abuse.js';

const tick = () => new Promise((r) => setTimeout(r, 30));

test('the loop probe counts a block the process spends computing', async () => {
  const probe = eventLoopProbe();
  await tick();
  const until = performance.now() + 300;
  while (performance.now() < until) {
    // a synchronous computation holding the loop, as a quadratic parse would
  }
  await tick();
  const loop = probe.stop();
  assert.ok(loop.maxMs >= 200, `a 300 ms busy block measured ${loop.maxMs} ms`);
});

test('the loop probe does not charge the process for a stall it spent without the CPU', async () => {
  const probe = eventLoopProbe();
  await tick();
  // Sleeping the thread stands in for a machine that gave this process no CPU for 300 ms.
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300);
  await tick();
  const loop = probe.stop();
  assert.ok(loop.rawMaxMs >= 250, `the stall shows as lateness (${loop.rawMaxMs} ms)`);
  assert.ok(loop.maxMs < 100, `but not as a block of its own (${loop.maxMs} ms)`);
});
