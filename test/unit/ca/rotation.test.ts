import assert from 'node:assert/strict';
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { CertificateAuthority, trustBundleSha256 } from '../../../src/ca/index.js';
import { buildCsr, derToPem, splitCertificates } from '../../../src/ca/x509.js';
import { createLogger } from '../../../src/lib/logger.js';

const logger = createLogger({ level: 'silent' });
const dir = mkdtempSync(join(tmpdir(), 'vmesh-rotation-'));
const load = () => CertificateAuthority.loadOrCreate({ dir, trustDomain: 'cluster.local', logger });
const sign = (ca: CertificateAuthority) => {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const csr = derToPem(buildCsr(privateKey, 'w'), 'CERTIFICATE REQUEST');
  return new X509Certificate(
    ca.signCsr(csr, { uris: ['spiffe://cluster.local/ns/default/sa/w'], ttlSeconds: 3600, usage: 'both' }).certPem,
  );
};

describe('CA root rotation: stage, activate, finish', () => {
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('each step keeps both roots trusted while either can have signed a live certificate, and survives a restart', async () => {
    const ca = await load();
    const old = sign(ca);
    const h0 = trustBundleSha256(ca.trustBundlePem());
    await ca.stageRoot();
    assert.equal(ca.rotationState().phase, 'staged');
    assert.equal(splitCertificates(ca.trustBundlePem()).length, 2);
    assert.notEqual(trustBundleSha256(ca.trustBundlePem()), h0);
    // Staged: the old root still signs.
    assert.ok(sign(ca).checkIssued(new X509Certificate(splitCertificates(ca.trustBundlePem())[0] ?? '')));
    await assert.rejects(ca.stageRoot(), { code: 'VMESH_ERR_CONFLICT' });
    const staged = trustBundleSha256(ca.trustBundlePem());
    assert.equal(trustBundleSha256((await load()).trustBundlePem()), staged, 'a restart keeps the staged root');

    const oldHash = ca.caHash();
    await ca.activateRoot();
    assert.equal(ca.rotationState().phase, 'activated');
    assert.notEqual(ca.caHash(), oldHash);
    const fresh = sign(ca);
    assert.ok(ca.issued(fresh) && ca.issued(old), 'certificates of both roots are the CA own during the rotation');
    assert.notEqual(trustBundleSha256(ca.trustBundlePem()), staged, 'the bundle order changes, so agents fetch again');
    const reloaded = await load();
    assert.equal(reloaded.caHash(), ca.caHash());
    assert.ok(reloaded.issued(old));

    await ca.retirePreviousRoot();
    assert.equal(ca.rotationState().phase, 'none');
    assert.equal(splitCertificates(ca.trustBundlePem()).length, 1);
    assert.equal(ca.issued(old), false, 'the old root no longer counts');
    assert.ok(ca.issued(fresh));
    assert.equal((await load()).issued(old), false);
  });

  test('an activation cut between its renames is completed at the next start', async () => {
    const ca = await load();
    await ca.stageRoot();
    const nextCert = join(dir, 'ca-next-cert.pem');
    const nextHash = ca.rotationState().next?.caHash;
    // What a crash after the key rename leaves: the new key beside the old certificate.
    renameSync(join(dir, 'ca-next-key.pem'), join(dir, 'ca-key.pem'));
    assert.ok(existsSync(nextCert));
    const recovered = await load();
    assert.equal(recovered.caHash(), nextHash);
  });

  test('a CA given with --ca-cert/--ca-key is not rotated here', async () => {
    const byo = await CertificateAuthority.loadOrCreate({
      dir: join(dir, 'unused'),
      trustDomain: 'cluster.local',
      certFile: join(dir, 'ca-cert.pem'),
      keyFile: join(dir, 'ca-key.pem'),
      logger,
    });
    assert.equal(byo.rotationState().rotatable, false);
    await assert.rejects(byo.stageRoot(), { code: 'VMESH_ERR_INVALID_CONFIG' });
  });
});
