import { createPublicKey, createSecretKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { err, ok, type Result } from '../lib/result.js';

/**
 * A JSON Web Key Set (RFC 7517) read into verification keys: what RequestAuthentication's inline `jwks`
 * holds, what the controller fetches from a `jwksUri`, and what the proxy verifies tokens with. Keys Node
 * cannot import are an error, as Envoy refuses a JWKS it cannot parse.
 */
export interface Jwk {
  readonly kid?: string;
  readonly alg?: string;
  readonly kty: 'RSA' | 'EC' | 'OKP' | 'oct';
  readonly key: KeyObject;
}

export interface Jwks {
  readonly keys: readonly Jwk[];
  /** Indexes of keys that carry private material (Istio warns: only public parts are used). */
  readonly private: readonly number[];
}

/** A set larger than this is refused: real sets hold a handful of keys. */
export const MAX_JWKS_BYTES = 256 * 1024;
const MAX_KEYS = 64;

function importKey(k: Record<string, unknown>, i: number): Result<Jwk, string> {
  const kty = k.kty;
  const kid = typeof k.kid === 'string' ? { kid: k.kid } : {};
  const alg = typeof k.alg === 'string' ? { alg: k.alg } : {};
  try {
    if (kty === 'oct') {
      if (typeof k.k !== 'string' || k.k === '') return err(`keys[${i}]: an oct key needs "k"`);
      return ok({ ...kid, ...alg, kty, key: createSecretKey(Buffer.from(k.k, 'base64url')) });
    }
    if (kty !== 'RSA' && kty !== 'EC' && kty !== 'OKP') return err(`keys[${i}]: kty ${JSON.stringify(kty)} is not RSA, EC, OKP or oct`);
    // Only the public half is kept: a set pasted with private parts still verifies, and nothing signs.
    const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, oth: _oth, ...pub } = k;
    return ok({ ...kid, ...alg, kty, key: createPublicKey({ key: pub as JsonWebKey, format: 'jwk' }) });
  } catch (e) {
    return err(`keys[${i}]: ${(e as Error).message}`);
  }
}

export function parseJwks(text: string): Result<Jwks, string> {
  if (Buffer.byteLength(text) > MAX_JWKS_BYTES) return err(`over ${MAX_JWKS_BYTES} bytes`);
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    return err(`not JSON: ${(e as Error).message}`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return err('not a JSON object');
  const set = doc as Record<string, unknown>;
  // A single JWK is taken as a set of one, as Envoy's JWKS reader does.
  const list: unknown[] = Array.isArray(set.keys) ? set.keys : set.kty !== undefined ? [set] : [];
  if (!Array.isArray(set.keys) && set.kty === undefined) return err('no "keys" array');
  if (list.length > MAX_KEYS) return err(`${list.length} keys; at most ${MAX_KEYS}`);
  const keys: Jwk[] = [];
  const priv: number[] = [];
  for (const [i, k] of list.entries()) {
    if (typeof k !== 'object' || k === null || Array.isArray(k)) return err(`keys[${i}] is not an object`);
    const key = importKey(k as Record<string, unknown>, i);
    if (!key.ok) return key;
    keys.push(key.value);
    if ((k as Record<string, unknown>).d !== undefined || key.value.kty === 'oct') priv.push(i);
  }
  return ok({ keys, private: priv });
}
