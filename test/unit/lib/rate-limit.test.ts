import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KeyedRateLimiter, takeOrRefuse } from '../../../src/lib/rate-limit.js';

test('a key gets its burst at once, then the sustained rate; other keys are not affected', () => {
  let now = 0;
  const l = new KeyedRateLimiter({ perSecond: 2, burst: 3 }, () => now);
  assert.deepEqual([l.take('a'), l.take('a'), l.take('a')], [{ ok: true }, { ok: true }, { ok: true }]);
  assert.deepEqual(l.take('a'), { ok: false, retryAfterMs: 500 });
  assert.deepEqual(l.take('b'), { ok: true }, 'another key has its own bucket');
  now = 499;
  assert.equal(l.take('a').ok, false);
  now = 1000;
  assert.equal(l.take('a').ok, true);
  now = 60_000;
  assert.equal([1, 2, 3, 4].map(() => l.take('a').ok).filter(Boolean).length, 3, 'the bucket refills only up to the burst');
});

test('keys are bounded: the least recently used bucket is dropped', () => {
  const l = new KeyedRateLimiter({ perSecond: 1, burst: 1 }, () => 0, 2);
  l.take('a');
  l.take('b');
  l.take('a');
  l.take('c'); // drops b, the least recently used
  assert.equal(l.take('a').ok, false, 'a is still tracked');
  assert.equal(l.take('b').ok, true, 'b starts again full');
});

test('takeOrRefuse throws VMESH_ERR_RATE_LIMITED naming the caller, the limit and when to retry', () => {
  const l = new KeyedRateLimiter({ perSecond: 0.1, burst: 1 }, () => 0);
  takeOrRefuse(l, 'h1', 'Renew for host "h1"');
  assert.throws(() => takeOrRefuse(l, 'h1', 'Renew for host "h1"'), {
    code: 'VMESH_ERR_RATE_LIMITED',
    message: 'Renew for host "h1": over its rate limit (0.1/s, burst 1); retry in 10000 ms',
  });
});
