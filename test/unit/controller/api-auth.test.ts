import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CertificateAuthority } from '../../../src/ca/ca.js';
import { createLogger } from '../../../src/lib/logger.js';
import { apiRequest, startTestController, type TestController } from '../../support/controller-harness.js';

const REGISTRATION = {
  name: 'ratings-v1',
  service: 'ratings',
  namespace: 'default',
  address: '198.18.0.13',
  ports: ['http:9080'],
  host: 'h3',
};

const VS = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings, namespace: default}
spec:
  hosts: [ratings]
  http:
  - route:
    - destination: {host: ratings}
`;

/** Every route of the API but /v1/health, with a body that would succeed for an admin. */
const ROUTES: ReadonlyArray<{ method: string; path: string; body?: unknown; write: boolean }> = [
  { method: 'POST', path: '/v1/tokens', body: { host: 'h9', ttl: '1h' }, write: true },
  { method: 'DELETE', path: '/v1/hosts/h9', write: true },
  { method: 'POST', path: '/v1/workloads', body: REGISTRATION, write: true },
  { method: 'DELETE', path: '/v1/workloads/default/ratings-v1', write: true },
  { method: 'POST', path: '/v1/config', body: VS, write: true },
  { method: 'DELETE', path: '/v1/config/VirtualService/default/ratings', write: true },
  { method: 'GET', path: '/v1/tokens', write: false },
  { method: 'GET', path: '/v1/hosts', write: false },
  { method: 'GET', path: '/v1/workloads', write: false },
  { method: 'GET', path: '/v1/config/VirtualService', write: false },
  { method: 'GET', path: '/v1/config/VirtualService/default/ratings', write: false },
  { method: 'GET', path: '/v1/services', write: false },
];

describe('the controller API refuses callers without the admin token', () => {
  let ctl: TestController;
  before(async () => {
    ctl = await startTestController();
  });
  after(async () => {
    await ctl?.stop();
  });

  const credentials: ReadonlyArray<{ what: string; authorization?: (admin: string) => string }> = [
    { what: 'no token' },
    { what: 'a wrong token of the same length', authorization: (t) => `Bearer ${t.slice(0, -1)}${t.endsWith('A') ? 'B' : 'A'}` },
    { what: 'a wrong short token', authorization: () => 'Bearer x' },
    { what: 'the token as Basic auth', authorization: (t) => `Basic ${Buffer.from(`admin:${t}`).toString('base64')}` },
    { what: 'the token with a trailing word', authorization: (t) => `Bearer ${t} extra` },
  ];

  for (const cred of credentials) {
    test(`every route but /v1/health answers 401 VMESH_ERR_UNAUTHENTICATED to ${cred.what}`, async () => {
      for (const r of ROUTES) {
        const res = await apiRequest(ctl.apiUrl, ctl.caPem, r.method, r.path, {
          body: r.body,
          ...(cred.authorization ? { authorization: cred.authorization(ctl.adminToken) } : {}),
        });
        assert.equal(res.status, 401, `${r.method} ${r.path}: ${JSON.stringify(res.body)}`);
        assert.equal(res.body?.error?.code, 'VMESH_ERR_UNAUTHENTICATED', `${r.method} ${r.path}`);
        assert.ok(!JSON.stringify(res.body).includes(ctl.adminToken), 'the answer never echoes the admin token');
      }
    });
  }

  test('refused writes changed nothing', async () => {
    const [tokens, workloads, config, services] = await Promise.all([
      ctl.api('GET', '/v1/tokens'),
      ctl.api('GET', '/v1/workloads'),
      ctl.api('GET', '/v1/config/VirtualService'),
      ctl.api('GET', '/v1/services'),
    ]);
    assert.deepEqual([tokens.status, workloads.status, config.status, services.status], [200, 200, 200, 200]);
    assert.deepEqual(tokens.body, []);
    assert.deepEqual(workloads.body, []);
    assert.deepEqual(config.body, []);
    assert.deepEqual(services.body.services, []);
  });

  test('GET /v1/health answers anonymously', async () => {
    const res = await apiRequest(ctl.apiUrl, ctl.caPem, 'GET', '/v1/health');
    assert.equal(res.status, 200);
    assert.equal(res.body.ok, true);
    assert.match(res.body.version, /^\d+\.\d+\.\d+/);
  });

  test('the same requests with the admin token succeed', async () => {
    const statuses: string[] = [];
    for (const r of ROUTES) {
      // DELETE of the host fails with NOT_FOUND (no host joined), which is past authentication.
      const res = await apiRequest(ctl.apiUrl, ctl.caPem, r.method, r.path, { token: ctl.adminToken, body: r.body });
      statuses.push(`${r.method} ${r.path} ${res.status}${res.body?.error ? ` ${res.body.error.code}` : ''}`);
    }
    assert.deepEqual(statuses, [
      'POST /v1/tokens 201',
      'DELETE /v1/hosts/h9 404 VMESH_ERR_NOT_FOUND',
      'POST /v1/workloads 201',
      'DELETE /v1/workloads/default/ratings-v1 200',
      'POST /v1/config 200',
      'DELETE /v1/config/VirtualService/default/ratings 200',
      'GET /v1/tokens 200',
      'GET /v1/hosts 200',
      'GET /v1/workloads 200',
      'GET /v1/config/VirtualService 200',
      'GET /v1/config/VirtualService/default/ratings 404 VMESH_ERR_NOT_FOUND',
      'GET /v1/services 200',
    ]);
  });

  test('a client trusting another CA refuses the API: its certificate comes from the CA in the data dir', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'vmesh-other-ca-'));
    try {
      const other = await CertificateAuthority.loadOrCreate({
        dir,
        trustDomain: 'cluster.local',
        logger: createLogger({ level: 'silent' }),
      });
      await assert.rejects(apiRequest(ctl.apiUrl, other.trustBundlePem(), 'GET', '/v1/health'), {
        code: /^(SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE)$/,
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
