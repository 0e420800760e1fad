import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type Component, component, startAll, stopAll } from '../../../src/lib/lifecycle.js';
import { createLogger } from '../../../src/lib/logger.js';

const log = createLogger({ level: 'silent' });

function recorder() {
  const events: string[] = [];
  const part = (name: string, opts: { failStart?: boolean; failStop?: boolean; hangStop?: boolean } = {}): Component =>
    component(name, {
      start: () => {
        if (opts.failStart) throw new Error(`${name} cannot start`);
        events.push(`start ${name}`);
      },
      stop: () => {
        events.push(`stop ${name}`);
        if (opts.failStop) return Promise.reject(new Error(`${name} cannot stop`));
        // Resolves long after any deadline a test sets, then later than the test cares about.
        if (opts.hangStop) return new Promise((r) => setTimeout(r, 5_000).unref());
        return undefined;
      },
    });
  return { events, part };
}

test('components start in the order given and stop in reverse, once', async () => {
  const { events, part } = recorder();
  const running = await startAll([part('a'), part('b'), part('c')], log);
  assert.deepEqual(events, ['start a', 'start b', 'start c']);
  await Promise.all([running.stop(), running.stop()]);
  await running.stop();
  assert.deepEqual(events, ['start a', 'start b', 'start c', 'stop c', 'stop b', 'stop a']);
});

test('a failing start stops what started, in reverse, and rethrows; later components never start', async () => {
  const { events, part } = recorder();
  await assert.rejects(startAll([part('a'), part('b'), part('c', { failStart: true }), part('d')], log), /c cannot start/);
  assert.deepEqual(events, ['start a', 'start b', 'stop b', 'stop a']);
});

test('a stop that throws does not keep the rest from stopping, and stopAll does not throw', async () => {
  const { events, part } = recorder();
  const running = await startAll([part('a'), part('b', { failStop: true }), part('c')], log);
  await running.stop();
  assert.deepEqual(events.slice(3), ['stop c', 'stop b', 'stop a']);
});

test('a stop that hangs past its deadline does not block the rest', async () => {
  const { events, part } = recorder();
  const started = [part('a'), part('b', { hangStop: true }), part('c')];
  const t0 = Date.now();
  await stopAll(started, log, { stopDeadlineMs: 100 });
  assert.deepEqual(events, ['stop c', 'stop b', 'stop a']);
  // The hung stop takes 5 s; the deadline lets the rest go on well before that.
  assert.ok(Date.now() - t0 < 4_000, `stopAll took ${Date.now() - t0} ms`);
});

test('a stop that throws synchronously is logged like any other failure', async () => {
  const events: string[] = [];
  const sync: Component = {
    name: 'sync',
    start: () => Promise.resolve(),
    stop: () => {
      throw new Error('at once');
    },
  };
  await stopAll([component('a', { stop: () => events.push('stop a') }), sync], log);
  assert.deepEqual(events, ['stop a']);
});
