import assert from 'node:assert/strict';
import { test } from 'node:test';
import { edgesFromMessages, edgeToMessage } from '../../../src/api/edge-messages.js';
import type { EdgeSample } from '../../../src/api/edges.js';
import { edgeSample } from '../../support/edge-samples.js';

const SAMPLE: EdgeSample = edgeSample({ requests: 12, errors: 1, durationCounts: [10, 2, 0] }, [5, 10]);

test('an edge survives the trip to a message and back', () => {
  const m = edgeToMessage(SAMPLE);
  // As proto-loader delivers uint64 fields: strings.
  const received = { ...m, requests: String(m.requests), errors: String(m.errors), durationCounts: SAMPLE.durationCounts.map(String) };
  assert.deepEqual(edgesFromMessages([received as never]), [SAMPLE]);
});

test('the controller bounds and checks what a host sends', () => {
  const [e] = edgesFromMessages([
    {
      ...SAMPLE,
      reporter: 'bogus',
      security: 'plaintext',
      protocol: 'smtp',
      sourceWorkload: 'x'.repeat(2000),
      requests: '-5',
      errors: 'NaN',
      durationCounts: ['1', '2'],
      durationBounds: [5, 10],
      tcpSentBytes: '0',
      tcpReceivedBytes: '0',
      tcpConnectionsOpened: '0',
    },
  ]);
  assert.deepEqual(
    [e?.reporter, e?.security, e?.protocol, e?.sourceWorkload.length, e?.requests, e?.errors, e?.durationCounts, e?.durationBounds],
    ['destination', 'unknown', 'http', 512, 0, 0, [], []],
  );
  assert.equal(edgesFromMessages(new Array(600).fill({ ...SAMPLE })).length, 500);
});
