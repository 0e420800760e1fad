import { MAX_JWKS_BYTES, parseJwks } from '../api/jwks.js';
import type { Resource } from '../api/resource.js';
import { jwksSourceOf } from '../api/resources/security-request-authentication.js';
import type { Logger } from '../lib/logger.js';
import type { ConfigStore } from '../store/config-store.js';

/**
 * Fetches the key sets RequestAuthentication rules name by `jwksUri` (or by their issuer's OpenID discovery
 * document), as istiod does in its default fetch mode, so proxies get keys inline and never reach out. A set is
 * refreshed every 20 minutes (istiod's interval); a failed refresh keeps the last good set; a set never fetched
 * is absent, so its tokens fail (a request without a token is unaffected). Each fetch is bounded in time (the
 * rule's `timeout`, 5 s by default) and size, and at most a few run at once.
 */

export type FetchText = (url: string, timeoutMs: number) => Promise<string>;

interface Wanted {
  readonly key: string;
  readonly timeoutMs: number;
  readonly fetch: () => Promise<string>;
}

const DEFAULT_TIMEOUT_MS = 5_000;
const REFRESH_MS = 20 * 60_000;
/** After a failure, the next try waits this long (or the next config change). */
const RETRY_MS = 30_000;
const PARALLEL = 4;

/** GET over http(s), refusing bodies over the JWKS limit and anything but 200. */
export const fetchText: FetchText = async (url, timeoutMs) => {
  const u = new URL(url);
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error(`${url}: only http and https are fetched`);
  const res = await fetch(u, { signal: AbortSignal.timeout(timeoutMs), redirect: 'follow' });
  if (res.status !== 200) {
    await res.body?.cancel();
    throw new Error(`${url}: HTTP ${res.status}`);
  }
  const chunks: Uint8Array[] = [];
  if (!res.body) return '';
  const reader = res.body.getReader();
  let size = 0;
  for (;;) {
    const r = await reader.read();
    if (r.done) break;
    size += r.value.byteLength;
    if (size > MAX_JWKS_BYTES) {
      await reader.cancel();
      throw new Error(`${url}: over ${MAX_JWKS_BYTES} bytes`);
    }
    chunks.push(r.value);
  }
  return Buffer.concat(chunks).toString('utf8');
};

export class JwksResolver {
  private sets = new Map<string, string>();
  private readonly failedAt = new Map<string, number>();
  private readonly fetchedAt = new Map<string, number>();
  private readonly inFlight = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void) | undefined;

  constructor(
    private readonly d: {
      readonly config: ConfigStore;
      readonly logger: Logger;
      readonly onChange: () => void;
      readonly fetch?: FetchText;
      readonly now?: () => number;
    },
  ) {}

  current(): ReadonlyMap<string, string> {
    return this.sets;
  }

  start(): void {
    this.unsubscribe = this.d.config.onChange(() => {
      void this.sync();
    });
    this.timer = setInterval(() => void this.sync(), RETRY_MS);
    this.timer.unref();
    void this.sync();
  }

  stop(): void {
    this.unsubscribe?.();
    if (this.timer) clearInterval(this.timer);
  }

  private wanted(): Wanted[] {
    const get = this.d.fetch ?? fetchText;
    const out = new Map<string, Wanted>();
    for (const ra of this.d.config.list('RequestAuthentication') as Resource<'RequestAuthentication'>[]) {
      for (const r of ra.spec.jwtRules ?? []) {
        const src = jwksSourceOf(r);
        const timeoutMs = r.timeout ?? DEFAULT_TIMEOUT_MS;
        if (src.kind === 'uri') out.set(src.key, { key: src.key, timeoutMs, fetch: () => get(src.uri, timeoutMs) });
        else if (src.kind === 'discovery' && /^https?:\/\//.test(src.issuer)) {
          out.set(src.key, { key: src.key, timeoutMs, fetch: () => discover(get, src.issuer, timeoutMs) });
        }
      }
    }
    return [...out.values()];
  }

  /** Fetches what is missing or due, drops what no rule names any more; resolves when this round is done. */
  async sync(): Promise<void> {
    const now = (this.d.now ?? Date.now)();
    const wanted = this.wanted();
    const keys = new Set(wanted.map((w) => w.key));
    const gone = [...this.sets.keys()].filter((k) => !keys.has(k));
    for (const k of gone) this.fetchedAt.delete(k);
    const due = wanted.filter((w) => {
      if (this.inFlight.has(w.key)) return false;
      const failed = this.failedAt.get(w.key);
      if (failed !== undefined && now - failed < RETRY_MS) return false;
      const at = this.fetchedAt.get(w.key);
      return at === undefined || now - at >= REFRESH_MS;
    });
    if (gone.length > 0) {
      this.update((m) => {
        for (const k of gone) m.delete(k);
      });
    }
    for (let i = 0; i < due.length; i += PARALLEL) {
      await Promise.all(due.slice(i, i + PARALLEL).map((w) => this.fetchOne(w)));
    }
  }

  private async fetchOne(w: Wanted): Promise<void> {
    this.inFlight.add(w.key);
    try {
      const text = await w.fetch();
      const parsed = parseJwks(text);
      if (!parsed.ok) throw new Error(`invalid JWKS: ${parsed.error}`);
      this.failedAt.delete(w.key);
      this.fetchedAt.set(w.key, (this.d.now ?? Date.now)());
      if (this.sets.get(w.key) !== text) {
        this.update((m) => m.set(w.key, text));
        this.d.logger.info({ jwks: w.key, keys: parsed.value.keys.length }, 'jwks: fetched');
      }
    } catch (e) {
      this.failedAt.set(w.key, (this.d.now ?? Date.now)());
      this.d.logger.warn({ jwks: w.key, err: (e as Error).message }, 'jwks: fetch failed; tokens of this issuer fail until it succeeds');
    } finally {
      this.inFlight.delete(w.key);
    }
  }

  /** A new map per change: a model keeps the one it was built with. */
  private update(change: (m: Map<string, string>) => void): void {
    const m = new Map(this.sets);
    change(m);
    this.sets = m;
    this.d.onChange();
  }
}

/** OpenID discovery: `<issuer>/.well-known/openid-configuration` names the `jwks_uri`. */
async function discover(get: FetchText, issuer: string, timeoutMs: number): Promise<string> {
  const doc: unknown = JSON.parse(await get(`${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`, timeoutMs));
  const uri = typeof doc === 'object' && doc !== null ? (doc as Record<string, unknown>).jwks_uri : undefined;
  if (typeof uri !== 'string') throw new Error(`${issuer}: the discovery document has no jwks_uri`);
  return get(uri, timeoutMs);
}
