import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DEFAULT_MESH_CONFIG, parseMeshConfig } from '../../../src/api/mesh-config.js';
import { isVmeshError } from '../../../src/lib/errors.js';

function failure(obj: unknown): { code: string; message: string } {
  try {
    parseMeshConfig(obj, 'mesh.yaml');
  } catch (e) {
    assert.ok(isVmeshError(e), String(e));
    return { code: e.code, message: e.message };
  }
  assert.fail('expected parseMeshConfig to throw');
}

describe('mesh config', () => {
  test('defaults', () => {
    assert.deepEqual(DEFAULT_MESH_CONFIG, {
      trustDomain: 'cluster.local',
      trustDomainAliases: [],
      rootNamespace: 'vmesh-system',
      outboundTrafficPolicy: { mode: 'ALLOW_ANY' },
      defaultAccessLog: { enabled: false, encoding: 'TEXT' },
      dnsDomain: 'mesh',
      dnsDomainAliases: ['svc.cluster.local'],
      defaultCertTtlSeconds: 86_400,
      enableAutoMtls: true,
      extensionProviders: [],
      defaultTracingProviders: [],
      enableTracing: true,
      defaultTracingSampling: 1,
    });
    assert.deepEqual(parseMeshConfig(undefined, 'none'), DEFAULT_MESH_CONFIG);
    assert.deepEqual(parseMeshConfig(null, 'none'), DEFAULT_MESH_CONFIG);
    assert.deepEqual(parseMeshConfig({}, 'none'), DEFAULT_MESH_CONFIG);
  });

  test('merges given keys over the defaults, nested objects field by field', () => {
    const m = parseMeshConfig(
      {
        trustDomain: 'prod.example.com',
        trustDomainAliases: ['cluster.local'],
        defaultAccessLog: { enabled: true },
        outboundTrafficPolicy: { mode: 'REGISTRY_ONLY' },
        dnsDomain: 'corp.',
      },
      'mesh.yaml',
    );
    assert.equal(m.trustDomain, 'prod.example.com');
    assert.deepEqual(m.trustDomainAliases, ['cluster.local']);
    assert.deepEqual(m.defaultAccessLog, { enabled: true, encoding: 'TEXT' });
    assert.equal(m.outboundTrafficPolicy.mode, 'REGISTRY_ONLY');
    assert.equal(m.dnsDomain, 'corp', 'a trailing dot is dropped');
    assert.equal(m.rootNamespace, 'vmesh-system');
    assert.deepEqual(m.dnsDomainAliases, ['svc.cluster.local']);
  });

  test('result and defaults are deep-frozen', () => {
    const m = parseMeshConfig({ trustDomainAliases: ['a.example'] }, 'x');
    assert.ok(Object.isFrozen(m) && Object.isFrozen(m.trustDomainAliases) && Object.isFrozen(m.defaultAccessLog));
    assert.ok(Object.isFrozen(DEFAULT_MESH_CONFIG.dnsDomainAliases));
    assert.throws(() => {
      (m.trustDomainAliases as string[]).push('b');
    }, TypeError);
  });

  test('unknown keys are refused by name, with a hint for typos', () => {
    const f = failure({ trustDomian: 'x.local' });
    assert.equal(f.code, 'VMESH_ERR_INVALID_CONFIG');
    assert.match(
      f.message,
      /^mesh config mesh\.yaml: trustDomian: field "trustDomian" is not supported by vmesh \(did you mean "trustDomain"\?\)$/,
    );
    assert.match(
      failure({ defaultAccessLog: { enabled: true, format: 'x' } }).message,
      /defaultAccessLog\.format: field "format" is not supported/,
    );
  });

  test('Istio MeshConfig keys vmesh lacks are named as not implemented', () => {
    assert.match(
      failure({ accessLogFile: '/dev/stdout' }).message,
      /accessLogFile: field "accessLogFile" is not implemented by vmesh \(use defaultAccessLog\.enabled\)/,
    );
    assert.match(failure({ ingressClass: 'istio' }).message, /ingressClass: field "ingressClass" is not implemented by vmesh/);
    assert.match(
      failure({ extensionProviders: [{ name: 'x', envoyExtAuthzGrpc: {} }] }).message,
      /extensionProviders\[0\]\.envoyExtAuthzGrpc: field "envoyExtAuthzGrpc" is not implemented by vmesh/,
    );
  });

  test('bad values name the field, on one line, all at once', () => {
    const f = failure({ outboundTrafficPolicy: { mode: 'ALLOW_ALL' }, defaultCertTtlSeconds: '1d', enableAutoMtls: 'yes' });
    assert.ok(!f.message.includes('\n'));
    assert.match(f.message, /outboundTrafficPolicy\.mode: "ALLOW_ALL" is not one of ALLOW_ANY, REGISTRY_ONLY/);
    assert.match(f.message, /defaultCertTtlSeconds: must be a number, got "1d"/);
    assert.match(f.message, /enableAutoMtls: must be true or false, got "yes"/);
  });

  test('semantic checks: trust domain, namespace, domains, certificate lifetime', () => {
    assert.match(failure({ trustDomain: 'Bad_Domain' }).message, /trustDomain: "Bad_Domain" is not a trust domain/);
    assert.match(failure({ rootNamespace: 'Istio.System' }).message, /rootNamespace: "Istio\.System" is not a namespace name/);
    assert.match(failure({ dnsDomainAliases: ['mesh'] }).message, /dnsDomainAliases\[0\]: "mesh" is the dnsDomain itself/);
    assert.match(failure({ defaultCertTtlSeconds: 30 }).message, /defaultCertTtlSeconds: 30 is out of range/);
    assert.match(failure('strict').message, /mesh config mesh\.yaml: must be a mapping, got "strict"/);
  });
});
