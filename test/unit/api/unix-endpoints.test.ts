import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { formatIssue } from '../../../src/api/resource.js';
import { parseResources } from '../../../src/api/resource-parse.js';
import { checkResources } from '../../../src/api/resource-validate.js';
import { unixPathProblem, unixSocketPath } from '../../../src/api/unix-address.js';

function issues(text: string): string[] {
  const r = parseResources(text, { source: 'test.yaml' });
  const errors = r.ok ? checkResources(r.value).errors : r.error;
  return errors.map((i) => `${i.code}: ${formatIssue(i)}`);
}

function entry(address: string, extra = ''): string {
  return `apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: we, namespace: app}
spec:
  address: "${address}"
${extra}`;
}

function serviceEntry(resolution: string, endpoints: string, ports = '[{number: 8001, name: http, protocol: HTTP}]'): string {
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: se, namespace: app}
spec:
  hosts: [local.example]
  ports: ${ports}
  resolution: ${resolution}
  endpoints: ${endpoints}
`;
}

describe('unix domain socket addresses', () => {
  test('the socket path is what follows unix://, abstract names keep their @', () => {
    assert.equal(unixSocketPath('unix:///var/run/app.sock'), '/var/run/app.sock');
    assert.equal(unixSocketPath('unix://@app'), '@app');
    assert.equal(unixSocketPath('198.18.0.1'), undefined);
  });

  test("Istio's ValidateUnixAddress: not empty, @name or an absolute path to a file; and sun_path's length", () => {
    assert.equal(unixPathProblem('/foo/bar'), undefined);
    assert.equal(unixPathProblem('@foo'), undefined);
    assert.equal(unixPathProblem(''), 'unix address must not be empty');
    assert.equal(unixPathProblem('/dir/'), '"/dir/" is not an absolute path to a file');
    assert.equal(unixPathProblem('relative'), '"relative" is not an absolute path to a file');
    assert.equal(unixPathProblem(`/${'a'.repeat(106)}`), undefined);
    assert.match(unixPathProblem(`/${'a'.repeat(107)}`) ?? '', /longer than 107 bytes/);
    assert.match(unixPathProblem(`@${'a'.repeat(108)}`) ?? '', /longer than 107 bytes/);
  });
});

describe('WorkloadEntry with a unix address', () => {
  test('a path and an abstract socket are accepted', () => {
    assert.deepEqual(issues(entry('unix:///foo/bar')), []);
    assert.deepEqual(issues(entry('unix://@foo')), []);
  });

  test('a directory, a relative path, an empty path and ports are refused, naming the field', () => {
    assert.deepEqual(issues(entry('unix:///dir/')), [
      'VMESH_ERR_INVALID_RESOURCE: WorkloadEntry app/we: spec.address: "/dir/" is not an absolute path to a file',
    ]);
    assert.deepEqual(issues(entry('unix://relative')), [
      'VMESH_ERR_INVALID_RESOURCE: WorkloadEntry app/we: spec.address: "relative" is not an absolute path to a file',
    ]);
    assert.deepEqual(issues(entry('unix://')), [
      'VMESH_ERR_INVALID_RESOURCE: WorkloadEntry app/we: spec.address: unix address must not be empty',
    ]);
    assert.deepEqual(issues(entry('unix://@foo', '  ports: {http: 8080}\n')), [
      'VMESH_ERR_INVALID_RESOURCE: WorkloadEntry app/we: spec.ports: unix endpoint "unix://@foo" must not include ports',
    ]);
  });
});

describe('ServiceEntry with unix endpoints', () => {
  test('resolution STATIC with one port takes them', () => {
    assert.deepEqual(issues(serviceEntry('STATIC', '[{address: "unix:///var/run/example/socket"}, {address: "unix://@abstract"}]')), []);
  });

  test('DNS resolution refuses them (Istio: not an IP address or FQDN)', () => {
    assert.deepEqual(issues(serviceEntry('DNS', '[{address: "unix:///var/run/example/socket"}]')), [
      'VMESH_ERR_INVALID_RESOURCE: ServiceEntry app/se: spec.endpoints[0].address: "unix:///var/run/example/socket": unix domain socket endpoints need resolution STATIC, not DNS',
    ]);
  });

  test('a unix endpoint needs exactly one service port', () => {
    const two = '[{number: 8001, name: http, protocol: HTTP}, {number: 8002, name: tcp, protocol: TCP}]';
    assert.deepEqual(issues(serviceEntry('STATIC', '[{address: "unix://@a"}]', two)), [
      'VMESH_ERR_INVALID_RESOURCE: ServiceEntry app/se: spec.endpoints[0].address: unix endpoint "unix://@a" needs exactly 1 service port, not 2',
    ]);
  });

  test('the endpoint rules of WorkloadEntry apply: bad paths and ports are refused', () => {
    assert.deepEqual(issues(serviceEntry('STATIC', '[{address: "unix:///run/", ports: {http: 80}}]')), [
      'VMESH_ERR_INVALID_RESOURCE: ServiceEntry app/se: spec.endpoints[0].address: "/run/" is not an absolute path to a file',
      'VMESH_ERR_INVALID_RESOURCE: ServiceEntry app/se: spec.endpoints[0].ports: unix endpoint "unix:///run/" must not include ports',
    ]);
  });
});
