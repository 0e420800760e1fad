import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { formatDuration, parseDuration } from '../../../src/api/resources/duration.js';

describe('parseDuration', () => {
  const good: Array<[string, number]> = [
    ['1s', 1000],
    ['0.5s', 500],
    ['1.5s', 1500],
    ['100ms', 100],
    ['1m', 60_000],
    ['1h', 3_600_000],
    ['1h30m', 5_400_000],
    ['2m0.25s', 120_250],
    ['.5s', 500],
    ['1.005s', 1005],
    ['250000us', 250],
    ['3000000ns', 3],
    ['0s', 0],
    ['0', 0],
    [' 2s ', 2000],
  ];
  for (const [text, ms] of good) {
    test(`${JSON.stringify(text)} -> ${ms}ms`, () => {
      assert.deepEqual(parseDuration(text), { ok: true, value: ms });
    });
  }

  const bad: Array<[string, string]> = [
    ['', 'empty'],
    ['10', 'no unit'],
    ['1.5', 'no unit'],
    ['-1s', 'negative'],
    ['1.5ms', 'millisecond precision'],
    ['100us', 'millisecond precision'],
    ['1d', 'unit'],
    ['10 seconds', 'unit'],
    ['s', 'unit'],
    ['1s2', 'unit'],
    ['100000h', 'ten years'],
  ];
  for (const [text, why] of bad) {
    test(`${JSON.stringify(text)} is refused (${why})`, () => {
      const r = parseDuration(text);
      assert.equal(r.ok, false);
      if (!r.ok) {
        assert.match(r.error, new RegExp(why));
        assert.ok(r.error.includes(JSON.stringify(text)), r.error);
      }
    });
  }
});

describe('formatDuration', () => {
  test('round-trips through parseDuration', () => {
    for (const ms of [0, 1, 250, 1000, 1500, 60_000, 90_000, 3_600_000, 5_400_000]) {
      const text = formatDuration(ms);
      assert.deepEqual(parseDuration(text), { ok: true, value: ms }, text);
    }
    assert.equal(formatDuration(1500), '1.5s');
    assert.equal(formatDuration(60_000), '1m');
    assert.equal(formatDuration(250), '250ms');
  });
});
