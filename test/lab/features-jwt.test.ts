import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { APP, type FeatureLab, type HttpRun, startFeatureLab } from './features-lab.js';
import type { LabProcess } from './lab.js';

// RequestAuthentication on the server host (h3's inbound), called by an app on h2 through both proxies: one
// issuer's keys inline, the other's served by a real HTTP server (python's http.server) on the controller host,
// which the controller fetches as istiod does; an AuthorizationPolicy lets only callers with a valid token in.
const ISS_A = 'issuer-a@vmesh.test';
const ISS_B = 'https://issuer-b.vmesh.test';
const JWKS_PORT = 18555;
const a = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const b = generateKeyPairSync('rsa', { modulusLength: 2048 });
const stranger = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const jwksA = JSON.stringify({ keys: [{ ...a.publicKey.export({ format: 'jwk' }), kid: 'inline-key-a', alg: 'ES256' }] });
const jwksB = JSON.stringify({ keys: [{ ...b.publicKey.export({ format: 'jwk' }), kid: 'fetched-key-b', alg: 'RS256' }] });

const CONFIG = `apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt-issuers}
spec:
  selector: {matchLabels: {app: jwt}}
  jwtRules:
  - issuer: "${ISS_A}"
    jwks: '${jwksA}'
    outputClaimToHeaders: [{header: x-jwt-sub, claim: sub}]
  - issuer: "${ISS_B}"
    jwksUri: "http://127.0.0.1:${JWKS_PORT}/jwks.json"
    outputClaimToHeaders: [{header: x-jwt-sub, claim: sub}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: jwt-required}
spec:
  selector: {matchLabels: {app: jwt}}
  rules:
  - from: [{source: {requestPrincipals: ["*"]}}]
`;

function b64(v: unknown): string {
  return Buffer.from(JSON.stringify(v)).toString('base64url');
}

function jwt(iss: string, sub: string, key: KeyObject, alg: 'ES256' | 'RS256', kid: string, expIn = 3600): string {
  const head = `${b64({ alg, kid, typ: 'JWT' })}.${b64({ iss, sub, exp: Math.floor(Date.now() / 1000) + expIn })}`;
  const sig =
    alg === 'ES256' ? sign('sha256', Buffer.from(head), { key, dsaEncoding: 'ieee-p1363' }) : sign('sha256', Buffer.from(head), key);
  return `${head}.${sig.toString('base64url')}`;
}

describe('RequestAuthentication end to end: JWTs verified on the server host, keys inline and fetched by the controller', () => {
  let f: FeatureLab;
  let keys: LabProcess | undefined;
  const dir = mkdtempSync(join(tmpdir(), 'vmesh-jwks-'));
  const http = (o: object) => f.client<HttpRun>('http', o);

  before(async () => {
    writeFileSync(join(dir, 'jwks.json'), jwksB);
    chmodSync(dir, 0o755);
    f = await startFeatureLab({
      servers: ['http:jwt:9940'],
      services: [{ name: 'jwt', port: 9940, portName: 'http', endpoints: [{ name: 'jwt-1', port: 9940 }] }],
      config: '',
    });
    keys = f.h1.spawn('/usr/bin/python3', ['-m', 'http.server', '--bind', '127.0.0.1', '--directory', dir, String(JWKS_PORT)], APP);
    await keys.waitForLine(/Serving HTTP/, 15_000);
    await f.apply(CONFIG);
    // The server host enforces it once the fetched key set is in its config.
    await f.waitForConfig('h3', ['jwt-required', 'inline-key-a', 'fetched-key-b']);
  });
  after(async () => {
    await keys?.stop();
    await f?.teardown();
    rmSync(dir, { recursive: true, force: true });
  });

  test('no token: authentication passes, the policy denies (403)', async () => {
    const r = (await http({ url: 'http://jwt:9940/jwt', n: 1 })).results[0];
    assert.equal(r?.s, 403, JSON.stringify(r));
    assert.equal(r?.body, 'RBAC: access denied');
  });

  test('a token from either issuer is accepted; the workload sees the subject, not the token', async () => {
    const tokA = jwt(ISS_A, 'alice', a.privateKey, 'ES256', 'inline-key-a');
    const tokB = jwt(ISS_B, 'bob', b.privateKey, 'RS256', 'fetched-key-b');
    const run = await http({ url: 'http://jwt:9940/jwt', n: 3, headers: { authorization: `Bearer ${tokA}` } });
    for (const r of run.results) assert.equal(r.body, 'jwt sub=alice token=no', JSON.stringify(run));
    assert.equal(run.sockets, 1, 'one keep-alive connection for all three');
    const rb = (await http({ url: 'http://jwt:9940/jwt', n: 1, headers: { authorization: `Bearer ${tokB}` } })).results[0];
    assert.equal(rb?.body, 'jwt sub=bob token=no', JSON.stringify(rb));
  });

  test('curl: an expired token and a token signed by an unknown key get 401 with the reason and a Bearer challenge', async () => {
    const expired = jwt(ISS_A, 'alice', a.privateKey, 'ES256', 'inline-key-a', -3600);
    const forged = jwt(ISS_A, 'mallory', stranger.privateKey, 'ES256', 'inline-key-a');
    for (const [tok, reason] of [
      [expired, 'Jwt is expired'],
      [forged, 'Jwt verification fails'],
    ] as const) {
      const out = await f.h2.execOk(
        'curl',
        ['-s', '-i', '--max-time', '10', '-H', `authorization: Bearer ${tok}`, 'http://jwt:9940/jwt'],
        APP,
      );
      assert.match(out, /^HTTP\/1\.1 401/, out);
      assert.match(out, /www-authenticate: Bearer realm="http:\/\/jwt:9940\/jwt", error="invalid_token"/i, out);
      assert.ok(out.trimEnd().endsWith(reason), out);
    }
  });
});
