import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HealthReporter } from '../../../src/agent/health-reporter.js';
import { registryFrom, servedIdentities } from '../../../src/agent/identity-cache.js';
import type { HealthReport, HealthReportAck__Output as HealthReportAck } from '../../../src/api/controller-proto.js';
import { HealthTracker } from '../../../src/discovery/health.js';
import { createLogger } from '../../../src/lib/logger.js';

const ID = (sa: string) => `spiffe://cluster.local/ns/default/sa/${sa}`;

test('reportSoon sends a report at once, not at the next interval, carrying what the host serves', async () => {
  const sent: Array<{ at: number; report: HealthReport }> = [];
  let serving = [{ spiffeId: ID('a'), uid: 1600, hasUid: true }];
  const client = {
    ReportHealth(req: HealthReport, cb: (e: null, res: HealthReportAck) => void) {
      sent.push({ at: Date.now(), report: req });
      // A long interval: only reportSoon makes a second report within this test.
      cb(null, { nextReportMs: '60000', workloads: [], trustBundleSha256: '' });
    },
  } as never;
  const r = new HealthReporter({ client, logger: createLogger({ level: 'silent' }), serving: () => serving });
  r.start();
  try {
    for (let i = 0; i < 50 && sent.length < 1; i++) await new Promise((res) => setTimeout(res, 20));
    assert.equal(sent.length, 1);
    serving = [...serving, { spiffeId: ID('b'), uid: 0, hasUid: false }];
    const asked = Date.now();
    r.reportSoon();
    for (let i = 0; i < 50 && sent.length < 2; i++) await new Promise((res) => setTimeout(res, 20));
    assert.equal(sent.length, 2, 'reportSoon woke the reporter');
    assert.ok((sent[1]?.at ?? Infinity) - asked < 1000);
    assert.deepEqual(sent[1]?.report.serving, serving);
  } finally {
    await r.stop();
  }
});

test('the controller says a host serves an identity only for the uid reported, and only while the host is live', () => {
  const t = new HealthTracker({ hostTimeoutMs: 1000, onChange: () => {} });
  assert.equal(t.serves('h2', { namespace: 'default', serviceAccount: 'a', uid: 1600 }), false);
  t.report('h2', []);
  t.recordServing('h2', [
    { namespace: 'default', serviceAccount: 'a', uid: 1600 },
    { namespace: 'default', serviceAccount: 'b' },
  ]);
  assert.equal(t.serves('h2', { namespace: 'default', serviceAccount: 'a', uid: 1600 }), true);
  assert.equal(t.serves('h2', { namespace: 'default', serviceAccount: 'a', uid: 1601 }), false, 'another uid');
  assert.equal(t.serves('h2', { namespace: 'default', serviceAccount: 'b' }), true);
  assert.equal(t.serves('h3', { namespace: 'default', serviceAccount: 'b' }), false, 'another host');
  t.forgetHost('h2');
  assert.equal(t.serves('h2', { namespace: 'default', serviceAccount: 'b' }), false);
});

test("the agent's registry comes from the WDS resource; it serves what it holds a certificate for", () => {
  const reg = registryFrom({
    workloads: [
      { namespace: 'default', name: 'client', service_account: 'client', spiffe_id: ID('client'), uid: 1601, has_uid: true },
      { namespace: 'default', name: 'web', service_account: 'web', spiffe_id: ID('web'), uid: 0, has_uid: false },
    ],
  });
  assert.deepEqual(reg, [{ spiffeId: ID('client'), uid: 1601 }, { spiffeId: ID('web') }]);
  assert.equal(registryFrom(undefined), undefined, 'no WDS pushed: the saved registry stays');
  assert.deepEqual(
    servedIdentities(reg ?? [], (id) => id === ID('client')),
    [{ spiffeId: ID('client'), uid: 1601, hasUid: true }],
  );
});
