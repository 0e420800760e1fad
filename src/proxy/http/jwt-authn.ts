import { matchString } from '../match/route-match.js';
import type { JwtAuthnConfig, JwtProvider, JwtRequirement } from '../proxy-config.js';
import { getHeader, removeHeader, setHeader } from './headers.js';
import { type JwtCheck, verifyJwt } from './jwt-verify.js';

/**
 * Envoy's jwt_authn filter on one request: the first rule whose path matches names a requirement (a provider,
 * or any/all of several, or allow_missing), tokens are read from each provider's locations, verified, and on
 * success the payload is kept for RBAC (`request.auth.*`), copied to the configured headers, and the token
 * removed unless forwarded. A request that fails gets 401 with Envoy's reason, as Istio's sidecars answer.
 */

export interface JwtRequest {
  readonly method: string;
  readonly path: string;
  readonly names: string[];
  readonly values: string[];
}

export type JwtOutcome =
  | { readonly ok: true; readonly payload?: Readonly<Record<string, unknown>> }
  | { readonly ok: false; readonly reason: string };

interface Found {
  readonly token: string;
  /** The header it came from, removed when the provider does not forward it. */
  readonly header?: string;
}

const DEFAULT_HEADERS = [{ name: 'authorization', prefix: 'Bearer ' }] as const;
const DEFAULT_PARAMS = ['access_token'] as const;

function queryParam(path: string, name: string): string | undefined {
  const q = path.indexOf('?');
  if (q < 0) return undefined;
  for (const kv of path.slice(q + 1).split('&')) {
    const eq = kv.indexOf('=');
    const k = eq < 0 ? kv : kv.slice(0, eq);
    if (k === name) {
      try {
        return decodeURIComponent(eq < 0 ? '' : kv.slice(eq + 1));
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}

function cookie(req: JwtRequest, name: string): string | undefined {
  const c = getHeader(req.names, req.values, 'cookie');
  if (c === undefined) return undefined;
  for (const part of c.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** The provider's token: headers first (with their prefix), then query parameters, then cookies. */
function extract(p: JwtProvider, req: JwtRequest): Found | undefined {
  const custom = p.fromHeaders.length + p.fromParams.length + p.fromCookies.length > 0;
  for (const h of custom ? p.fromHeaders : DEFAULT_HEADERS) {
    const v = getHeader(req.names, req.values, h.name.toLowerCase());
    if (v === undefined) continue;
    const prefix = h.prefix;
    if (prefix !== '' && !v.startsWith(prefix)) continue;
    const token = v.slice(prefix.length).trim();
    if (token !== '') return { token, header: h.name.toLowerCase() };
  }
  for (const name of custom ? p.fromParams : DEFAULT_PARAMS) {
    const token = queryParam(req.path, name);
    if (token) return { token };
  }
  for (const name of p.fromCookies) {
    const token = cookie(req, name);
    if (token) return { token };
  }
  return undefined;
}

/**
 * A failed step is `missing` (no token where the provider looks) or not; `foreign` marks a token another issuer
 * signed, which, as in Envoy's any-of aggregation, reports only when nothing more telling failed.
 */
type Step = { readonly ok: true } | { readonly ok: false; readonly missing: boolean; readonly foreign?: boolean; readonly reason: string };
const UNKNOWN_ISSUER = 'Jwt issuer is not configured';
const OK: Step = { ok: true };
const MISSING: Step = { ok: false, missing: true, reason: 'Jwt is missing' };

/** One request's evaluation: each provider is verified at most once, whatever the requirement tree asks. */
class Evaluation {
  readonly verified: Array<{ provider: JwtProvider; found: Found; check: Extract<JwtCheck, { ok: true }> }> = [];
  private readonly results = new Map<string, Step>();

  constructor(
    private readonly cfg: JwtAuthnConfig,
    private readonly req: JwtRequest,
    private readonly now: number,
    private readonly cache: VerifyCache,
  ) {}

  provider(name: string): Step {
    const done = this.results.get(name);
    if (done) return done;
    const p = this.cfg.providers.get(name);
    let step: Step;
    const found = p ? extract(p, this.req) : undefined;
    if (!p || !found) step = MISSING;
    else {
      const check = this.cache.check(p, found.token, this.now);
      if (check.ok) {
        this.verified.push({ provider: p, found, check });
        step = OK;
      } else step = { ok: false, missing: false, ...(check.reason === UNKNOWN_ISSUER ? { foreign: true } : {}), reason: check.reason };
    }
    this.results.set(name, step);
    return step;
  }

  /** Some token sits in a location of one of the filter's providers. */
  anyToken(): boolean {
    for (const p of this.cfg.providers.values()) if (extract(p, this.req)) return true;
    return false;
  }

  run(r: JwtRequirement): Step {
    switch (r.kind) {
      case 'provider':
        return this.provider(r.provider);
      case 'allow_missing_or_failed':
        return OK;
      case 'allow_missing':
        // A token no provider verified: reported only if nothing more telling failed (Envoy's unknown issuer).
        return this.anyToken() ? { ok: false, missing: false, foreign: true, reason: UNKNOWN_ISSUER } : OK;
      case 'all': {
        for (const c of r.requirements) {
          const s = this.run(c);
          if (!s.ok) return s;
        }
        return OK;
      }
      case 'any': {
        let failure: Step | undefined;
        let foreign: Step | undefined;
        for (const c of r.requirements) {
          const s = this.run(c);
          if (s.ok) return OK;
          if (s.missing) continue;
          if (s.foreign) foreign ??= s;
          else failure ??= s;
        }
        return failure ?? foreign ?? MISSING;
      }
    }
  }
}

const MAX_CACHED_TOKEN = 8192;

/** Verified tokens per provider, bounded: a busy client presents the same token on every request. */
export class VerifyCache {
  private readonly entries = new Map<JwtProvider, Map<string, JwtCheck>>();

  constructor(private readonly max = 256) {}

  check(p: JwtProvider, token: string, now: number): JwtCheck {
    let m = this.entries.get(p);
    if (!m) {
      m = new Map();
      this.entries.set(p, m);
    }
    const hit = m.get(token);
    // exp and nbf move with the clock: a cached success is re-checked against now.
    if (hit?.ok) {
      const exp = hit.payload.exp;
      const nbf = hit.payload.nbf;
      if (typeof exp === 'number' && now > exp + p.clockSkewSeconds) return { ok: false, reason: 'Jwt is expired' };
      if (typeof nbf === 'number' && now + p.clockSkewSeconds < nbf) return { ok: false, reason: 'Jwt not yet valid' };
      return hit;
    }
    if (hit) return hit;
    const r = verifyJwt(p, token, now);
    // Bounded in bytes too: a client sending distinct huge tokens must not pin megabytes per worker.
    if (token.length > MAX_CACHED_TOKEN) return r;
    if (m.size >= this.max) m.clear();
    m.set(token, r);
    return r;
  }
}

/** A claim by name, or by a dotted path into nested objects (Envoy's claim_to_headers takes `a.b`). */
function claimValue(payload: Readonly<Record<string, unknown>>, claim: string): unknown {
  if (Object.hasOwn(payload, claim)) return payload[claim];
  let v: unknown = payload;
  for (const k of claim.split('.')) {
    if (typeof v !== 'object' || v === null || !Object.hasOwn(v, k)) return undefined;
    v = (v as Record<string, unknown>)[k];
  }
  return v;
}

/** The payload as RBAC matches it: space-delimited claims (`scope`) also split into lists. */
function normalized(p: JwtProvider, payload: Readonly<Record<string, unknown>>): Readonly<Record<string, unknown>> {
  let out: Record<string, unknown> | undefined;
  for (const c of p.spaceDelimitedClaims) {
    const v = payload[c];
    if (typeof v === 'string') {
      out ??= { ...payload };
      out[c] = v.split(' ').filter((x) => x !== '');
    }
  }
  return out ?? payload;
}

function headerText(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return undefined;
}

/** Headers a verified token fills: a client's own copies are dropped first, so they cannot be forged. */
function sanitize(cfg: JwtAuthnConfig, req: JwtRequest): void {
  for (const p of cfg.providers.values()) {
    if (p.payloadHeader) removeHeader(req.names, req.values, p.payloadHeader.toLowerCase());
    for (const c of p.claimToHeaders) removeHeader(req.names, req.values, c.header.toLowerCase());
  }
}

export function runJwtAuthn(cfg: JwtAuthnConfig, req: JwtRequest, nowSeconds: number, cache: VerifyCache): JwtOutcome {
  if (cfg.bypassCorsPreflight && req.method === 'OPTIONS' && getHeader(req.names, req.values, 'access-control-request-method')) {
    return { ok: true };
  }
  const q = req.path.indexOf('?');
  const path = q < 0 ? req.path : req.path.slice(0, q);
  const rule = cfg.rules.find((r) => matchString(r.match, path));
  sanitize(cfg, req);
  if (!rule?.requires) return { ok: true };
  const ev = new Evaluation(cfg, req, nowSeconds, cache);
  const step = ev.run(rule.requires);
  if (!step.ok) return { ok: false, reason: step.reason };
  let payload: Readonly<Record<string, unknown>> | undefined;
  for (const { provider, found, check } of ev.verified) {
    if (provider.payloadInMetadata !== undefined) payload = normalized(provider, check.payload);
    if (provider.payloadHeader) {
      setHeader(req.names, req.values, provider.payloadHeader.toLowerCase(), Buffer.from(check.payloadText).toString('base64url'));
    }
    for (const c of provider.claimToHeaders) {
      const v = headerText(claimValue(check.payload, c.claim));
      if (v !== undefined) setHeader(req.names, req.values, c.header.toLowerCase(), v);
    }
    if (!provider.forward && found.header !== undefined) removeHeader(req.names, req.values, found.header);
  }
  return payload ? { ok: true, payload } : { ok: true };
}
