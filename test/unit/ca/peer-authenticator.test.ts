import assert from 'node:assert/strict';
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { CertificateAuthority } from '../../../src/ca/ca.js';
import { HostRegistry } from '../../../src/ca/host-registry.js';
import { authenticatePeer, PeerAuthenticator, type PeerCall } from '../../../src/ca/join-server.js';
import { hostSpiffeId } from '../../../src/ca/spiffe.js';
import { buildCsr, derToPem } from '../../../src/ca/x509.js';
import { createLogger } from '../../../src/lib/logger.js';
import { FileStore } from '../../../src/store/file/file-store.js';
import { FACTS } from './controller-fixture.js';

let dir: string;
let store: FileStore;
let ca: CertificateAuthority;
let hosts: HostRegistry;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vmesh-peer-auth-'));
  store = await FileStore.open(dir);
  ca = await CertificateAuthority.loadOrCreate({
    dir: join(dir, 'ca'),
    trustDomain: 'cluster.local',
    logger: createLogger({ level: 'silent' }),
  });
  hosts = new HostRegistry(store);
});
after(async () => {
  await store?.close();
  await rm(dir, { recursive: true, force: true });
});

/** A host certificate from `by` for `name`, registered with the registry, as a call presenting it would carry it. */
async function hostCall(name: string, by = ca, register = true): Promise<PeerCall & { cert: X509Certificate }> {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const csr = derToPem(buildCsr(privateKey, name), 'CERTIFICATE REQUEST');
  const signed = by.signCsr(csr, { uris: [hostSpiffeId('cluster.local', name)], ttlSeconds: 3600, usage: 'client' });
  if (register) await hosts.register({ name, facts: FACTS, certSerial: signed.serial, certNotAfter: signed.notAfter });
  const cert = new X509Certificate(signed.certPem);
  // grpc-js hands out a fresh certificate object per call, with equal DER.
  return { cert, getAuthContext: () => ({ sslPeerCertificate: { raw: Buffer.from(cert.raw) } as never }), getPeer: () => '127.0.0.1:1' };
}

/** Counts how often the CA is asked whether it signed a certificate. */
function countingCa(): { ca: Pick<CertificateAuthority, 'trustDomain' | 'issued' | 'trustGeneration'>; checks: () => number } {
  let n = 0;
  return {
    ca: {
      trustDomain: ca.trustDomain,
      get trustGeneration() {
        return ca.trustGeneration;
      },
      issued: (c) => {
        n++;
        return ca.issued(c);
      },
    },
    checks: () => n,
  };
}

test('a certificate is verified once, yet every call sees the host removed or revoked at once', async () => {
  const counted = countingCa();
  const auth = new PeerAuthenticator(hosts, counted.ca);
  const call = await hostCall('pa1');
  for (let i = 0; i < 5; i++) assert.deepEqual(auth.authenticate(call), { ok: true, value: { host: 'pa1', serial: hostsSerial('pa1') } });
  assert.equal(counted.checks(), 1, 'the CA signature is checked once per certificate');
  await hosts.remove('pa1');
  const refused = auth.authenticate(call);
  assert.ok(!refused.ok && refused.error.code === 'VMESH_ERR_HOST_REVOKED', JSON.stringify(refused));
});

function hostsSerial(name: string): string {
  return hosts.get(name)?.certSerial ?? '';
}

test('a certificate of another CA is refused every time, and the cache never lets it in', async () => {
  const otherDir = await mkdtemp(join(tmpdir(), 'vmesh-peer-auth-other-'));
  try {
    const other = await CertificateAuthority.loadOrCreate({
      dir: otherDir,
      trustDomain: 'cluster.local',
      logger: createLogger({ level: 'silent' }),
    });
    const auth = new PeerAuthenticator(hosts, ca);
    const forged = await hostCall('pa2', other, false);
    for (let i = 0; i < 3; i++) {
      const r = auth.authenticate(forged);
      assert.ok(!r.ok && r.error.code === 'VMESH_ERR_UNAUTHENTICATED' && /not issued by this CA/.test(r.error.message), JSON.stringify(r));
    }
    const none = auth.authenticate({ getAuthContext: () => ({}), getPeer: () => '127.0.0.1:2' });
    assert.ok(!none.ok && none.error.code === 'VMESH_ERR_UNAUTHENTICATED');
  } finally {
    await rm(otherDir, { recursive: true, force: true });
  }
});

test('a root rotation re-verifies: once the old root is retired, its certificates stop authenticating', async () => {
  const counted = countingCa();
  const auth = new PeerAuthenticator(hosts, counted.ca);
  const call = await hostCall('pa3');
  assert.ok(auth.authenticate(call).ok);
  await ca.stageRoot();
  await ca.activateRoot();
  assert.ok(auth.authenticate(call).ok, 'the previous root is still trusted after activation');
  assert.equal(counted.checks(), 2, 'checked again after the trust changed');
  await ca.retirePreviousRoot();
  const r = auth.authenticate(call);
  assert.ok(!r.ok && /not issued by this CA/.test(r.error.message), JSON.stringify(r));
  assert.deepEqual(authenticatePeer(call, hosts, ca), r, 'the uncached form answers the same');
});

test('the cache is bounded: the oldest certificate is forgotten first and verified again when it returns', async () => {
  const counted = countingCa();
  const auth = new PeerAuthenticator(hosts, counted.ca, 2);
  const calls = [await hostCall('pa4'), await hostCall('pa5'), await hostCall('pa6')];
  for (const c of calls) assert.ok(auth.authenticate(c).ok);
  assert.equal(counted.checks(), 3);
  assert.ok(auth.authenticate(calls[2] as PeerCall).ok);
  assert.equal(counted.checks(), 3, 'the newest is remembered');
  assert.ok(auth.authenticate(calls[0] as PeerCall).ok);
  assert.equal(counted.checks(), 4, 'the oldest was forgotten');
});
