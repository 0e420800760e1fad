import assert from 'node:assert/strict';
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  CertificateAuthority,
  gatherHostFacts,
  type HostCredentials,
  hostSpiffeId,
  joinController,
  signWorkloadCert,
  trustBundleSha256,
} from '../../../src/ca/index.js';
import { buildCsr, derToPem } from '../../../src/ca/x509.js';
import { createLogger } from '../../../src/lib/logger.js';
import { startTestController, type TestController } from '../../support/controller-harness.js';

const register = (name: string, sa: string, host: string) => [
  'workload',
  'register',
  '--name',
  name,
  '--service',
  name,
  '--service-account',
  sa,
  '--address',
  '198.18.0.12',
  '--port',
  'http:9080',
  '--host',
  host,
  '--no-wait',
];

describe('SignWorkload: workload SVIDs for identities registered on the calling host only', () => {
  let ctl: TestController;
  const hosts: Record<string, HostCredentials> = {};

  before(async () => {
    ctl = await startTestController();
    const facts = await gatherHostFacts();
    for (const h of ['h2', 'h3']) {
      const token = (await ctl.cli(['token', 'create', '--host', h])).stdout.trim();
      hosts[h] = await joinController({ address: ctl.grpcAddress, token, hostName: h, facts });
    }
    for (const [name, sa, host] of [
      ['ratings', 'ratings', 'h2'],
      ['reviews', 'bookinfo-reviews', 'h3'],
    ] as const) {
      const r = await ctl.cli(register(name, sa, host));
      assert.equal(r.code, 0, r.stderr);
    }
  });
  after(async () => {
    await ctl?.stop();
  });

  test('a host gets an SVID for its own workload: URI SAN only, both key usages, 24 h by default, key made locally', async () => {
    const host = hosts.h2 as HostCredentials;
    const cert = await signWorkloadCert({ address: ctl.grpcAddress, host, namespace: 'default', serviceAccount: 'ratings' });
    assert.equal(cert.spiffeId, 'spiffe://cluster.local/ns/default/sa/ratings');
    const x = new X509Certificate(cert.certChainPem);
    assert.equal(x.subjectAltName, 'URI:spiffe://cluster.local/ns/default/sa/ratings');
    assert.ok(!x.subject, `empty subject, got ${x.subject}`);
    assert.ok(x.verify(new X509Certificate(ctl.caPem).publicKey));
    assert.deepEqual([...(x.keyUsage ?? [])].sort(), ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
    const hours = (cert.notAfter.getTime() - cert.notBefore.getTime()) / 3_600_000;
    assert.ok(hours > 23.9 && hours < 24.2, `lifetime ${hours} h`);
    assert.equal(x.checkPrivateKey((await import('node:crypto')).createPrivateKey(cert.keyPem)), true);
    assert.equal(trustBundleSha256(cert.trustBundlePem), trustBundleSha256(ctl.caPem));
  });

  test("a host asking for another host's workload identity is refused (PERMISSION_DENIED, VMESH_ERR_FORBIDDEN) and it is logged", async () => {
    await assert.rejects(
      signWorkloadCert({
        address: ctl.grpcAddress,
        host: hosts.h2 as HostCredentials,
        namespace: 'default',
        serviceAccount: 'bookinfo-reviews',
      }),
      (e: Error & { code?: string }) => e.code === 'VMESH_ERR_FORBIDDEN' && /h2.*bookinfo-reviews/.test(e.message),
    );
    await assert.rejects(
      signWorkloadCert({ address: ctl.grpcAddress, host: hosts.h2 as HostCredentials, namespace: 'other', serviceAccount: 'ratings' }),
      { code: 'VMESH_ERR_FORBIDDEN' },
    );
    const ok = await signWorkloadCert({
      address: ctl.grpcAddress,
      host: hosts.h3 as HostCredentials,
      namespace: 'default',
      serviceAccount: 'bookinfo-reviews',
    });
    assert.equal(ok.spiffeId, 'spiffe://cluster.local/ns/default/sa/bookinfo-reviews');
  });

  test('a host certificate from another CA (same host name) is refused', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'vmesh-other-ca-'));
    try {
      const other = await CertificateAuthority.loadOrCreate({
        dir,
        trustDomain: 'cluster.local',
        logger: createLogger({ level: 'silent' }),
      });
      const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
      const csr = derToPem(buildCsr(privateKey, 'h2'), 'CERTIFICATE REQUEST');
      const forged = other.signCsr(csr, { uris: [hostSpiffeId('cluster.local', 'h2')], ttlSeconds: 3600, usage: 'client' });
      const host = {
        trustBundlePem: (hosts.h2 as HostCredentials).trustBundlePem,
        keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
        certPem: forged.certPem,
      };
      await assert.rejects(signWorkloadCert({ address: ctl.grpcAddress, host, namespace: 'default', serviceAccount: 'ratings' }), {
        code: 'VMESH_ERR_UNAUTHENTICATED',
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('SignWorkload is rate-limited per host', () => {
  test('a host over its burst gets VMESH_ERR_RATE_LIMITED with a retry time; another host is still served', async () => {
    const ctl = await startTestController({ flags: { signRate: '0.5', signBurst: '5' } });
    try {
      const facts = await gatherHostFacts();
      const hosts: Record<string, HostCredentials> = {};
      for (const h of ['h2', 'h3']) {
        const token = (await ctl.cli(['token', 'create', '--host', h])).stdout.trim();
        hosts[h] = await joinController({ address: ctl.grpcAddress, token, hostName: h, facts });
        const r = await ctl.cli(register(`w-${h}`, `sa-${h}`, h));
        assert.equal(r.code, 0, r.stderr);
      }
      const sign = (h: string) =>
        signWorkloadCert({
          address: ctl.grpcAddress,
          host: hosts[h] as HostCredentials,
          namespace: 'default',
          serviceAccount: `sa-${h}`,
        }).then(
          () => 'ok',
          (e: Error & { code?: string }) => `${e.code}: ${e.message}`,
        );
      const flood = await Promise.all(Array.from({ length: 20 }, () => sign('h2')));
      assert.equal(flood.filter((r) => r === 'ok').length, 5, flood.join('\n'));
      for (const r of flood.filter((x) => x !== 'ok')) {
        assert.match(r, /^VMESH_ERR_RATE_LIMITED: SignWorkload for host "h2": over its rate limit \(0\.5\/s, burst 5\); retry in \d+ ms$/);
      }
      assert.equal(await sign('h3'), 'ok', 'another host keeps being served');
    } finally {
      await ctl.stop();
    }
  });
});
