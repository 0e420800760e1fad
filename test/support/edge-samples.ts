import assert from 'node:assert/strict';
import { controllerServiceClient, type HealthReport, type HealthReport__Output } from '../../src/api/controller-proto.js';
import type { EdgeSample } from '../../src/api/edges.js';

/** productpage-v1 calling reviews-v1 over mTLS as reviews' proxy counts it, with no traffic yet; tests set the rest. */
export function edgeSample(over: Partial<EdgeSample>, bounds: readonly number[] = [10, 20, 50]): EdgeSample {
  return {
    reporter: 'destination',
    sourceWorkload: 'productpage-v1',
    sourceNamespace: 'default',
    sourcePrincipal: 'spiffe://cluster.local/ns/default/sa/productpage',
    destinationService: 'reviews.default.mesh',
    destinationWorkload: 'reviews-v1',
    destinationNamespace: 'default',
    security: 'mutual_tls',
    protocol: 'http',
    requests: 0,
    errors: 0,
    durationCounts: new Array<number>(bounds.length + 1).fill(0),
    durationBounds: [...bounds],
    tcpSentBytes: 0,
    tcpReceivedBytes: 0,
    tcpConnectionsOpened: 0,
    ...over,
  };
}

/** A HealthReport as the controller receives it: through the real wire encoding (longs as strings, defaults set). */
export function received(report: HealthReport): HealthReport__Output {
  const rpc = controllerServiceClient().service.ReportHealth;
  assert.ok(rpc, 'vmesh.v1.Controller has no ReportHealth');
  const decoded: HealthReport__Output = rpc.requestDeserialize(rpc.requestSerialize(report));
  return decoded;
}
