import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ConsulQueryResult } from '../../../../src/lib/consul/consul-client.js';
import { nextIndex, runBlockingLoop } from '../../../../src/lib/consul/consul-loop.js';
import { ErrorCode, type VmeshError } from '../../../../src/lib/errors.js';

test('nextIndex follows the blocking-query rules: backwards resets to 0, below 1 becomes 1', () => {
  assert.equal(nextIndex(0, 42), 42);
  assert.equal(nextIndex(42, 42), 42); // wait elapsed, nothing changed
  assert.equal(nextIndex(42, 50), 50);
  assert.equal(nextIndex(42, 7), 0);
  assert.equal(nextIndex(0, 0), 1);
  assert.equal(nextIndex(1, 0), 0);
});

function reply(index: number, body: unknown = {}): ConsulQueryResult {
  return { body, index, knownLeader: true, lastContactMs: 0 };
}

test('the loop sends the right index after each answer, rate-limits itself and survives errors and bad bodies', async () => {
  const ac = new AbortController();
  const script: Array<number | 'fail' | 'bad'> = [10, 12, 5, 0, 'fail', 7, 'bad', 9];
  const sent: number[] = [];
  const starts: number[] = [];
  const results: number[] = [];
  const errors: VmeshError[] = [];
  await runBlockingLoop({
    signal: ac.signal,
    backoff: { baseMs: 1, maxMs: 2 },
    minIntervalMs: 30,
    query: async (index) => {
      sent.push(index);
      starts.push(performance.now());
      const step = script.shift();
      if (step === undefined) {
        ac.abort();
        throw new Error('aborted');
      }
      if (step === 'fail') throw new Error('connect ECONNREFUSED');
      if (step === 'bad') return reply(8, 'not json');
      return reply(step);
    },
    onResult: (r) => {
      if (r.body === 'not json') throw new Error('malformed');
      results.push(r.index);
    },
    onError: (e) => errors.push(e),
  });
  // 10 -> 12 -> 5 (backwards: plain read) -> 0 (becomes 1) -> fail (plain read) -> 7 -> bad body (plain read) -> 9
  assert.deepEqual(sent, [0, 10, 12, 0, 1, 0, 7, 0, 9]);
  assert.deepEqual(results, [10, 12, 5, 0, 7, 9]);
  assert.equal(errors.length, 2);
  assert.ok(errors.every((e) => e.code === ErrorCode.ConsulUnavailable));
  assert.match(errors[0]?.message ?? '', /ECONNREFUSED/);
  for (let i = 1; i < starts.length; i++) {
    const gap = (starts[i] ?? 0) - (starts[i - 1] ?? 0);
    assert.ok(gap >= 25, `requests ${i - 1} and ${i} only ${gap.toFixed(1)} ms apart`);
  }
});

test('aborting ends the loop during a request and during a backoff sleep', async () => {
  const ac = new AbortController();
  const t0 = performance.now();
  const loop = runBlockingLoop({
    signal: ac.signal,
    backoff: { baseMs: 60_000, maxMs: 60_000 },
    query: () => Promise.reject(new Error('down')),
    onResult: () => {},
    onError: () => setTimeout(() => ac.abort(), 10),
  });
  await loop;
  assert.ok(performance.now() - t0 < 1000);

  const ac2 = new AbortController();
  const loop2 = runBlockingLoop({
    signal: ac2.signal,
    backoff: {},
    query: (_i, signal) => new Promise((_r, reject) => signal.addEventListener('abort', () => reject(new Error('aborted')))),
    onResult: () => assert.fail('no result expected'),
    onError: () => assert.fail('an abort is not an error'),
  });
  setTimeout(() => ac2.abort(), 20);
  await loop2;
});
