import { headerMatches, type RequestView, requestHeader } from '../match/route-match.js';
import type { LocalRateLimit, RateLimitAction, RouteRateLimit } from '../proxy-config.js';

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

/** What the rate_limits actions read from a request. */
export interface DescriptorSource extends RequestView {
  readonly remote: { readonly address: string };
  readonly cluster?: string | undefined;
}

/**
 * The descriptors a request produces, one per rate_limits entry, as Envoy builds them: an entry whose action
 * finds nothing (a header absent without skip_if_absent, a header_value_match that does not match) produces none.
 */
export function descriptorsOf(actions: RouteRateLimit['actions'], req: DescriptorSource): (readonly (readonly [string, string])[])[] {
  const out: (readonly (readonly [string, string])[])[] = [];
  for (const entry of actions) {
    const d: (readonly [string, string])[] = [];
    let ok = true;
    for (const a of entry) {
      const e = actionEntry(a, req);
      if (e === 'skip') continue;
      if (e === undefined) {
        ok = false;
        break;
      }
      d.push(e);
    }
    if (ok && d.length > 0) out.push(d);
  }
  return out;
}

function actionEntry(a: RateLimitAction, req: DescriptorSource): readonly [string, string] | 'skip' | undefined {
  switch (a.kind) {
    case 'remote_address':
      return ['remote_address', req.remote.address];
    case 'destination_cluster':
      return req.cluster === undefined ? undefined : ['destination_cluster', req.cluster];
    case 'generic_key':
      return [a.key, a.value];
    case 'request_headers': {
      const v = requestHeader(req, a.header);
      return v === undefined ? (a.skipIfAbsent ? 'skip' : undefined) : [a.key, v];
    }
    case 'header_value_match': {
      const all = a.headers.every((h) => headerMatches(h, requestHeader(req, h.name)));
      return all === a.expectMatch ? [a.key, a.value] : undefined;
    }
  }
}

function sameEntries(a: readonly (readonly [string, string])[], b: readonly (readonly [string, string])[]): boolean {
  // An empty configured value matches any value of its key (Envoy's wildcard descriptor entry).
  return a.length === b.length && a.every(([k, v], i) => k === b[i]?.[0] && (v === '' || v === b[i]?.[1]));
}

/**
 * Whether a request passes a route's local rate limit: the buckets of the configured descriptors it produced
 * first (fewest tokens per fill first, as Envoy orders them), then the default bucket.
 */
export function routeAllows(limiters: RateLimiters, rl: RouteRateLimit, req: DescriptorSource): boolean {
  const produced = rl.descriptors.length > 0 ? descriptorsOf(rl.actions, req) : [];
  const matched = rl.descriptors.filter((c) => produced.some((d) => sameEntries(c.entries, d)));
  matched.sort((a, b) => a.bucket.tokensPerFill / a.bucket.fillIntervalMs - b.bucket.tokensPerFill / b.bucket.fillIntervalMs);
  for (const m of matched) if (!limiters.take(m.bucket)) return false;
  if (matched.length > 0 && !rl.alwaysConsumeDefault) return true;
  return rl.bucket ? limiters.take(rl.bucket) : true;
}
