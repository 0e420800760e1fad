import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CertificateAuthority } from '../../src/ca/index.js';
import { buildCsr, derToPem } from '../../src/ca/x509.js';
import { createLogger } from '../../src/lib/logger.js';
import { createLab, type Lab, type LabHost, type LabProcess, requireLabTools } from './lab.js';

// An ingress gateway: h2 runs an agent in gateway mode (no capture; it listens on the Gateway's ports), h3 a
// meshed agent with the apps, h1 the controller and an outside client. HTTPS is terminated at the gateway with
// a credentialName from the gateway host's credentials directory; TLS with SNI passes through untouched.
requireLabTools(['ip', 'nft', 'setpriv']);

const ROOT = join(import.meta.dirname, '..', '..');
const CLI = join(ROOT, 'src', 'cli', 'main.ts');
const FIX = join(import.meta.dirname, 'fixtures');
const node = process.execPath;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const CONFIG = `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8443, name: https, protocol: HTTPS}
    hosts: [bookinfo.example.com]
    tls: {mode: SIMPLE, credentialName: bookinfo-cert}
  - port: {number: 9443, name: tls, protocol: TLS}
    hosts: [secure.example.com]
    tls: {mode: PASSTHROUGH}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: bookinfo}
spec:
  hosts: [bookinfo.example.com]
  gateways: [edge]
  http:
  - route:
    - destination: {host: reviews, port: {number: 9080}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: secure}
spec:
  hosts: [secure.example.com]
  gateways: [edge]
  tls:
  - match: [{port: 9443, sniHosts: [secure.example.com]}]
    route:
    - destination: {host: secure, port: {number: 9443}}
`;

describe('an ingress gateway: HTTPS termination with a credential, SNI passthrough, into the mesh', () => {
  let lab: Lab;
  let h1: LabHost;
  let h2: LabHost;
  let h3: LabHost;
  const agents: LabProcess[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'vmesh-gateway-'));
  const ctlDir = join(dir, 'ctl');
  const api = 'https://127.0.0.1:15014';
  const cli = (args: string[]) =>
    h1.execOk(node, ['--import', 'tsx', CLI, ...args, '--controller', api, '--data-dir', ctlDir], { timeoutMs: 30_000 });
  const diag = () => agents.map((a) => a.stderr().slice(-2000)).join('\n---\n');
  const get = (port: number, sni: string, http: boolean) =>
    h1
      .execOk(node, [join(FIX, 'tls-get.mjs'), h2.ipv4, String(port), sni, join(dir, 'edge-ca.crt'), ...(http ? ['http'] : [])])
      .then((o) => JSON.parse(o) as { ok?: boolean; data?: string; error?: string });

  before(async () => {
    lab = await createLab({ hosts: 3, ipv6: false });
    [h1, h2, h3] = lab.hosts as [LabHost, LabHost, LabHost];
    // An outside CA for the edge: the gateway's certificate and the passthrough app's, trusted by the client only.
    const edge = await CertificateAuthority.loadOrCreate({
      dir: join(dir, 'edge-ca'),
      trustDomain: 'edge',
      logger: createLogger({ level: 'silent' }),
    });
    writeFileSync(join(dir, 'edge-ca.crt'), edge.trustBundlePem());
    const serverCert = (dns: string) => {
      const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
      const csr = derToPem(buildCsr(privateKey, dns), 'CERTIFICATE REQUEST');
      return {
        cert: edge.signCsr(csr, { dnsNames: [dns], ttlSeconds: 3600, usage: 'server' }).certPem,
        key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
      };
    };
    const gw = serverCert('bookinfo.example.com');
    mkdirSync(join(dir, 'credentials', 'bookinfo-cert'), { recursive: true });
    writeFileSync(join(dir, 'credentials', 'bookinfo-cert', 'tls.crt'), gw.cert);
    writeFileSync(join(dir, 'credentials', 'bookinfo-cert', 'tls.key'), gw.key, { mode: 0o600 });
    const app = serverCert('secure.example.com');
    writeFileSync(join(dir, 'app.crt'), app.cert);
    writeFileSync(join(dir, 'app.key'), app.key, { mode: 0o644 });

    const controller = h1.spawn(node, ['--import', 'tsx', CLI, 'controller', '--data-dir', ctlDir, '--advertise', h1.ipv4]);
    const servers = [
      h3.spawn(node, [join(FIX, 'http-named.mjs'), 'reviews:9080']),
      h3.spawn(node, [join(FIX, 'tls-named.mjs'), '9443', join(dir, 'app.crt'), join(dir, 'app.key'), 'secure-app']),
    ];
    await Promise.all([controller.waitForLine(/"ready":true/, 30_000), ...servers.map((s) => s.waitForLine(/ready/))]);
    for (const [name, port] of [
      ['reviews', 'http:9080'],
      ['secure', 'tls:9443'],
    ] as const) {
      await cli([
        'workload',
        'register',
        '--name',
        `${name}-1`,
        '--service',
        name,
        '--address',
        h3.ipv4,
        '--port',
        port,
        '--host',
        'h3',
        '--no-wait',
      ]);
    }
    for (const [host, name, extra] of [
      [h2, 'h2', ['--mode', 'gateway', '--gateway-label', 'istio=ingressgateway', '--credentials-dir', join(dir, 'credentials')]],
      [h3, 'h3', []],
    ] as const) {
      const adir = join(dir, name);
      mkdirSync(adir);
      writeFileSync(join(adir, 'token'), (await cli(['token', 'create', '--host', name])).trim(), { mode: 0o600 });
      const args = ['--import', 'tsx', CLI, 'agent', '--controller', `${h1.ipv4}:15012`, '--token-file', join(adir, 'token'), ...extra];
      agents.push(host.spawn(node, [...args, '--data-dir', adir, '--host-name', name], { uid: 0, gid: 1337 }));
    }
    await Promise.all(agents.map((a) => a.waitForLine(/"ready":true/, 30_000)));
    const f = join(dir, 'edge.yaml');
    writeFileSync(f, CONFIG);
    await cli(['config', 'apply', '-f', f]);
  });
  after(async () => {
    await lab?.teardown();
    rmSync(dir, { recursive: true, force: true });
  });

  test('HTTPS on the Gateway port is terminated with the credential and routed by the VirtualService into the mesh', async () => {
    let r: { ok?: boolean; data?: string; error?: string } = {};
    const until = Date.now() + 40_000;
    while (Date.now() < until) {
      r = await get(8443, 'bookinfo.example.com', true);
      // Not `includes('reviews')`: a 503 names the cluster outbound|9080||reviews... while h3's capture comes up.
      if (/^HTTP\/1\.1 200/.test(r.data ?? '')) break;
      await sleep(500);
    }
    assert.match(r.data ?? '', /^HTTP\/1\.1 200/, `${JSON.stringify(r)}\n${diag()}`);
    assert.match(r.data ?? '', /reviews bookinfo\.example\.com \//);
  });

  test('the gateway host runs no capture (gateway mode)', async () => {
    assert.equal((await h2.execOk('nft', ['list', 'tables'])).includes('inet vmesh'), false);
  });

  test("TLS with SNI passes through untouched: the client verifies the app's own certificate", async () => {
    let r: { ok?: boolean; data?: string; error?: string } = {};
    const until = Date.now() + 30_000;
    while (Date.now() < until) {
      r = await get(9443, 'secure.example.com', false);
      if (r.data?.includes('secure-app')) break;
      await sleep(500);
    }
    assert.equal(r.data, 'secure-app\n', `${JSON.stringify(r)}\n${diag()}`);
  });

  test('a ClientHello for a name no server lists gets no answer', async () => {
    const r = await get(9443, 'other.example.com', false);
    // Refused (an error) or closed without a byte: never the app behind another name.
    assert.ok(r.error !== undefined || r.data === '', JSON.stringify(r));
  });
});
