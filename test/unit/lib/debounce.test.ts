import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Debouncer } from '../../../src/lib/debounce.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('a burst fires once after the quiet period', async () => {
  let fired = 0;
  const d = new Debouncer(() => fired++, 40, 1000);
  for (let i = 0; i < 5; i++) {
    d.trigger();
    await sleep(5);
  }
  assert.equal(fired, 0);
  await sleep(80);
  assert.equal(fired, 1);
});

test('a steady trickle still fires by the max delay', async () => {
  let fired = 0;
  const d = new Debouncer(() => fired++, 50, 150);
  const until = Date.now() + 400;
  while (Date.now() < until) {
    d.trigger();
    await sleep(10);
  }
  d.cancel();
  assert.ok(fired >= 2, `fired ${fired} times in 400 ms of triggers every 10 ms`);
});
