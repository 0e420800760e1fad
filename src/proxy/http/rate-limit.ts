import type { LocalRateLimit } from '../proxy-config.js';

interface Bucket {
  tokens: number;
  /** When the bucket was last refilled (whole fill intervals only, as Envoy's timer-driven fills). */
  filledAt: number;
}

/**
 * Envoy's HTTP local rate limit: one token bucket per filter config per proxy process, refilled by
 * `tokensPerFill` every `fillIntervalMs` up to `maxTokens`; a request without a token is refused. Buckets are
 * keyed by the compiled config object, so a config update starts a new, full bucket.
 */
export class RateLimiters {
  private readonly buckets = new WeakMap<LocalRateLimit, Bucket>();

  constructor(private readonly now: () => number) {}

  take(rl: LocalRateLimit): boolean {
    const now = this.now();
    let b = this.buckets.get(rl);
    if (!b) {
      b = { tokens: rl.maxTokens, filledAt: now };
      this.buckets.set(rl, b);
    } else if (rl.fillIntervalMs > 0) {
      const fills = Math.floor((now - b.filledAt) / rl.fillIntervalMs);
      if (fills > 0) {
        b.tokens = Math.min(rl.maxTokens, b.tokens + fills * rl.tokensPerFill);
        b.filledAt += fills * rl.fillIntervalMs;
      }
    }
    if (b.tokens < 1) return false;
    b.tokens--;
    return true;
  }
}
