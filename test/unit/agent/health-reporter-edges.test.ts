import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { HealthReporter } from '../../../src/agent/health-reporter.js';
import type { HealthReport, HealthReportAck__Output as HealthReportAck } from '../../../src/api/controller-proto.js';
import { edgesFromMessages } from '../../../src/api/edge-messages.js';
import type { EdgeSample } from '../../../src/api/edges.js';
import { createLogger } from '../../../src/lib/logger.js';
import { edgeSample, received } from '../../support/edge-samples.js';

const SAMPLE: EdgeSample = edgeSample({ requests: 12, errors: 1, durationCounts: [10, 2, 0] }, [5, 10]);

/** A ReportHealth client that keeps what it was sent and answers with no workloads. */
function fakeClient(sent: HealthReport[]) {
  return {
    ReportHealth(req: HealthReport, cb: (e: null, res: HealthReportAck) => void) {
      sent.push(req);
      cb(null, { nextReportMs: '1000', workloads: [], trustBundleSha256: '' });
    },
  } as never;
}

describe('HealthReporter edge telemetry', () => {
  test('each report carries the edges the agent collected', async () => {
    const sent: HealthReport[] = [];
    const r = new HealthReporter({ client: fakeClient(sent), logger: createLogger({ level: 'silent' }), edges: async () => [SAMPLE] });
    await r.reportOnce();
    assert.equal(sent.length, 1);
    const [report] = sent;
    assert.ok(report);
    assert.deepEqual(edgesFromMessages(received(report).edges), [SAMPLE]);
  });

  test('a failing collection still reports health, without edges', async () => {
    const sent: HealthReport[] = [];
    const r = new HealthReporter({
      client: fakeClient(sent),
      logger: createLogger({ level: 'silent' }),
      edges: () => Promise.reject(new Error('proxy worker gone')),
    });
    assert.equal(await r.reportOnce(), 1000);
    assert.deepEqual(sent[0]?.edges, []);
  });
});
