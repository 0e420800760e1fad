import { constants, createHmac, timingSafeEqual, verify } from 'node:crypto';
import type { Jwk } from '../../api/jwks.js';
import type { JwtProvider } from '../proxy-config.js';

/**
 * Verifies one JSON Web Token (RFC 7519, JWS compact form) against a provider, as Envoy's jwt_authn does:
 * signature with the provider's keys (by `kid` and `alg`), `exp`/`nbf` with the provider's clock skew, the
 * issuer and the audiences. Failures carry Envoy's own status words, which the 401 answer repeats.
 */
export type JwtCheck =
  | { readonly ok: true; readonly payload: Readonly<Record<string, unknown>>; readonly payloadText: string }
  | { readonly ok: false; readonly reason: string };

const DIGEST: Readonly<Record<string, string>> = { '256': 'sha256', '384': 'sha384', '512': 'sha512' };

function fail(reason: string): JwtCheck {
  return { ok: false, reason };
}

function decodeJson(part: string): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** The key types an algorithm family verifies with. */
function fits(alg: string, k: Jwk): boolean {
  if (k.alg !== undefined && k.alg !== alg) return false;
  if (alg.startsWith('RS') || alg.startsWith('PS')) return k.kty === 'RSA';
  if (alg.startsWith('ES')) return k.kty === 'EC';
  if (alg === 'EdDSA') return k.kty === 'OKP';
  if (alg.startsWith('HS')) return k.kty === 'oct';
  return false;
}

function signatureOk(alg: string, k: Jwk, data: Buffer, sig: Buffer): boolean {
  const digest = DIGEST[alg.slice(2)];
  try {
    if (alg === 'EdDSA') return verify(null, data, k.key, sig);
    if (digest === undefined) return false;
    if (alg.startsWith('RS')) return verify(digest, data, k.key, sig);
    if (alg.startsWith('PS')) {
      return verify(
        digest,
        data,
        { key: k.key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST },
        sig,
      );
    }
    if (alg.startsWith('ES')) return verify(digest, data, { key: k.key, dsaEncoding: 'ieee-p1363' }, sig);
    if (alg.startsWith('HS')) {
      const mac = createHmac(digest, k.key).update(data).digest();
      return mac.length === sig.length && timingSafeEqual(mac, sig);
    }
  } catch {
    // A key of the right type but the wrong curve or size: not a match.
  }
  return false;
}

const ALGS = /^(RS|PS|ES|HS)(256|384|512)$|^EdDSA$/;

function audiencesOk(p: JwtProvider, aud: unknown): boolean {
  if (p.audiences.length === 0) return true;
  const list = Array.isArray(aud) ? aud : [aud];
  // Envoy compares audiences with and without a trailing slash or scheme difference ignored: exact here.
  return list.some((a) => typeof a === 'string' && p.audiences.includes(a));
}

export function verifyJwt(p: JwtProvider, token: string, nowSeconds: number): JwtCheck {
  const parts = token.split('.');
  if (parts.length !== 3) return fail('Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections');
  const [h = '', b = '', s = ''] = parts;
  const header = decodeJson(h);
  if (!header) return fail('Jwt header is an invalid JSON');
  const payloadText = Buffer.from(b, 'base64url').toString('utf8');
  const payload = decodeJson(b);
  if (!payload) return fail('Jwt payload is an invalid JSON');
  const alg = header.alg;
  if (typeof alg !== 'string') return fail('Jwt header [alg] field is required and must be a string');
  if (!ALGS.test(alg)) return fail('Jwt header [alg] is not supported');
  if (p.issuer !== undefined && p.issuer !== '' && payload.iss !== p.issuer) return fail('Jwt issuer is not configured');
  const skew = p.clockSkewSeconds;
  if (typeof payload.exp === 'number' && nowSeconds > payload.exp + skew) return fail('Jwt is expired');
  if (typeof payload.nbf === 'number' && nowSeconds + skew < payload.nbf) return fail('Jwt not yet valid');
  if (!audiencesOk(p, payload.aud)) return fail('Audiences in Jwt are not allowed');
  const kid = typeof header.kid === 'string' ? header.kid : undefined;
  const candidates = p.keys.filter((k) => fits(alg, k) && (kid === undefined || k.kid === undefined || k.kid === kid));
  if (candidates.length === 0) return fail("Jwks doesn't have key to match kid or alg from Jwt");
  const data = Buffer.from(`${h}.${b}`, 'latin1');
  const sig = Buffer.from(s, 'base64url');
  for (const k of candidates) if (signatureOk(alg, k, data, sig)) return { ok: true, payload, payloadText };
  return fail('Jwt verification fails');
}
