import assert from 'node:assert/strict';
import { createPrivateKey, generateKeyPairSync, X509Certificate } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { controllerServiceClient } from '../../../src/api/controller-proto.js';
import { CertificateAuthority } from '../../../src/ca/ca.js';
import { joinController, renewHostCert, shouldRenew } from '../../../src/ca/join-client.js';
import { createControllerServerCredentials } from '../../../src/ca/join-server.js';
import { hostSpiffeId } from '../../../src/ca/spiffe.js';
import { TokenService } from '../../../src/ca/tokens.js';
import { buildCsr, derToPem, readCertificate, spkiOf, subjectAltNames } from '../../../src/ca/x509.js';
import { createLogger } from '../../../src/lib/logger.js';
import { type Controller, FACTS, newCsrPem, rawCall, startController } from './controller-fixture.js';

const logger = createLogger({ level: 'silent' });

describe('Join and Renew over real TLS on 127.0.0.1', () => {
  let ctl: Controller;
  let otherDir: string;
  let otherCa: CertificateAuthority;
  const cleanups: Array<() => Promise<void>> = [];

  before(async () => {
    ctl = await startController();
    otherDir = await mkdtemp(join(tmpdir(), 'vmesh-other-ca-'));
    otherCa = await CertificateAuthority.loadOrCreate({ dir: otherDir, trustDomain: 'example.org', logger });
  });
  after(async () => {
    for (const c of cleanups) await c();
    await ctl.close();
    await rm(otherDir, { recursive: true, force: true });
  });

  const join_ = async (host: string) => {
    const { token } = await ctl.tokens.create({ host, ttlSeconds: 600 });
    return joinController({ address: ctl.address, token, hostName: host, facts: FACTS });
  };

  test('Join returns a host certificate naming the host id that chains to the trust bundle', async () => {
    const t0 = Date.now();
    const res = await join_('h1');
    const cert = new X509Certificate(res.certPem);
    const ca = new X509Certificate(res.trustBundlePem);
    assert.equal(res.trustBundlePem, ctl.ca.trustBundlePem());
    assert.ok(cert.checkIssued(ca) && cert.verify(ca.publicKey), 'chains to the bundle');
    assert.deepEqual(subjectAltNames(readCertificate(cert.raw)).uris, [hostSpiffeId('example.org', 'h1')]);
    assert.ok(spkiOf(cert.publicKey).equals(spkiOf(createPrivateKey(res.keyPem))), 'certifies the key made on the host');
    assert.ok(Math.abs(res.notAfter.getTime() - (t0 + 3600_000)) < 3000);
    const rec = ctl.hosts.get('h1');
    assert.deepEqual(rec?.facts, FACTS);
    assert.equal(rec?.certSerial, BigInt(`0x${cert.serialNumber}`).toString(16));
    assert.ok(ctl.tokens.list().every((t) => t.host !== 'h1' || t.used));
    assert.ok(shouldRenew(cert.validFrom ? new Date(cert.validFrom) : new Date(), res.notAfter, res.notAfter.getTime() - 1000));
    assert.ok(!shouldRenew(new Date(cert.validFrom), res.notAfter, Date.now()));
  });

  test('a token pinned to another CA fails with VMESH_ERR_CA_HASH_MISMATCH before any Join is sent', async () => {
    const { token, id } = await new TokenService(ctl.store, otherCa).create({ host: 'h3', ttlSeconds: 600 });
    const joinsBefore = ctl.calls.Join;
    await assert.rejects(joinController({ address: ctl.address, token, hostName: 'h3', facts: FACTS }), {
      code: 'VMESH_ERR_CA_HASH_MISMATCH',
      message: new RegExp(`pins ${otherCa.caHash()}`),
    });
    assert.equal(ctl.calls.Join, joinsBefore, 'the server saw no Join');
    assert.equal(ctl.tokens.list().find((t) => t.id === id)?.used, false);
  });

  test('a reused token is refused (and logged); a bad CSR is INVALID_ARGUMENT and does not burn the token', async () => {
    const { token } = await ctl.tokens.create({ host: 'h5', ttlSeconds: 600 });
    const bad = await rawCall(ctl.address, 'Join', { token, hostName: 'h5', csrPem: 'garbage' }, { trustPem: ctl.ca.trustBundlePem() });
    assert.ok(!bad.ok && bad.code === grpc.status.INVALID_ARGUMENT && bad.details.startsWith('VMESH_ERR_CSR_INVALID: '));
    await joinController({ address: ctl.address, token, hostName: 'h5', facts: FACTS });
    await assert.rejects(joinController({ address: ctl.address, token, hostName: 'h5', facts: FACTS }), { code: 'VMESH_ERR_TOKEN_USED' });
    const again = await rawCall(ctl.address, 'Join', { token, hostName: 'h5', csrPem: newCsrPem() }, { trustPem: ctl.ca.trustBundlePem() });
    assert.ok(!again.ok && again.code === grpc.status.UNAUTHENTICATED && again.details.startsWith('VMESH_ERR_TOKEN_USED: '));
    assert.ok(ctl.logs.some((l) => l.rpc === 'Join' && l.code === 'VMESH_ERR_TOKEN_USED' && l.level === 40));
  });

  test('Renew with the host certificate returns a later notAfter for a new key', async () => {
    const joined = await join_('h4');
    ctl.advance(5000);
    const renewed = await renewHostCert({
      address: ctl.address,
      keyPem: joined.keyPem,
      certPem: joined.certPem,
      trustBundlePem: joined.trustBundlePem,
    });
    assert.ok(renewed.notAfter.getTime() >= joined.notAfter.getTime() + 4000, `${renewed.notAfter} after ${joined.notAfter}`);
    assert.notEqual(renewed.keyPem, joined.keyPem);
    const cert = new X509Certificate(renewed.certPem);
    assert.deepEqual(subjectAltNames(readCertificate(cert.raw)).uris, [hostSpiffeId('example.org', 'h4')]);
    assert.equal(ctl.hosts.get('h4')?.certSerial, BigInt(`0x${cert.serialNumber}`).toString(16));
    // The renewed certificate authenticates in turn; keeping the key is possible too.
    const kept = await renewHostCert({ ...renewed, address: ctl.address, rotateKey: false });
    assert.equal(kept.keyPem, renewed.keyPem);
  });

  test('Renew without a client certificate is UNAUTHENTICATED', async () => {
    const r = await rawCall(ctl.address, 'Renew', { csrPem: newCsrPem() }, { trustPem: ctl.ca.trustBundlePem() });
    assert.ok(!r.ok);
    assert.equal(r.code, grpc.status.UNAUTHENTICATED);
    assert.match(r.details, /^VMESH_ERR_UNAUTHENTICATED: no verified client certificate/);
  });

  test('after hosts.remove(h2), Renew with its certificate is PERMISSION_DENIED / HOST_REVOKED; a new token re-joins', async () => {
    const h2 = await join_('h2');
    await ctl.hosts.remove('h2');
    const r = await rawCall(
      ctl.address,
      'Renew',
      { csrPem: newCsrPem() },
      { trustPem: h2.trustBundlePem, keyPem: h2.keyPem, certPem: h2.certPem },
    );
    assert.ok(!r.ok && r.code === grpc.status.PERMISSION_DENIED && r.details.startsWith('VMESH_ERR_HOST_REVOKED: '), JSON.stringify(r));
    await assert.rejects(renewHostCert({ address: ctl.address, ...h2 }), { code: 'VMESH_ERR_HOST_REVOKED' });
    const back = await join_('h2');
    assert.equal(ctl.hosts.get('h2')?.revoked, false);
    await renewHostCert({ address: ctl.address, ...back });
    await assert.rejects(renewHostCert({ address: ctl.address, ...h2 }), { code: 'VMESH_ERR_HOST_REVOKED' });
  });

  test('certificates of another CA are refused at TLS, both ways', async () => {
    const key = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
    const foreign = otherCa.signCsr(derToPem(buildCsr(key, 'h1'), 'CERTIFICATE REQUEST'), {
      uris: [hostSpiffeId('example.org', 'h1')],
      ttlSeconds: 600,
      usage: 'client',
    });
    const keyPem = key.export({ type: 'pkcs8', format: 'pem' }).toString();
    // Our TLS does not verify the foreign client certificate, so the call has no peer identity.
    const r = await rawCall(
      ctl.address,
      'Renew',
      { csrPem: newCsrPem() },
      { trustPem: ctl.ca.trustBundlePem(), keyPem, certPem: foreign.certPem },
    );
    assert.ok(!r.ok && r.code === grpc.status.UNAUTHENTICATED, JSON.stringify(r));
    // An agent that trusts only the other CA refuses our controller during the handshake: no RPC reaches it.
    const renewsBefore = ctl.calls.Renew;
    await assert.rejects(
      renewHostCert({ address: ctl.address, keyPem, certPem: foreign.certPem, trustBundlePem: otherCa.trustBundlePem(), timeoutMs: 5000 }),
      { code: 'VMESH_ERR_UNAVAILABLE', message: /certificate/ },
    );
    assert.equal(ctl.calls.Renew, renewsBefore);
  });

  test('the controller is recognised by its SPIFFE id when the address is not among its names; a host certificate cannot pose as it', async () => {
    const named = await startController({ serverDnsNames: ['controller.example.org'], serverIps: [] });
    cleanups.push(() => named.close());
    const { token } = await named.tokens.create({ host: 'h6', ttlSeconds: 600 });
    const res = await joinController({ address: named.address, token, hostName: 'h6', facts: FACTS });
    assert.ok(res.certPem.includes('BEGIN CERTIFICATE'));

    // An imposter serving a certificate from the same CA that names a host (serverAuth included), not the controller.
    const key = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
    const hostCert = ctl.ca.signCsr(derToPem(buildCsr(key, 'h7'), 'CERTIFICATE REQUEST'), {
      uris: [hostSpiffeId('example.org', 'h7')],
      ttlSeconds: 600,
      usage: 'both',
    });
    let imposterJoins = 0;
    const imposter = new grpc.Server();
    imposter.addService(controllerServiceClient().service, {
      Join: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => {
        imposterJoins++;
        cb({ code: grpc.status.INTERNAL });
      },
    });
    const { credentials } = createControllerServerCredentials(ctl.ca, {
      ...hostCert,
      keyPem: key.export({ type: 'pkcs8', format: 'pem' }).toString(),
      chainPem: hostCert.certPem + ctl.ca.trustBundlePem(),
    });
    const port = await new Promise<number>((resolve, reject) =>
      imposter.bindAsync('127.0.0.1:0', credentials, (e, p) => (e ? reject(e) : resolve(p))),
    );
    cleanups.push(async () => imposter.forceShutdown());
    const stolen = await ctl.tokens.create({ host: 'h7', ttlSeconds: 600 });
    await assert.rejects(
      joinController({ address: `127.0.0.1:${port}`, token: stolen.token, hostName: 'h7', facts: FACTS, timeoutMs: 5000 }),
      {
        code: 'VMESH_ERR_UNAVAILABLE',
        message: /altnames/,
      },
    );
    assert.equal(imposterJoins, 0, 'the token never reached the imposter');
  });
});
