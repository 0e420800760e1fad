import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HealthTracker } from '../../../src/discovery/health.js';

test('hosts that stop reporting are not live; reporting again brings them back', () => {
  let now = 1_000_000;
  let changes = 0;
  const h = new HealthTracker({ hostTimeoutMs: 30_000, onChange: () => changes++, now: () => now });
  h.report('h1', [{ namespace: 'default', name: 'reviews-v1', healthy: true }]);
  h.report('h2', [{ namespace: 'default', name: 'reviews-v2', healthy: false }]);
  assert.equal(changes, 2);
  assert.equal(h.isHostLive('h1'), true);
  assert.equal(h.workloadHealthy('default', 'reviews-v2'), false);
  assert.equal(h.workloadHealthy('default', 'nobody'), undefined);

  now += 20_000;
  h.report('h1', [{ namespace: 'default', name: 'reviews-v1', healthy: true }]);
  assert.equal(changes, 2, 'an unchanged report is not a change');
  now += 15_000;
  h.check();
  assert.equal(h.isHostLive('h1'), true);
  assert.equal(h.isHostLive('h2'), false, 'h2 silent for 35 s');
  assert.equal(changes, 3);

  h.report('h2', [{ namespace: 'default', name: 'reviews-v2', healthy: true }]);
  assert.equal(h.isHostLive('h2'), true);
  assert.equal(h.workloadHealthy('default', 'reviews-v2'), true);
  assert.deepEqual(
    h.hosts().map((x) => [x.name, x.live]),
    [
      ['h1', true],
      ['h2', true],
    ],
  );
});

test('with controllers sharing a store, a host that reports to another controller is not silent here', () => {
  let now = 1_000_000;
  let elsewhere: number | undefined;
  const h = new HealthTracker({
    hostTimeoutMs: 30_000,
    onChange: () => {},
    now: () => now,
    seenElsewhere: { at: () => elsewhere, slackMs: 30_000 },
  });
  h.report('h1', []);
  // The agent fails over to the other controller, which records it (at most every 30 s).
  now += 10_000;
  elsewhere = now;
  now += 40_000;
  h.check();
  assert.equal(h.hostState('h1'), 'live', 'seen elsewhere 40 s ago: within timeout + slack');
  now += 25_000;
  h.check();
  assert.equal(h.hostState('h1'), 'silent', 'nobody heard from it for 65 s');
  // Our own record of the host (written when it reported here) does not keep it alive here.
  const g = new HealthTracker({
    hostTimeoutMs: 30_000,
    onChange: () => {},
    now: () => now,
    seenElsewhere: { at: () => now - 31_000, slackMs: 30_000 },
  });
  g.report('h2', []);
  now += 31_000;
  g.check();
  assert.equal(g.hostState('h2'), 'silent');
});
