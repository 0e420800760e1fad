import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { gatherHostFacts } from '../../../src/ca/host-facts.js';
import { HostRegistry } from '../../../src/ca/host-registry.js';
import { FileStore } from '../../../src/store/file/file-store.js';
import { FACTS } from './controller-fixture.js';

let dir: string;
let store: FileStore;
let clock = Date.parse('2030-01-01T00:00:00Z');

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vmesh-hosts-'));
  store = await FileStore.open(dir);
});
after(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

test('register, renew, remove, re-join: which serials authenticate and which are revoked', async () => {
  const hosts = new HostRegistry(store, () => clock);
  const notAfter = new Date(clock + 3600_000);
  const rec = await hosts.register({ name: 'h1', facts: FACTS, certSerial: '00AB01', certNotAfter: notAfter });
  assert.equal(rec.certSerial, 'ab01', 'serials are canonical: lower-case, no leading zeros');
  assert.equal(rec.revoked, false);
  assert.deepEqual(hosts.get('h1')?.facts, FACTS);
  assert.ok(hosts.checkCertificate('h1', 'AB01').ok);
  assert.equal(hosts.checkCertificate('h1', 'ffff').ok, false);
  const unknown = hosts.checkCertificate('nope', 'ab01');
  assert.ok(!unknown.ok && unknown.error.code === 'VMESH_ERR_UNAUTHENTICATED');

  await hosts.recordCertificate('h1', { serial: 'cd02', notAfter });
  assert.equal(hosts.get('h1')?.certSerial, 'cd02');
  assert.ok(hosts.checkCertificate('h1', 'ab01').ok, 'the previous certificate stays valid until it expires');

  clock += 10_000;
  await hosts.remove('h1');
  assert.equal(hosts.get('h1')?.revoked, true);
  for (const s of ['ab01', 'cd02']) {
    const r = hosts.checkCertificate('h1', s);
    assert.ok(!r.ok && r.error.code === 'VMESH_ERR_HOST_REVOKED');
  }
  await assert.rejects(hosts.recordCertificate('h1', { serial: 'ee03', notAfter }), { code: 'VMESH_ERR_HOST_REVOKED' });

  await hosts.register({ name: 'h1', facts: FACTS, certSerial: 'ff04', certNotAfter: notAfter });
  assert.equal(hosts.get('h1')?.revoked, false, 're-joining clears revoked');
  assert.ok(hosts.checkCertificate('h1', 'ff04').ok);
  const old = hosts.checkCertificate('h1', 'ab01');
  assert.ok(!old.ok && old.error.code === 'VMESH_ERR_HOST_REVOKED', 'certificates from before the removal stay refused');

  await assert.rejects(hosts.remove('ghost'), { code: 'VMESH_ERR_NOT_FOUND' });
  assert.deepEqual(
    hosts.list().map((h) => h.name),
    ['h1'],
  );
  assert.ok(!('liveCerts' in (hosts.get('h1') ?? {})), 'records do not expose the internal serial lists');
});

test('touch updates lastSeen at most every 30 s', async () => {
  const hosts = new HostRegistry(store, () => clock);
  await hosts.register({ name: 'h2', facts: FACTS, certSerial: '01', certNotAfter: new Date(clock + 3600_000) });
  const first = hosts.get('h2')?.lastSeen;
  clock += 5_000;
  await hosts.touch('h2');
  assert.equal(hosts.get('h2')?.lastSeen, first);
  clock += 30_000;
  await hosts.touch('h2');
  assert.equal(hosts.get('h2')?.lastSeen, new Date(clock).toISOString());
});

test('gatherHostFacts describes this machine without loopback or link-local addresses', async () => {
  const f = await gatherHostFacts();
  assert.equal(f.hostname, hostname());
  assert.ok(f.kernel.length > 0 && f.arch.length > 0 && f.osDistro.length > 0);
  assert.ok(f.cpuCores >= 1 && f.memoryTotalBytes > 2 ** 20);
  for (const ip of [...f.ipv4, ...f.ipv6]) assert.ok(!/^(127\.|::1$|fe80:)/i.test(ip), ip);
});
