import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, createPrivateKey, generateKeyPairSync, X509Certificate } from 'node:crypto';
import { chmod, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CertificateAuthority } from '../../../src/ca/ca.js';
import { readBitString, readDer } from '../../../src/ca/der.js';
import { buildCsr, derToPem, Oid, pemBlocks, readCertificate, spkiOf, subjectAltNames } from '../../../src/ca/x509.js';
import { createLogger } from '../../../src/lib/logger.js';

const logger = createLogger({ level: 'silent' });
let tmp: string;

before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'vmesh-ca-'));
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

const spkiHash = (pem: string) =>
  `sha256:${createHash('sha256')
    .update(spkiOf(new X509Certificate(pem).publicKey))
    .digest('hex')}`;

function keyUsageByte(pem: string): number {
  const ku = readCertificate(new X509Certificate(pem).raw).extensions.get(Oid.keyUsage);
  assert.ok(ku?.critical, 'keyUsage present and critical');
  return readBitString(readDer(ku.value))[0] ?? 0;
}

function openssl(args: string[], input?: string): string {
  return execFileSync('openssl', args, { input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
}

describe('CA creation and loading', () => {
  test('first start creates a P-256 root with a 0600 key; a later start loads the same one', async () => {
    const dir = join(tmp, 'created');
    const ca = await CertificateAuthority.loadOrCreate({ dir, trustDomain: 'example.org', logger });
    assert.equal((await stat(join(dir, 'ca-key.pem'))).mode & 0o777, 0o600);
    assert.equal((await stat(join(dir, 'ca-cert.pem'))).mode & 0o777, 0o644);
    assert.deepEqual((await readdir(dir)).sort(), ['ca-cert.pem', 'ca-key.pem']);

    const root = new X509Certificate(ca.certPem);
    assert.ok(root.ca);
    assert.equal(root.subject, 'O=vmesh\nCN=vmesh root example.org');
    assert.ok(root.checkIssued(root) && root.verify(root.publicKey), 'self-signed');
    assert.equal(root.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    const years = (Date.parse(root.validTo) - Date.parse(root.validFrom)) / (365 * 24 * 3600 * 1000);
    assert.ok(years > 9.9 && years < 10.1, `validity ${years} years`);
    assert.equal(keyUsageByte(ca.certPem), 0x06, 'keyCertSign | cRLSign');
    assert.match(ca.caHash(), /^sha256:[0-9a-f]{64}$/);
    assert.equal(ca.caHash(), spkiHash(ca.certPem));
    assert.equal(ca.trustBundlePem(), ca.certPem);

    const again = await CertificateAuthority.loadOrCreate({ dir, trustDomain: 'example.org', logger });
    assert.equal(again.certPem, ca.certPem);
    assert.equal(again.caHash(), ca.caHash());
  });

  test('a certificate without its key is refused, not silently replaced', async () => {
    const dir = join(tmp, 'keyless');
    await CertificateAuthority.loadOrCreate({ dir, trustDomain: 'example.org', logger });
    await rm(join(dir, 'ca-key.pem'));
    await assert.rejects(CertificateAuthority.loadOrCreate({ dir, trustDomain: 'example.org', logger }), {
      code: 'VMESH_ERR_INVALID_CONFIG',
      message: /ca-key\.pem is missing/,
    });
  });

  test('a bring-your-own CA is used as given and never written', async () => {
    const src = await CertificateAuthority.loadOrCreate({ dir: join(tmp, 'byo-src'), trustDomain: 'example.org', logger });
    const certFile = join(tmp, 'byo-src', 'ca-cert.pem');
    const keyFile = join(tmp, 'byo-src', 'ca-key.pem');
    await chmod(certFile, 0o444);
    await chmod(keyFile, 0o400);
    const before = { cert: await readFile(certFile, 'utf8'), mtime: (await stat(certFile)).mtimeMs };
    const dir = join(tmp, 'byo-data');
    const ca = await CertificateAuthority.loadOrCreate({ dir, trustDomain: 'example.org', certFile, keyFile, logger });
    assert.equal(ca.caHash(), src.caHash());
    assert.equal(await readFile(certFile, 'utf8'), before.cert);
    assert.equal((await stat(certFile)).mtimeMs, before.mtime);
    await assert.rejects(readdir(dir), { code: 'ENOENT' }, 'nothing written to the data dir');
    const leaf = ca.signCsr(
      derToPem(buildCsr(generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey, 'x'), 'CERTIFICATE REQUEST'),
      {
        uris: ['spiffe://example.org/vmesh/host/x'],
        ttlSeconds: 60,
        usage: 'client',
      },
    );
    assert.ok(new X509Certificate(leaf.certPem).verify(new X509Certificate(src.certPem).publicKey));
  });

  test('a bring-your-own RSA CA made by openssl signs leaves openssl verifies; bad BYO pairs are refused', async () => {
    const dir = join(tmp, 'rsa');
    const keyFile = join(tmp, 'rsa-key.pem');
    const certFile = join(tmp, 'rsa-cert.pem');
    openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', certFile, '-subj', '/CN=byo rsa', '-days', '2']);
    const ca = await CertificateAuthority.loadOrCreate({ dir, trustDomain: 'example.org', certFile, keyFile, logger });
    const rsaKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    const leaf = ca.signCsr(derToPem(buildCsr(rsaKey, 'r'), 'CERTIFICATE REQUEST'), {
      dnsNames: ['svc.example.org'],
      ttlSeconds: 600,
      usage: 'server',
    });
    assert.equal(keyUsageByte(leaf.certPem), 0xa0, 'digitalSignature | keyEncipherment for an RSA key');
    const leafFile = join(tmp, 'rsa-leaf.pem');
    await writeFile(leafFile, leaf.certPem);
    assert.match(openssl(['verify', '-CAfile', certFile, '-purpose', 'sslserver', leafFile]), /: OK/);

    const otherKey = join(tmp, 'other-key.pem');
    await writeFile(otherKey, generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
    await assert.rejects(CertificateAuthority.loadOrCreate({ dir, trustDomain: 'example.org', certFile, keyFile: otherKey, logger }), {
      code: 'VMESH_ERR_INVALID_CONFIG',
      message: /does not belong to the certificate/,
    });
    await assert.rejects(CertificateAuthority.loadOrCreate({ dir, trustDomain: 'example.org', certFile, logger }), {
      code: 'VMESH_ERR_INVALID_CONFIG',
      message: /must be given together/,
    });
    await assert.rejects(CertificateAuthority.loadOrCreate({ dir, trustDomain: 'example.org', certFile: leafFile, keyFile, logger }), {
      code: 'VMESH_ERR_INVALID_CONFIG',
    });
  });
});

describe('signCsr', () => {
  let ca: CertificateAuthority;
  before(async () => {
    ca = await CertificateAuthority.loadOrCreate({ dir: join(tmp, 'signer'), trustDomain: 'example.org', logger });
  });

  test('ignores the SANs an (openssl-made) CSR asks for and puts exactly the ones the CA chooses', async () => {
    const keyFile = join(tmp, 'csr-key.pem');
    const csrPem = openssl([
      'req',
      '-new',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      keyFile,
      '-subj',
      '/CN=admin',
      '-addext',
      'subjectAltName=DNS:evil.example,URI:spiffe://example.org/ns/kube-system/sa/admin,IP:10.0.0.1',
    ]);
    const t0 = Date.now();
    const signed = ca.signCsr(csrPem, {
      uris: ['spiffe://example.org/vmesh/host/h1'],
      ips: ['198.18.0.12', '2001:db8::1'],
      ttlSeconds: 3600,
      usage: 'client',
    });
    const cert = new X509Certificate(signed.certPem);
    assert.deepEqual(subjectAltNames(readCertificate(cert.raw)), {
      uris: ['spiffe://example.org/vmesh/host/h1'],
      dnsNames: [],
      ips: ['198.18.0.12', '2001:db8::1'],
    });
    assert.equal(cert.subject, undefined, 'subject is the CA’s choice too (empty, SAN critical)');
    assert.ok(readCertificate(cert.raw).extensions.get(Oid.subjectAltName)?.critical);
    assert.equal(cert.ca, false);
    assert.deepEqual(cert.keyUsage, ['1.3.6.1.5.5.7.3.2'], 'extKeyUsage clientAuth only');
    assert.equal(keyUsageByte(signed.certPem), 0x80, 'digitalSignature only for an EC key');
    assert.ok(ca.issued(cert));
    assert.ok(spkiOf(cert.publicKey).equals(spkiOf(createPrivateKey(await readFile(keyFile, 'utf8')))), 'certifies the CSR key');
    assert.equal(signed.serial, BigInt(`0x${cert.serialNumber}`).toString(16));
    assert.ok(signed.serial.length >= 25, '~128-bit serial');
    assert.equal(signed.notAfter.getTime(), Date.parse(cert.validTo));
    assert.ok(Math.abs(signed.notAfter.getTime() - (t0 + 3600_000)) < 2000);
    const backdate = t0 - Date.parse(cert.validFrom);
    assert.ok(backdate >= 58_000 && backdate <= 62_000, `notBefore ${backdate} ms back`);
    assert.notEqual(
      ca.signCsr(csrPem, { uris: ['spiffe://example.org/vmesh/host/h1'], ttlSeconds: 60, usage: 'both' }).serial,
      signed.serial,
    );
  });

  test('interleaved signings each carry their own identity and usages (repeated extensions are encoded once)', () => {
    const csrFor = (name: string) =>
      derToPem(buildCsr(generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey, name), 'CERTIFICATE REQUEST');
    const asks = [
      { uris: ['spiffe://example.org/ns/a/sa/x'], usage: 'both', eku: ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2'] },
      { uris: ['spiffe://example.org/vmesh/host/h9'], usage: 'client', eku: ['1.3.6.1.5.5.7.3.2'] },
      { uris: ['spiffe://example.org/ns/a/sa/y'], dnsNames: ['y.example'], usage: 'server', eku: ['1.3.6.1.5.5.7.3.1'] },
      { uris: ['spiffe://example.org/ns/a/sa/x'], usage: 'both', eku: ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2'] },
      { uris: ['spiffe://example.org/ns/a/sa/y'], usage: 'server', eku: ['1.3.6.1.5.5.7.3.1'] },
    ] as const;
    for (const round of [1, 2]) {
      for (const a of asks) {
        const { eku, ...opts } = a;
        const cert = new X509Certificate(ca.signCsr(csrFor('w'), { ...opts, ttlSeconds: 600 }).certPem);
        const sans = subjectAltNames(readCertificate(cert.raw));
        assert.deepEqual(sans.uris, a.uris, `round ${round}: ${a.uris}`);
        assert.deepEqual(sans.dnsNames, 'dnsNames' in a ? a.dnsNames : [], `round ${round}: DNS names of ${a.uris}`);
        assert.deepEqual([...(cert.keyUsage ?? [])].sort(), [...eku], `round ${round}: extKeyUsage for ${a.usage}`);
        assert.ok(ca.issued(cert));
      }
    }
  });

  test('rejects a tampered CSR, garbage, and weak keys with VMESH_ERR_CSR_INVALID', () => {
    const key = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
    const der = buildCsr(key, 'honest-host');
    const at = der.indexOf(Buffer.from('honest-host'));
    assert.ok(at > 0);
    const tampered = Buffer.from(der);
    tampered.write('forged', at, 'ascii');
    const opts = { uris: ['spiffe://example.org/vmesh/host/h'], ttlSeconds: 60, usage: 'client' } as const;
    assert.ok(ca.signCsr(derToPem(der, 'CERTIFICATE REQUEST'), opts).certPem);
    assert.throws(() => ca.signCsr(derToPem(tampered, 'CERTIFICATE REQUEST'), opts), {
      code: 'VMESH_ERR_CSR_INVALID',
      message: /self-signature does not verify/,
    });
    assert.throws(() => ca.signCsr('not a csr', opts), { code: 'VMESH_ERR_CSR_INVALID' });
    assert.throws(() => ca.signCsr(derToPem(Buffer.from([0x30, 0x03, 0x02, 0x01, 0x00]), 'CERTIFICATE REQUEST'), opts), {
      code: 'VMESH_ERR_CSR_INVALID',
    });
    const weak = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey;
    assert.throws(() => ca.signCsr(derToPem(buildCsr(weak, 'w'), 'CERTIFICATE REQUEST'), opts), {
      code: 'VMESH_ERR_CSR_INVALID',
      message: /1024 bits/,
    });
    // EC keys: P-256 and P-384 only; the curve is read from the CSR's key, openssl-made here with explicit parameters too.
    const p521 = generateKeyPairSync('ec', { namedCurve: 'secp521r1' }).privateKey;
    assert.throws(() => ca.signCsr(derToPem(buildCsr(p521, 'w'), 'CERTIFICATE REQUEST'), opts), {
      code: 'VMESH_ERR_CSR_INVALID',
      message: /EC curve 1\.3\.132\.0\.35/,
    });
    const p384 = generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).privateKey;
    assert.ok(ca.signCsr(derToPem(buildCsr(p384, 'w'), 'CERTIFICATE REQUEST'), opts).certPem);
    const explicitKey = join(tmp, 'explicit-p256.pem');
    openssl(['ecparam', '-name', 'prime256v1', '-param_enc', 'explicit', '-genkey', '-noout', '-out', explicitKey]);
    const explicitCsr = openssl(['req', '-new', '-key', explicitKey, '-subj', '/CN=w']);
    assert.throws(() => ca.signCsr(explicitCsr, opts), { code: 'VMESH_ERR_CSR_INVALID', message: /EC curve/ });
    assert.throws(
      () => ca.signCsr(derToPem(der, 'CERTIFICATE REQUEST'), { ttlSeconds: 60, usage: 'client' }),
      /no subject alternative names/,
    );
  });

  test('issueServerCert: fresh key, the controller id and addresses, chain = leaf + CA', () => {
    const s = ca.issueServerCert({ dnsNames: ['controller.example.org'], ips: ['127.0.0.1', '::1'] });
    const blocks = pemBlocks(s.chainPem);
    assert.equal(blocks.length, 2);
    assert.ok(new X509Certificate(blocks[1]?.der ?? Buffer.alloc(0)).ca);
    const cert = new X509Certificate(s.certPem);
    assert.deepEqual(subjectAltNames(readCertificate(cert.raw)), {
      uris: ['spiffe://example.org/vmesh/controller'],
      dnsNames: ['controller.example.org'],
      ips: ['127.0.0.1', '::1'],
    });
    assert.deepEqual(cert.keyUsage, ['1.3.6.1.5.5.7.3.1']);
    assert.ok(spkiOf(cert.publicKey).equals(spkiOf(createPrivateKey(s.keyPem))));
    assert.ok(ca.issued(cert));
  });
});
