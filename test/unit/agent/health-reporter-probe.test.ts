import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HealthReporter } from '../../../src/agent/health-reporter.js';
import type { HealthReport, HealthReportAck__Output as HealthReportAck, LocalWorkload__Output } from '../../../src/api/controller-proto.js';
import { createLogger } from '../../../src/lib/logger.js';

const WEB: LocalWorkload__Output = { namespace: 'default', name: 'web', address: '198.18.0.3', ports: { http: 8003 } } as never;
const wait = async (cond: () => boolean, ms: number) => {
  for (const until = Date.now() + ms; !cond() && Date.now() < until; ) await new Promise((r) => setTimeout(r, 10));
};

test('a workload whose health changes between reports is reported at once, not at the next interval', async () => {
  const sent: Array<{ at: number; report: HealthReport }> = [];
  let up = false;
  let probes = 0;
  const client = {
    ReportHealth(req: HealthReport, cb: (e: null, res: HealthReportAck) => void) {
      sent.push({ at: Date.now(), report: req });
      // A long interval: only a probe that sees a change makes another report within this test.
      cb(null, { nextReportMs: '60000', workloads: [WEB], trustBundleSha256: '' });
    },
  } as never;
  const probe = async () => {
    probes++;
    return up ? { healthy: true, detail: '' } : { healthy: false, detail: 'http 198.18.0.3:8003: ECONNREFUSED' };
  };
  const r = new HealthReporter({ client, logger: createLogger({ level: 'silent' }), probe, probeIntervalMs: 50 });
  r.start();
  try {
    // The first report knew no workloads; the second carries the first probe.
    await wait(() => sent.length >= 2, 2000);
    assert.equal(sent[1]?.report.workloads?.[0]?.healthy, false);
    const quiet = sent.length;
    await wait(() => probes >= 6, 2000);
    assert.equal(sent.length, quiet, 'an unchanged probe result sends nothing');
    up = true;
    const changed = Date.now();
    await wait(() => sent.length > quiet, 2000);
    assert.equal(sent.length, quiet + 1, 'the change was reported');
    assert.equal(sent.at(-1)?.report.workloads?.[0]?.healthy, true);
    assert.ok((sent.at(-1)?.at ?? Infinity) - changed < 1000, 'within a probe period, not the 60 s interval');
  } finally {
    await r.stop();
  }
});
