import assert from 'node:assert/strict';
import { createHmac, generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { describe, test } from 'node:test';
import { parseJwks } from '../../../../src/api/jwks.js';
import { socketAddr, toOrigDst, toRemote } from '../../../../src/lib/addr.js';
import { compileJwtAuthn } from '../../../../src/proxy/compile/jwt-authn.js';
import { runJwtAuthn, VerifyCache } from '../../../../src/proxy/http/jwt-authn.js';
import { verifyJwt } from '../../../../src/proxy/http/jwt-verify.js';
import { evaluateRbac, type RbacAttrs } from '../../../../src/proxy/match/rbac-eval.js';
import { matchRoute, selectVirtualHost } from '../../../../src/proxy/match/route-match.js';
import type { HttpFilters, JwtAuthnConfig, JwtProvider, NetworkAction, ProxyConfig } from '../../../../src/proxy/proxy-config.js';
import { decodeAnyDeep } from '../../../../src/xds/decode-deep.js';
import { encodeAny } from '../../../../src/xds/index.js';
import { jwtFilterFor } from '../../../../src/xds/translate/request-authn.js';
import { bookinfoInput } from '../../xds/translate/fixture.js';
import { compiledFor, fixtureWith } from '../translated.js';

// RequestAuthentication end to end below the network: Istio YAML -> the translator's jwt_authn and RBAC filters
// -> encoded and decoded as the agent receives them -> the proxy's compiled filters -> requests through them.

const ISS = 'testing@secure.istio.io';
const es = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const other = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const jwk = { ...es.publicKey.export({ format: 'jwk' }), kid: 'k1', alg: 'ES256' };
const JWKS = JSON.stringify({ keys: [jwk] });
const now = Math.floor(Date.now() / 1000);

function b64(v: unknown): string {
  return Buffer.from(JSON.stringify(v)).toString('base64url');
}

function token(payload: Record<string, unknown>, opts: { key?: KeyObject; alg?: string; kid?: string; hmac?: Buffer } = {}): string {
  const alg = opts.alg ?? 'ES256';
  const head = `${b64({ alg, typ: 'JWT', kid: opts.kid ?? 'k1' })}.${b64(payload)}`;
  const data = Buffer.from(head);
  let sig: Buffer;
  if (opts.hmac) sig = createHmac('sha256', opts.hmac).update(data).digest();
  else if (alg.startsWith('ES')) sig = sign('sha256', data, { key: opts.key ?? es.privateKey, dsaEncoding: 'ieee-p1363' });
  else if (alg === 'EdDSA') sig = sign(null, data, opts.key as KeyObject);
  else sig = sign('sha256', data, opts.key as KeyObject);
  return `${head}.${sig.toString('base64url')}`;
}

const good = (extra: Record<string, unknown> = {}) =>
  token({ iss: ISS, sub: 'alice', exp: now + 3600, groups: ['group1'], scope: 'read write', ...extra });

const YAML = `apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: default}
spec:
  selector: {matchLabels: {app: productpage}}
  jwtRules:
  - issuer: "${ISS}"
    jwks: '${JWKS}'
    outputPayloadToHeader: x-jwt-payload
    outputClaimToHeaders: [{header: x-jwt-sub, claim: sub}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: require-jwt, namespace: default}
spec:
  selector: {matchLabels: {app: productpage}}
  rules:
  - from: [{source: {requestPrincipals: ["${ISS}/*"]}}]
    when:
    - {key: "request.auth.claims[groups]", values: [group1]}
    - {key: "request.auth.claims[scope]", values: [write]}
`;

/** The compiled HTTP filters of the inbound port that carries the jwt filter. */
function inboundFilters(cfg: ProxyConfig): HttpFilters {
  const found: HttpFilters[] = [];
  const walk = (v: unknown): void => {
    if (typeof v !== 'object' || v === null) return;
    if (v instanceof Map) {
      for (const x of v.values()) walk(x);
      return;
    }
    const a = v as Partial<Extract<NetworkAction, { kind: 'http' }>>;
    if (a.kind === 'http' && a.filters?.jwt) found.push(a.filters);
    for (const x of Object.values(v)) walk(x);
  };
  walk(cfg);
  assert.ok(found[0], 'no HTTP filter chain with a jwt filter');
  return found[0];
}

interface Req {
  names: string[];
  values: string[];
  path: string;
}

function request(headers: Record<string, string>, path = '/productpage'): Req {
  return { names: Object.keys(headers), values: Object.values(headers), path };
}

/** The attributes as the exchange offers them: methods reading its own fields (so an unbound call would fail). */
class Attrs implements RbacAttrs {
  readonly remote = toRemote(socketAddr('198.18.0.12', 40000));
  readonly originalDst = toOrigDst(socketAddr('198.18.0.11', 9080));
  readonly path: string;
  constructor(
    private readonly r: Req,
    private readonly payload: Readonly<Record<string, unknown>> | undefined,
  ) {
    this.path = r.path;
  }
  header(n: string): string | undefined {
    const i = this.r.names.indexOf(n);
    return i < 0 ? undefined : this.r.values[i];
  }
  metadata(f: string): unknown {
    return f === 'envoy.filters.http.jwt_authn' && this.payload ? { payload: this.payload } : undefined;
  }
}

function attrs(r: Req, payload: Readonly<Record<string, unknown>> | undefined): Attrs {
  return new Attrs(r, payload);
}

/** The jwt filter then RBAC, as the exchange runs them: 401 with a reason, 403, or 200 with the request as sent on. */
function through(f: HttpFilters, r: Req): { status: number; reason?: string } {
  const cache = new VerifyCache();
  const o = runJwtAuthn(f.jwt as JwtAuthnConfig, { method: 'GET', ...r }, Math.floor(Date.now() / 1000), cache);
  if (!o.ok) return { status: 401, reason: o.reason };
  return evaluateRbac(f.rbac, attrs(r, o.payload)).allowed ? { status: 200 } : { status: 403 };
}

describe('RequestAuthentication + requestPrincipals through translate, compile and the proxy filters', () => {
  const filters = inboundFilters(compiledFor(fixtureWith(YAML)));

  test('a valid token is accepted; its payload and subject reach the workload; the token does not', () => {
    const r = request({ authorization: `Bearer ${good()}`, 'x-jwt-payload': 'forged' });
    assert.deepEqual(through(filters, r), { status: 200 });
    assert.equal(r.names.includes('authorization'), false, 'forward is off: the token is removed');
    const payload = JSON.parse(Buffer.from(r.values[r.names.indexOf('x-jwt-payload')] ?? '', 'base64url').toString());
    assert.equal(payload.sub, 'alice');
    assert.equal(r.values[r.names.indexOf('x-jwt-sub')], 'alice');
  });

  test('no token: authentication passes, the policy that requires a request principal denies (403)', () => {
    assert.deepEqual(through(filters, request({})), { status: 403 });
  });

  test('bad tokens get 401 with Envoy’s reason', () => {
    assert.deepEqual(through(filters, request({ authorization: `Bearer ${good({ exp: now - 3600 })}` })), {
      status: 401,
      reason: 'Jwt is expired',
    });
    assert.deepEqual(through(filters, request({ authorization: `Bearer ${token({ iss: ISS, sub: 'x' }, { key: other.privateKey })}` })), {
      status: 401,
      reason: 'Jwt verification fails',
    });
    assert.deepEqual(through(filters, request({ authorization: `Bearer ${good({ iss: 'evil.example.com' })}` })), {
      status: 401,
      reason: 'Jwt issuer is not configured',
    });
    assert.deepEqual(through(filters, request({ authorization: 'Bearer not.a-token' })).status, 401);
    assert.deepEqual(through(filters, request({}, `/p?access_token=${good({ exp: now - 3600 })}`)), {
      status: 401,
      reason: 'Jwt is expired',
    });
  });

  test('claims decide: a token without the group, or without the scope word, is denied', () => {
    assert.deepEqual(through(filters, request({ authorization: `Bearer ${good({ groups: ['other'] })}` })), { status: 403 });
    assert.deepEqual(through(filters, request({ authorization: `Bearer ${good({ scope: 'read' })}` })), { status: 403 });
    assert.deepEqual(through(filters, request({}, `/p?access_token=${good()}`)), { status: 200 });
  });
});

describe('keys fetched by URI and presence', () => {
  const input = (jwks?: Map<string, string>, presence = '') => {
    const base = bookinfoInput('h1', {
      resources: fixtureWith(`apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: by-uri, namespace: default}
spec:
  jwtRules:
  - issuer: "${ISS}"
    jwksUri: https://keys.example.com/jwks.json
    ${presence}
`),
    });
    return jwks ? { ...base, model: { ...base.model, jwks } } : base;
  };
  const compiled = (i: ReturnType<typeof input>): JwtAuthnConfig => {
    const w = i.node.workloads[0];
    assert.ok(w);
    const [f] = jwtFilterFor(i, w);
    assert.ok(f);
    const { '@type': url, ...rest } = f.typed_config as Record<string, unknown>;
    const decoded = decodeAnyDeep({ type_url: String(url), value: encodeAny(String(url), rest).value }) as never;
    return compileJwtAuthn(decoded, 'jwt');
  };
  const run = (cfg: JwtAuthnConfig, headers: Record<string, string>) =>
    runJwtAuthn(cfg, { method: 'GET', ...request(headers) }, Math.floor(Date.now() / 1000), new VerifyCache());

  test('not fetched yet: tokens fail (no key), requests without one pass', () => {
    const cfg = compiled(input());
    assert.deepEqual(run(cfg, { authorization: `Bearer ${good()}` }), {
      ok: false,
      reason: "Jwks doesn't have key to match kid or alg from Jwt",
    });
    assert.deepEqual(run(cfg, {}), { ok: true });
  });

  test('fetched by the controller: the model’s set verifies', () => {
    const cfg = compiled(input(new Map([['https://keys.example.com/jwks.json', JWKS]])));
    const o = run(cfg, { authorization: `Bearer ${good()}` });
    assert.equal(o.ok, true);
  });

  test('presence: REQUIRED refuses a request without a token', () => {
    const cfg = compiled(input(new Map([['https://keys.example.com/jwks.json', JWKS]]), 'presence: REQUIRED'));
    assert.deepEqual(run(cfg, {}), { ok: false, reason: 'Jwt is missing' });
    assert.equal(run(cfg, { authorization: `Bearer ${good()}` }).ok, true);
  });
});

describe('verifyJwt: algorithms and keys', () => {
  const provider = (keys: string, extra: Partial<JwtProvider> = {}): JwtProvider => {
    const p = parseJwks(keys);
    assert.ok(p.ok);
    return {
      name: 'p',
      issuer: ISS,
      audiences: [],
      keys: p.value.keys,
      fromHeaders: [],
      fromParams: [],
      fromCookies: [],
      forward: false,
      claimToHeaders: [],
      spaceDelimitedClaims: [],
      clockSkewSeconds: 60,
      ...extra,
    };
  };
  const claims = { iss: ISS, sub: 's', exp: now + 60 };

  test('RS256, EdDSA and HS256 verify with their keys; the wrong kind of key never does', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const ed = generateKeyPairSync('ed25519');
    const secret = Buffer.from('0123456789abcdef0123456789abcdef');
    const set = JSON.stringify({
      keys: [
        { ...rsa.publicKey.export({ format: 'jwk' }), kid: 'k1' },
        { ...ed.publicKey.export({ format: 'jwk' }), kid: 'k1' },
        { kty: 'oct', kid: 'k1', k: secret.toString('base64url') },
      ],
    });
    const p = provider(set);
    assert.equal(verifyJwt(p, token(claims, { alg: 'RS256', key: rsa.privateKey }), now).ok, true);
    assert.equal(verifyJwt(p, token(claims, { alg: 'EdDSA', key: ed.privateKey }), now).ok, true);
    assert.equal(verifyJwt(p, token(claims, { alg: 'HS256', hmac: secret }), now).ok, true);
    assert.equal(verifyJwt(p, token(claims, { alg: 'HS256', hmac: Buffer.from('wrong') }), now).ok, false);
  });

  test('kid, audiences, nbf and alg none', () => {
    const p = provider(JWKS, { audiences: ['httpbin'] });
    assert.deepEqual(verifyJwt(p, token({ ...claims, aud: 'httpbin' }, { kid: 'other' }), now), {
      ok: false,
      reason: "Jwks doesn't have key to match kid or alg from Jwt",
    });
    assert.equal(verifyJwt(p, token({ ...claims, aud: ['x', 'httpbin'] }), now).ok, true);
    assert.deepEqual(verifyJwt(p, token({ ...claims, aud: 'x' }), now), { ok: false, reason: 'Audiences in Jwt are not allowed' });
    assert.deepEqual(verifyJwt(p, token({ ...claims, aud: 'httpbin', nbf: now + 600 }), now), { ok: false, reason: 'Jwt not yet valid' });
    const none = `${b64({ alg: 'none' })}.${b64(claims)}.`;
    assert.deepEqual(verifyJwt(p, none, now), { ok: false, reason: 'Jwt header [alg] is not supported' });
  });

  test('hostile tokens cost one bounded parse: huge or deeply nested payloads fail cleanly', () => {
    const p = provider(JWKS);
    const deep = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
    const t = `${b64({ alg: 'ES256' })}.${Buffer.from(deep).toString('base64url')}.AAAA`;
    assert.deepEqual(verifyJwt(p, t, now), { ok: false, reason: 'Jwt payload is an invalid JSON' });
    assert.equal(verifyJwt(p, 'a'.repeat(60_000), now).ok, false);
  });
});

describe('routing on JWT claims at the gateway (Istio’s @request.auth.claims headers)', () => {
  const yaml = `apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: gw-jwt, namespace: default}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  jwtRules:
  - issuer: "${ISS}"
    jwks: '${JWKS}'
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: bookinfo, namespace: default}
spec:
  hosts: ["bookinfo.example.com"]
  gateways: [bookinfo-gateway]
  http:
  - name: admins
    match:
    - headers: {"@request.auth.claims.groups": {exact: admin}}
    route:
    - destination: {host: reviews, port: {number: 9080}}
  - name: nested-not-beta
    match:
    - withoutHeaders: {"@request.auth.claims[org][tier]": {exact: beta}}
      headers: {"@request.auth.claims[org][tier]": {}}
    route:
    - destination: {host: ratings, port: {number: 9080}}
  - name: everyone
    route:
    - destination: {host: productpage, port: {number: 9080}}
`;
  const cfg = compiledFor(fixtureWith(yaml), 'gw');
  const filters = inboundFilters(cfg);
  const table = [...cfg.routes.values()].find((t) => t.virtualHosts.some((v) => v.routes.some((r) => r.name === 'admins')));
  assert.ok(table, 'the gateway route table');
  const vh = selectVirtualHost(table, 'bookinfo.example.com:8080');
  assert.ok(vh);

  /** The JWT filter, then route selection on what it verified, as the exchange runs them. */
  const routeFor = (headers: Record<string, string>): string | undefined => {
    const r = request(headers);
    const o = runJwtAuthn(filters.jwt as JwtAuthnConfig, { method: 'GET', ...r }, Math.floor(Date.now() / 1000), new VerifyCache());
    assert.ok(o.ok);
    const payload = o.payload;
    const a = attrs(r, payload);
    const view = Object.assign(a, { method: 'GET', path: '/productpage', authority: 'bookinfo.example.com:8080', scheme: 'http' });
    return matchRoute(vh, view)?.name;
  };

  test('a list claim matches by member, a string claim by value; no token takes the fallback', () => {
    assert.equal(routeFor({ authorization: `Bearer ${good({ groups: ['dev', 'admin'] })}` }), 'admins');
    assert.equal(routeFor({ authorization: `Bearer ${good({ groups: 'admin' })}` }), 'admins');
    assert.equal(routeFor({ authorization: `Bearer ${good({ groups: ['dev'] })}` }), 'everyone');
    assert.equal(routeFor({}), 'everyone');
  });

  test('nested claims by [a][b], and withoutHeaders inverts', () => {
    assert.equal(routeFor({ authorization: `Bearer ${good({ groups: [], org: { tier: 'gold' } })}` }), 'nested-not-beta');
    assert.equal(routeFor({ authorization: `Bearer ${good({ groups: [], org: { tier: 'beta' } })}` }), 'everyone');
  });

  test('a forged header of the same name is not a claim', () => {
    assert.equal(routeFor({ '@request.auth.claims.groups': 'admin' }), 'everyone');
  });
});
