import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseResources } from '../../../src/api/resource-parse.js';
import { checkResources } from '../../../src/api/resource-validate.js';
import { compileProxyConfig } from '../../../src/proxy/compile/index.js';
import type { AppliedConfig } from '../../../src/xds/agent-sync.js';
import { decodeAnyDeep } from '../../../src/xds/decode-deep.js';
import { makeSnapshot } from '../../../src/xds/snapshot.js';
import { translateNode } from '../../../src/xds/translate/index.js';
import { CDS, EDS, LDS, RDS } from '../../../src/xds/type-urls.js';
import { bookinfoInput, bookinfoResources } from '../xds/translate/fixture.js';

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
    const parsed = parseResources(VS, { source: 'vs.yaml' });
    assert.ok(parsed.ok);
    const resources = [
      ...bookinfoResources().filter((r) => !(r.kind === 'VirtualService' && r.metadata.name === 'reviews')),
      ...parsed.value,
    ];
    const checked = checkResources(resources);
    assert.deepEqual(checked.errors, []);
    assert.deepEqual(
      checked.warnings.map((w) => w.path),
      ['spec.http[0].route[0].destination.subset'],
    );

    const snap = makeSnapshot('v1', translateNode(bookinfoInput('h1', { resources })));
    const applied: AppliedConfig = { versions: { [CDS]: 'c', [EDS]: 'e', [LDS]: 'l', [RDS]: 'r' }, resources: {}, updatedAt: '' };
    for (const t of [CDS, EDS, LDS, RDS]) {
      applied.resources[t] = Object.fromEntries([...(snap.resources.get(t) ?? new Map())].map(([n, r]) => [n, decodeAnyDeep(r.any)]));
    }
    const compiled = compileProxyConfig(applied);
    if (!compiled.ok) assert.fail(compiled.error);
    const missing = 'outbound|9080|v9|reviews.default.mesh';
    assert.equal(compiled.value.clusters.has(missing), false);
    assert.equal(compiled.value.clusters.has('outbound|9080|v1|reviews.default.mesh'), true);
    const forwards = [...compiled.value.routes.values()]
      .flatMap((t) => t.virtualHosts)
      .flatMap((v) => v.routes)
      .flatMap((r) => (r.action.kind === 'forward' ? [r.action.clusters.map((c) => `${c.name}=${c.weight}`)] : []));
    assert.ok(
      forwards.some((f) => f.join(',') === `${missing}=80,outbound|9080|v1|reviews.default.mesh=20`),
      `no 80/20 route among ${JSON.stringify(forwards)}`,
    );
  });
});
