import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { WarningCode } from '../../../../src/api/resource.js';
import { checkResources } from '../../../../src/api/resource-validate.js';
import { compiledFor, fixtureWith } from '../translated.js';

// Istio accepts a VirtualService whose subset no DestinationRule defines (yet): the route names a cluster that
// does not exist, and Envoy answers 503 with flag NC. The whole config must still translate and compile (no
// NACK); the proxy's 503 NC for an unknown cluster is tested in http-routing.test.ts.
const VS = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v9}
      weight: 80
    - destination: {host: reviews, subset: v1}
      weight: 20
`;

describe('a route to a subset no DestinationRule defines', () => {
  test('is a warning, translates to a route to a cluster absent from CDS, and compiles', () => {
    const resources = fixtureWith(VS);
    const checked = checkResources(resources);
    assert.deepEqual(checked.errors, []);
    assert.deepEqual(
      checked.warnings.filter((w) => w.code === WarningCode.ReferenceNotFound).map((w) => w.path),
      ['spec.http[0].route[0].destination.subset'],
    );
    const compiled = compiledFor(resources);
    const missing = 'outbound|9080|v9|reviews.default.mesh';
    assert.equal(compiled.clusters.has(missing), false);
    assert.equal(compiled.clusters.has('outbound|9080|v1|reviews.default.mesh'), true);
    const forwards = [...compiled.routes.values()]
      .flatMap((t) => t.virtualHosts)
      .flatMap((v) => v.routes)
      .flatMap((r) => (r.action.kind === 'forward' ? [r.action.clusters.map((c) => `${c.name}=${c.weight}`)] : []));
    assert.ok(
      forwards.some((f) => f.join(',') === `${missing}=80,outbound|9080|v1|reviews.default.mesh=20`),
      `no 80/20 route among ${JSON.stringify(forwards)}`,
    );
  });
});
