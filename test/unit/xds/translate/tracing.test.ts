import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseMeshConfig } from '../../../../src/api/mesh-config.js';
import type { Resource } from '../../../../src/api/resource.js';
import { parseResources } from '../../../../src/api/resource-parse.js';
import type { TracingConfig } from '../../../../src/proxy/proxy-config.js';
import { compileTranslated } from '../../../support/proxy-fixtures.js';
import { bookinfoInput, bookinfoResources } from './fixture.js';

const MESH = {
  extensionProviders: [
    { name: 'otel', opentelemetry: { service: 'otel-collector.observability.svc.cluster.local', port: 4317 } },
    {
      name: 'otel-http',
      opentelemetry: {
        service: 'observability/otel-collector.observability.svc.cluster.local',
        port: 4318,
        http: { path: '/v1/traces', timeout: '2s', headers: [{ name: 'X-Tenant', value: 'a' }] },
      },
    },
  ],
  defaultProviders: { tracing: ['otel'] },
};

function parse(yaml: string): Resource[] {
  const r = parseResources(yaml, { source: 'test.yaml' });
  if (!r.ok) throw new Error(JSON.stringify(r.error));
  return r.value;
}

/** h1's translation through encode and decode, compiled as the proxy runs it: the tracing of each HTTP chain by kind. */
function tracingOf(mesh: object, yaml = ''): { CLIENT: TracingConfig[]; SERVER: TracingConfig[]; untraced: number } {
  const input = bookinfoInput('h1', {
    mesh: parseMeshConfig(mesh, 'mesh.yaml'),
    resources: [...bookinfoResources(), ...(yaml ? parse(yaml) : [])],
  });
  const config = compileTranslated(input);
  const out = { CLIENT: [] as TracingConfig[], SERVER: [] as TracingConfig[], untraced: 0 };
  for (const l of config.listeners.values()) {
    for (const c of [...l.filterChains, ...(l.defaultChain ? [l.defaultChain] : [])]) {
      if (c.action.kind !== 'http') continue;
      if (c.action.tracing) out[c.action.tracing.spanKind].push(c.action.tracing);
      else out.untraced++;
    }
  }
  return out;
}

describe('tracing: MeshConfig providers and Telemetry tracing to the HCM and the proxy', () => {
  test('no provider: no tracing block anywhere, the proxy leaves trace headers alone', () => {
    const t = tracingOf({});
    assert.equal(t.CLIENT.length + t.SERVER.length, 0);
    assert.ok(t.untraced > 0);
  });

  test('defaultProviders: OTLP/gRPC to the collector cluster at the mesh default 1%, CLIENT outbound and SERVER inbound', () => {
    const t = tracingOf(MESH);
    assert.ok(t.CLIENT.length > 0 && t.SERVER.length > 0, JSON.stringify(t));
    assert.equal(t.untraced, 0);
    for (const x of [...t.CLIENT, ...t.SERVER]) {
      assert.equal(x.sampling, 0.01);
      assert.equal(x.exporter?.protocol, 'grpc');
      assert.equal(x.exporter?.cluster, 'outbound|4317||otel-collector.observability.mesh');
      assert.equal(x.exporter?.authority, 'otel-collector.observability.mesh');
    }
  });

  test('Telemetry layers sampling, tags, span reporting and mode as Istio does', () => {
    const t = tracingOf(
      MESH,
      `apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh, namespace: vmesh-system}
spec:
  tracing:
  - randomSamplingPercentage: 25
    customTags: {team: {literal: {value: a}}, user: {header: {name: X-User, defaultValue: anon}}}
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: ns, namespace: default}
spec:
  tracing:
  - match: {mode: SERVER}
    providers: [{name: otel-http}]
    randomSamplingPercentage: 50
    customTags: {team: {environment: {name: TEAM, defaultValue: none}}}
`,
    );
    for (const x of t.CLIENT) {
      assert.equal(x.sampling, 0.25);
      assert.equal(x.exporter?.protocol, 'grpc');
      assert.deepEqual(x.tags, [
        { tag: 'team', literal: 'a' },
        { tag: 'user', header: { name: 'x-user', defaultValue: 'anon' } },
      ]);
    }
    for (const x of t.SERVER) {
      assert.equal(x.sampling, 0.5);
      assert.deepEqual(x.exporter && { p: x.exporter.protocol, path: x.exporter.path, h: x.exporter.headers, t: x.exporter.timeoutMs }, {
        p: 'http',
        path: '/v1/traces',
        h: { 'x-tenant': 'a' },
        t: 2000,
      });
      assert.equal(x.exporter?.cluster, 'outbound|4318||otel-collector.observability.mesh');
      assert.deepEqual(x.tags[0], { tag: 'team', environment: { name: 'TEAM', defaultValue: 'none' } });
    }
  });

  test('disableSpanReporting keeps sampling and propagation but reports nothing; enableTracing false turns it all off', () => {
    const t = tracingOf(
      MESH,
      `apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: quiet, namespace: vmesh-system}
spec:
  tracing: [{disableSpanReporting: true, randomSamplingPercentage: 100}]
`,
    );
    assert.ok(t.CLIENT.length > 0);
    for (const x of [...t.CLIENT, ...t.SERVER]) {
      assert.equal(x.exporter, undefined);
      assert.equal(x.sampling, 1);
    }
    const off = tracingOf({ ...MESH, enableTracing: false });
    assert.equal(off.CLIENT.length + off.SERVER.length, 0);
  });

  test('useRequestIdForTraceSampling: true by default (as Istio), false per Telemetry, through the UUID request id extension', () => {
    const dflt = tracingOf(MESH);
    for (const x of [...dflt.CLIENT, ...dflt.SERVER]) assert.equal(x.useRequestId, true);
    const t = tracingOf(
      MESH,
      `apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: ns, namespace: default}
spec:
  tracing: [{match: {mode: SERVER}, useRequestIdForTraceSampling: false}]
`,
    );
    assert.ok(t.CLIENT.length > 0 && t.SERVER.length > 0);
    for (const x of t.CLIENT) assert.equal(x.useRequestId, true);
    for (const x of t.SERVER) assert.equal(x.useRequestId, false);
  });

  test('a Telemetry naming a provider the mesh lacks reports no spans, as Istio (validation warns of it)', () => {
    const t = tracingOf(
      MESH,
      `apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: bad, namespace: vmesh-system}
spec:
  tracing: [{providers: [{name: jaeger}]}]
`,
    );
    assert.equal(t.CLIENT.length + t.SERVER.length, 0);
  });

  test('mesh config: unknown providers, bad ports and dangling defaults are refused by name', () => {
    const bad = (obj: object) => {
      try {
        parseMeshConfig(obj, 'mesh.yaml');
      } catch (e) {
        return (e as Error).message;
      }
      return assert.fail('accepted');
    };
    assert.match(
      bad({ extensionProviders: [{ name: 'z', zipkin: {} }] }),
      /extensionProviders\[0\]\.zipkin: field "zipkin" is not implemented by vmesh \(use opentelemetry\)/,
    );
    assert.match(
      bad({ extensionProviders: [{ name: 'o', opentelemetry: { service: 'c.o.svc.cluster.local', port: 0 } }] }),
      /extensionProviders\[0\]\.opentelemetry\.port: 0 is not a port/,
    );
    assert.match(
      bad({ defaultProviders: { tracing: ['nope'] } }),
      /defaultProviders\.tracing\[0\]: "nope" is not one of extensionProviders/,
    );
    assert.match(bad({ defaultConfig: { tracing: { sampling: 150 } } }), /defaultConfig\.tracing\.sampling: 150 is not a percentage/);
    assert.match(bad({ defaultConfig: { concurrency: 2 } }), /defaultConfig/);
  });
});
