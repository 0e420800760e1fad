import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CertificateAuthority } from '../../src/ca/index.js';
import { buildCsr, derToPem } from '../../src/ca/x509.js';
import { createLogger } from '../../src/lib/logger.js';
import { createLab, type Lab, type LabHost, type LabProcess, requireLabTools } from './lab.js';

// Mutual TLS on the wire between two meshed hosts: h1 runs the controller (and plays an unmeshed stranger),
// h2 an agent and a client app, h3 an agent and the `reviews` server. Workload certificates are short-lived
// here (20 s) so a renewal happens while the test drives traffic.
requireLabTools(['ip', 'nft', 'setpriv', 'tcpdump']);

const ROOT = join(import.meta.dirname, '..', '..');
const CLI = join(ROOT, 'src', 'cli', 'main.ts');
const FIX = join(import.meta.dirname, 'fixtures');
const node = process.execPath;
const APP = { uid: 1500, gid: 1500 };
const MARKER = 'plaintext-marker-7f3a9c';
const TTL_S = 20;
const REVIEWS_ID = 'spiffe://cluster.local/ns/default/sa/reviews';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function admin(host: LabHost, path: string): Promise<unknown> {
  const r = await host.execOk(node, [
    '-e',
    `require('http').get('http://127.0.0.1:15000${path}',r=>{let b='';r.on('data',c=>b+=c);r.on('end',()=>console.log(b))})`,
  ]);
  return JSON.parse(r);
}

/** tcpdump says on stderr when it captures; packets before that are not in the file. */
async function listening(dump: LabProcess): Promise<void> {
  const end = Date.now() + 15_000;
  while (!/listening on/.test(dump.stderr())) {
    if (Date.now() > end) throw new Error(`tcpdump did not start: ${dump.stderr()}`);
    await sleep(100);
  }
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs: number, diag: () => string): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`${what}: not within ${timeoutMs} ms\n${diag()}`);
    await sleep(250);
  }
}

describe('identity on the wire: workload SVIDs, mutual TLS between proxies, rotation', () => {
  let lab: Lab;
  let h1: LabHost;
  let h2: LabHost;
  let h3: LabHost;
  const agents: LabProcess[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'vmesh-identity-'));
  const ctlDir = join(dir, 'ctl');
  const api = 'https://127.0.0.1:15014';
  const cli = (args: string[]) =>
    h1.execOk(node, ['--import', 'tsx', CLI, ...args, '--controller', api, '--data-dir', ctlDir], { timeoutMs: 30_000 });
  const apply = (yaml: string) => {
    const f = join(dir, `cfg-${Date.now()}.yaml`);
    writeFileSync(f, yaml);
    return cli(['config', 'apply', '-f', f]);
  };
  const callReviews = async () =>
    JSON.parse(await h2.execOk(node, ['-e', FETCH], { ...APP, timeoutMs: 20_000 })) as { marker: string; xfcc: string | null };
  const FETCH =
    "require('http').get('http://reviews:9080/',r=>{let b='';r.on('data',c=>b+=c);r.on('end',()=>console.log(r.statusCode===200?b:JSON.stringify({status:r.statusCode,b})))}).on('error',e=>console.log(JSON.stringify({error:e.code})))";
  const diag = () => agents.map((a) => a.stderr().slice(-1500)).join('\n---\n');

  before(async () => {
    lab = await createLab({ hosts: 3, ipv6: false });
    [h1, h2, h3] = lab.hosts as [LabHost, LabHost, LabHost];
    for (const h of [h2, h3]) {
      mkdirSync(`/etc/netns/${h.netns}`, { recursive: true });
      writeFileSync(`/etc/netns/${h.netns}/resolv.conf`, 'nameserver 198.18.0.254\n');
    }
    const controller = h1.spawn(node, [
      '--import',
      'tsx',
      CLI,
      'controller',
      '--data-dir',
      ctlDir,
      '--advertise',
      h1.ipv4,
      '--workload-cert-ttl',
      String(TTL_S),
      '--host-timeout',
      '6',
    ]);
    const server = h3.spawn(node, [join(FIX, 'http-whoami.mjs'), '9080', MARKER]);
    await Promise.all([controller.waitForLine(/"ready":true/, 30_000), server.waitForLine(/ready/)]);
    await cli([
      'workload',
      'register',
      '--name',
      'reviews-1',
      '--service',
      'reviews',
      '--service-account',
      'reviews',
      '--address',
      h3.ipv4,
      '--port',
      'http:9080',
      '--host',
      'h3',
      '--no-wait',
    ]);
    // Two client workloads on h2, each running as its own uid; uid 1502 runs there too but is not registered.
    for (const [name, uid] of [
      ['productpage', 1500],
      ['ratings', 1501],
    ] as const) {
      await cli([
        'workload',
        'register',
        '--name',
        name,
        '--service',
        name,
        '--service-account',
        name,
        '--address',
        h2.ipv4,
        '--port',
        'http:9999',
        '--host',
        'h2',
        '--uid',
        String(uid),
        '--no-wait',
      ]);
    }
    for (const [host, name] of [
      [h2, 'h2'],
      [h3, 'h3'],
    ] as const) {
      const adir = join(dir, name);
      mkdirSync(adir);
      writeFileSync(join(adir, 'token'), (await cli(['token', 'create', '--host', name])).trim(), { mode: 0o600 });
      const args = ['--import', 'tsx', CLI, 'agent', '--controller', `${h1.ipv4}:15012`, '--token-file', join(adir, 'token')];
      agents.push(host.spawn(node, [...args, '--data-dir', adir, '--host-name', name], { uid: 0, gid: 1337 }));
    }
    await Promise.all(agents.map((a) => a.waitForLine(/"ready":true/, 30_000)));
    for (const h of [h2, h3]) {
      await until(
        'capture installed',
        async () => ((await h.execOk('nft', ['list', 'tables'])).includes('inet vmesh') ? true : undefined),
        30_000,
        diag,
      );
    }
    await until(
      'h2 holds both client SVIDs',
      async () => ((await admin(h2, '/certs')) as Array<{ spiffeId: string }>).length >= 2 || undefined,
      30_000,
      diag,
    );
    await until(
      'h3 holds the reviews SVID',
      async () => ((await admin(h3, '/certs')) as Array<{ spiffeId: string }>).find((c) => c.spiffeId === REVIEWS_ID),
      30_000,
      diag,
    );
  });
  after(async () => {
    await lab?.teardown();
    for (const h of [h2, h3]) if (h) rmSync(`/etc/netns/${h.netns}`, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  });

  test('a request by name crosses the hosts over mTLS: the server side sees the client proxy identity and presents its SVID', async () => {
    const r = await until(
      'an mTLS answer',
      async () => {
        const x = await callReviews();
        return x.xfcc ? x : undefined;
      },
      20_000,
      diag,
    );
    assert.equal(r.marker, MARKER);
    assert.match(r.xfcc ?? '', new RegExp(`By=${REVIEWS_ID}`));
    // The proxy is one process per core, run as the unprivileged proxy user, not inside the root agent.
    const { pids } = (await admin(h2, '/proxy')) as { pids: number[] };
    assert.equal(pids.length, availableParallelism());
    for (const pid of pids) assert.match(readFileSync(`/proc/${pid}/status`, 'utf8'), /^Uid:\s+1337\s+1337/m);
    assert.match(r.xfcc ?? '', /URI=spiffe:\/\/cluster\.local\/ns\/default\/sa\/productpage$/);
  });

  test('two workloads on one host present two identities (by the uid that opened the socket); an unregistered uid has none', async () => {
    const as = async (uid: number) =>
      JSON.parse(await h2.execOk(node, ['-e', FETCH], { uid, gid: uid, timeoutMs: 20_000 })) as { marker: string; xfcc: string | null };
    const [a, b, c] = [await as(1500), await as(1501), await as(1502)];
    assert.match(a.xfcc ?? '', /URI=spiffe:\/\/cluster\.local\/ns\/default\/sa\/productpage$/);
    assert.match(b.xfcc ?? '', /URI=spiffe:\/\/cluster\.local\/ns\/default\/sa\/ratings$/);
    // No mesh identity: the call goes plaintext, which the server side (PERMISSIVE) still accepts.
    assert.equal(c.marker, MARKER);
    assert.equal(c.xfcc, null);
  });

  test('a packet capture on the wire between meshed hosts holds no plaintext HTTP (a plaintext call in the same capture does)', async () => {
    const pcap = join(dir, 'wire.pcap');
    const dump = h3.spawn('tcpdump', ['-i', 'eth0', '--immediate-mode', '-U', '-w', pcap, 'tcp port 9080 or tcp port 15006']);
    await listening(dump);
    for (let i = 0; i < 5; i++) assert.equal((await callReviews()).marker, MARKER);
    // The control: the stranger h1 (no agent, PERMISSIVE) calls in plaintext while the same capture runs.
    const out = await h1.execOk(node, ['-e', FETCH.replace('reviews:9080', `${h3.ipv4}:9080`)]);
    assert.match(out, new RegExp(MARKER));
    await sleep(500);
    await dump.stop();
    const read = async (peer: string) => (await h3.execOk('tcpdump', ['-r', pcap, '-A', '-nn', `host ${peer}`])).toString();
    const mesh = await read(h2.ipv4);
    const plain = await read(h1.ipv4);
    assert.ok(mesh.split('\n').length > 20, `the capture saw the mesh traffic: ${mesh.slice(0, 500)}`);
    assert.equal(mesh.includes(MARKER), false, 'the marker crossed the wire in plaintext between the meshed hosts');
    assert.equal(mesh.includes('HTTP/1.1'), false, 'HTTP crossed the wire in plaintext between the meshed hosts');
    assert.ok(plain.includes(MARKER), `the control capture must see the plaintext marker: ${plain.slice(-1500)}`);
  });

  test('peers with a certificate from another CA, an expired one, or a SPIFFE id the policy does not allow are refused', async () => {
    const real = await CertificateAuthority.loadOrCreate({
      dir: join(ctlDir, 'ca'),
      trustDomain: 'cluster.local',
      logger: createLogger({ level: 'silent' }),
    });
    const other = await CertificateAuthority.loadOrCreate({
      dir: join(dir, 'other-ca'),
      trustDomain: 'cluster.local',
      logger: createLogger({ level: 'silent' }),
    });
    const past = await CertificateAuthority.loadOrCreate({
      dir: join(ctlDir, 'ca'),
      trustDomain: 'cluster.local',
      logger: createLogger({ level: 'silent' }),
      now: () => Date.now() - 3 * 3600_000,
    });
    const issue = (ca: CertificateAuthority, name: string, sa: string) => {
      const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
      const csr = derToPem(buildCsr(privateKey, sa), 'CERTIFICATE REQUEST');
      const signed = ca.signCsr(csr, { uris: [`spiffe://cluster.local/ns/default/sa/${sa}`], ttlSeconds: 3600, usage: 'both' });
      writeFileSync(join(dir, `${name}.crt`), signed.certPem);
      writeFileSync(join(dir, `${name}.key`), privateKey.export({ type: 'pkcs8', format: 'pem' }).toString());
    };
    issue(real, 'good', 'productpage');
    issue(real, 'intruder', 'intruder');
    issue(other, 'foreign', 'productpage');
    issue(past, 'expired', 'productpage');
    writeFileSync(join(dir, 'ca.crt'), real.trustBundlePem());
    await apply(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: reviews, namespace: default}
spec:
  action: ALLOW
  rules:
  - from:
    - source: {principals: [cluster.local/ns/default/sa/productpage]}
`);
    const probe = async (name: string) =>
      JSON.parse(
        await h1.execOk(node, [
          join(FIX, 'mtls-probe.mjs'),
          h3.ipv4,
          '9080',
          join(dir, `${name}.crt`),
          join(dir, `${name}.key`),
          join(dir, 'ca.crt'),
        ]),
      ) as { status?: number; error?: string };
    await until('the policy is applied on h3', async () => ((await probe('intruder')).status === 403 ? true : undefined), 20_000, diag);
    assert.deepEqual(await probe('good'), { status: 200 });
    assert.ok((await probe('foreign')).error, 'a certificate of another CA must fail the handshake');
    assert.ok((await probe('expired')).error, 'an expired certificate must fail the handshake');
    await apply(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: reviews, namespace: default}
spec:
  action: ALLOW
  rules:
  - {}
`);
  });

  test('STRICT refuses a plaintext client while meshed traffic keeps flowing', async () => {
    await apply(`apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: vmesh-system}
spec:
  mtls: {mode: STRICT}
`);
    const plain = () => h1.execOk(node, ['-e', FETCH.replace('reviews:9080', `${h3.ipv4}:9080`)]);
    await until('STRICT applied', async () => (/"error"/.test(await plain()) ? true : undefined), 20_000, diag);
    assert.equal((await callReviews()).marker, MARKER);
  });

  test('a root rotation (stage, activate, finish) under steady traffic drops no request', async () => {
    const load = h2.spawn(
      node,
      [
        '-e',
        `const h=require('http');const end=Date.now()+150000;let ok=0,bad=0,last='',stop=false;process.on('SIGTERM',()=>{stop=true});const go=()=>{if(Date.now()>end||stop)return console.log(JSON.stringify({ok,bad,last}));h.get({host:'reviews',port:9080,path:'/',agent:false},r=>{let b='';r.on('data',c=>b+=c);r.on('end',()=>{r.statusCode===200&&JSON.parse(b).xfcc?ok++:(bad++,last=String(r.statusCode)+b.slice(0,80));setTimeout(go,50)})}).on('error',e=>{bad++;last=e.code;setTimeout(go,50)})};go()`,
      ],
      APP,
    );
    type Status = {
      trustBundleSha256: string;
      rotation: { phase: string; current: { caHash: string } };
      hosts: Array<{ name: string; bundle: string }>;
    };
    const status = async () => JSON.parse(await cli(['ca', 'status', '-o', 'json'])) as Status;
    let last: Status | undefined;
    const allCurrent = async () => {
      last = await status();
      return last.hosts.every((h) => h.bundle === 'current') ? last : undefined;
    };
    const rdiag = () =>
      `${JSON.stringify(last?.hosts)}\n${agents
        .map((a) =>
          a
            .stderr()
            .split('\n')
            .filter((l) => /"level":(40|50)/.test(l))
            .slice(-8)
            .join('\n'),
        )
        .join('\n---\n')}`;
    const before = await status();
    await cli(['ca', 'rotate-root']);
    const staged = await until('every host trusts the staged root', allCurrent, 60_000, rdiag);
    assert.equal(staged.rotation.phase, 'staged');
    await cli(['ca', 'rotate-root', '--activate']);
    const active = await until('every host fetched certificates of the new root', allCurrent, 60_000, rdiag);
    assert.equal(active.rotation.phase, 'activated');
    assert.notEqual(active.rotation.current.caHash, before.rotation.current.caHash);
    await cli(['ca', 'rotate-root', '--finish']);
    const done = await until('every host dropped the old root', allCurrent, 60_000, rdiag);
    assert.equal(done.rotation.phase, 'none');
    await sleep(3000);
    load.child.kill('SIGTERM');
    const line = await load.waitForLine(/^\{/, 30_000);
    const r = JSON.parse(line) as { ok: number; bad: number; last: string };
    assert.equal(r.bad, 0, line);
    assert.ok(r.ok > 20, line);
    // The server's certificate now chains to the new root only.
    const certs = (await admin(h3, '/certs')) as Array<{ spiffeId: string }>;
    assert.ok(certs.some((c) => c.spiffeId === REVIEWS_ID));
  });

  test('workload certificates rotate under steady traffic and no request fails', async () => {
    const serial = async () =>
      ((await admin(h3, '/certs')) as Array<{ spiffeId: string; serial: string }>).find((c) => c.spiffeId === REVIEWS_ID)?.serial;
    const first = await serial();
    // 20 s certificates renew at 10-16 s of their life: run 30 s of requests on fresh connections.
    const out = await h2.execOk(
      node,
      [
        '-e',
        `const h=require('http');const end=Date.now()+${(TTL_S + 10) * 1000};let ok=0,bad=0,last='';const go=()=>{if(Date.now()>end)return console.log(JSON.stringify({ok,bad,last}));h.get({host:'reviews',port:9080,path:'/',agent:false},r=>{r.resume();r.on('end',()=>{r.statusCode===200?ok++:(bad++,last=String(r.statusCode));setTimeout(go,50)})}).on('error',e=>{bad++;last=e.code;setTimeout(go,50)})};go()`,
      ],
      { ...APP, timeoutMs: (TTL_S + 40) * 1000 },
    );
    const r = JSON.parse(out) as { ok: number; bad: number; last: string };
    assert.equal(r.bad, 0, out);
    assert.ok(r.ok > 50, out);
    const second = await serial();
    assert.ok(first && second && first !== second, `the certificate was renewed (${first} -> ${second})`);
  });
});
