import { ErrorCode, vmeshError } from './errors.js';

/** A sustained rate and the burst allowed above it (a token bucket of `burst` tokens refilled at `perSecond`). */
export interface RateLimit {
  readonly perSecond: number;
  readonly burst: number;
}

export type RateDecision = { readonly ok: true } | { readonly ok: false; readonly retryAfterMs: number };

interface Bucket {
  tokens: number;
  at: number;
}

/**
 * One token bucket per key (a host identity): one noisy key spends its own budget, not everyone's. Keys are
 * bounded: past `maxKeys` the least recently used bucket is dropped (a dropped key starts again full, which
 * only forgives, never punishes).
 */
export class KeyedRateLimiter {
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    private readonly limit: RateLimit,
    private readonly now: () => number = Date.now,
    private readonly maxKeys = 100_000,
  ) {}

  describe(): string {
    return `${this.limit.perSecond}/s, burst ${this.limit.burst}`;
  }

  take(key: string): RateDecision {
    const t = this.now();
    const b = this.buckets.get(key) ?? { tokens: this.limit.burst, at: t };
    this.buckets.delete(key);
    b.tokens = Math.min(this.limit.burst, b.tokens + ((t - b.at) / 1000) * this.limit.perSecond);
    b.at = t;
    this.buckets.set(key, b);
    if (this.buckets.size > this.maxKeys) this.buckets.delete(this.buckets.keys().next().value as string);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return { ok: true };
    }
    return { ok: false, retryAfterMs: Math.ceil(((1 - b.tokens) / this.limit.perSecond) * 1000) };
  }
}

/** Takes a token for `key`, or throws VMESH_ERR_RATE_LIMITED saying when to retry. */
export function takeOrRefuse(limiter: KeyedRateLimiter, key: string, what: string): void {
  const d = limiter.take(key);
  if (d.ok) return;
  throw vmeshError(ErrorCode.RateLimited, `${what}: over its rate limit (${limiter.describe()}); retry in ${d.retryAfterMs} ms`, {
    retryAfterMs: d.retryAfterMs,
  });
}
