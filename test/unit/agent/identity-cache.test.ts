import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { IdentityCache, nsSa, uidMap } from '../../../src/agent/identity-cache.js';
import type { WorkloadCert } from '../../../src/ca/index.js';
import { createLogger } from '../../../src/lib/logger.js';

const logger = createLogger({ level: 'silent' });
const tmp = mkdtempSync(join(tmpdir(), 'vmesh-idcache-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** A self-signed P-256 certificate for a workload id (openssl, so the test needs nothing of the CA). */
function cert(sa: string): WorkloadCert {
  const spiffeId = `spiffe://cluster.local/ns/default/sa/${sa}`;
  const key = join(tmp, `${sa}.key`);
  const crt = join(tmp, `${sa}.crt`);
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      key,
      '-out',
      crt,
      '-days',
      '1',
      '-subj',
      `/CN=${sa}`,
      '-addext',
      `subjectAltName=URI:${spiffeId}`,
    ],
    { stdio: 'ignore' },
  );
  const pem = readFileSync(crt, 'utf8');
  const x = new X509Certificate(pem);
  return {
    spiffeId,
    keyPem: readFileSync(key, 'utf8'),
    certChainPem: pem,
    trustBundlePem: pem,
    notBefore: new Date(x.validFrom),
    notAfter: new Date(x.validTo),
  };
}

describe('the agent keeps workload identities on disk', () => {
  const a = cert('reviews');
  const b = cert('ratings');
  const workloads = [{ spiffeId: a.spiffeId, uid: 1500 }, { spiffeId: b.spiffeId }];

  test('saved state loads back whole, in a file only root reads', async () => {
    const dir = mkdtempSync(join(tmp, 'rt-'));
    const cache = new IdentityCache(dir, logger);
    cache.save(() => ({ workloads, certs: [a, b] }));
    await cache.flush();
    assert.equal(statSync(join(dir, 'workload-identities.json')).mode & 0o777, 0o600);
    const back = await new IdentityCache(dir, logger).load();
    assert.deepEqual(back.workloads, workloads);
    assert.deepEqual(back.certs, [a, b]);
    assert.deepEqual([...uidMap(back.workloads)], [[1500, a.spiffeId]]);
    assert.equal(nsSa(a.spiffeId), 'default/reviews');
  });

  test('the latest state is what is written when saves come in a burst', async () => {
    const dir = mkdtempSync(join(tmp, 'burst-'));
    const cache = new IdentityCache(dir, logger);
    cache.save(() => ({ workloads: [], certs: [a] }));
    cache.save(() => ({ workloads, certs: [b] }));
    await cache.flush();
    const back = await cache.load();
    assert.deepEqual(back.certs, [b]);
    assert.deepEqual(back.workloads, workloads);
  });

  test('expired certificates and keys that do not match are left out; no file or a damaged one is an empty state', async () => {
    const dir = mkdtempSync(join(tmp, 'bad-'));
    const cache = new IdentityCache(dir, logger);
    assert.deepEqual(await cache.load(), { workloads: [], certs: [] });
    cache.save(() => ({ workloads, certs: [a, { ...b, keyPem: a.keyPem }] }));
    await cache.flush();
    assert.deepEqual((await cache.load()).certs, [a]);
    assert.deepEqual((await cache.load(a.notAfter.getTime() + 1000)).certs, []);
    writeFileSync(join(dir, 'workload-identities.json'), '{not json');
    assert.deepEqual(await cache.load(), { workloads: [], certs: [] });
  });
});
