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
