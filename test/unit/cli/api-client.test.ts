import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { workloadView } from '../../../src/api/http/workloads.js';
import { CertificateAuthority } from '../../../src/ca/index.js';
import { ApiClient } from '../../../src/cli/api-client.js';
import { ErrorCode, isVmeshError } from '../../../src/lib/errors.js';
import { createLogger } from '../../../src/lib/logger.js';
import { runCli } from '../../support/controller-harness.js';

const FACTS = {
  hostname: 'h1',
  osDistro: 'Debian',
  osRelease: '12',
  kernel: '6.1.0',
  arch: 'x64',
  cpuBrand: 'cpu',
  cpuCores: 2,
  memoryTotalBytes: 1024,
  ipv4: ['198.18.0.1'],
  ipv6: [],
  os: 'Debian 12',
  addresses: ['198.18.0.1'],
};
const HOST = {
  name: 'h1',
  live: true,
  revoked: false,
  state: 'live',
  certSerial: 'ab',
  certNotAfter: '2030-01-01T00:00:00.000Z',
  joinedAt: '2026-01-01T00:00:00.000Z',
  facts: FACTS,
};
const WORKLOAD = {
  name: 'web',
  namespace: 'default',
  service: 'web',
  serviceAccount: 'default',
  address: '198.18.0.3',
  ports: { http: 8080 },
  labels: {},
  state: 'healthy',
};

/**
 * A stand-in for the controller's API that answers each path with a fixed body: what a controller of another
 * version, or something else listening on its port, might say.
 */
describe('the CLI checks every controller answer against the API schema', () => {
  let dir: string;
  let server: Server;
  let url: string;
  let caPem: string;
  const bodies = new Map<string, unknown>();

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vmesh-api-client-'));
    const ca = await CertificateAuthority.loadOrCreate({
      dir: join(dir, 'ca'),
      trustDomain: 'cluster.local',
      logger: createLogger({ level: 'silent' }),
    });
    const cert = ca.issueServerCert({ ips: ['127.0.0.1'] });
    caPem = ca.trustBundlePem();
    await writeFile(join(dir, 'ca.pem'), caPem);
    await writeFile(join(dir, 'token'), 'test-token\n');
    server = createServer({ key: cert.keyPem, cert: cert.chainPem }, (req, res) => {
      const body = bodies.get(`${req.method} ${req.url}`);
      res.writeHead(body === undefined ? 404 : 200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body ?? { error: { code: ErrorCode.NotFound, message: `${req.url} not found` } }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    await new Promise((resolve) => server.close(resolve));
    await rm(dir, { recursive: true, force: true });
  });

  const cli = (...args: string[]) =>
    runCli([...args, '--controller', url, '--ca-cert', join(dir, 'ca.pem'), '--token-file', join(dir, 'token')]);

  test('`vmesh host list` prints a well-formed answer', async () => {
    bodies.set('GET /v1/hosts', [HOST]);
    const r = await cli('host', 'list');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /h1\s+live\s+Debian 12\s+6\.1\.0\s+198\.18\.0\.1/);
  });

  test('`vmesh host list` refuses an answer whose field has the wrong type: one line, a stable code, the field path', async () => {
    bodies.set('GET /v1/hosts', [HOST, { ...HOST, name: 'h2', facts: { ...FACTS, os: 12 } }]);
    const r = await cli('host', 'list');
    assert.notEqual(r.code, 0, r.stdout);
    assert.equal(r.stdout, '', 'nothing of the malformed answer is printed');
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0] ?? '', /^VMESH_ERR_BAD_RESPONSE: GET \/v1\/hosts: .*: \[1\]\.facts\.os: .*expected string/);
  });

  test('`vmesh token list` refuses an answer that is not a list', async () => {
    bodies.set('GET /v1/tokens', { tokens: [] });
    const r = await cli('token', 'list');
    assert.notEqual(r.code, 0);
    assert.match(r.stderr.trim(), /^VMESH_ERR_BAD_RESPONSE: GET \/v1\/tokens: .*\(the whole body\): .*expected array[^\n]*$/);
  });

  test('ApiClient.call returns the parsed answer, and names a missing field', async () => {
    const api = new ApiClient({ url, caPem, token: 'test-token' });
    bodies.set('GET /v1/workloads/default/web', WORKLOAD);
    assert.deepEqual(await api.call(workloadView, 'GET', '/v1/workloads/default/web'), WORKLOAD);
    const { state: _, ...noState } = WORKLOAD;
    bodies.set('GET /v1/workloads/default/web', noState);
    await assert.rejects(api.call(workloadView, 'GET', '/v1/workloads/default/web'), (e) => {
      assert.ok(isVmeshError(e));
      assert.equal(e.code, ErrorCode.BadResponse);
      assert.equal(e.details.field, 'state');
      assert.match(e.message, /^GET \/v1\/workloads\/default\/web: .*: state: /);
      return true;
    });
  });
});
