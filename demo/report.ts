// What the demo prints once the traffic ran: requests by reviews version, the identity each server saw per hop, and
// `vmesh proxy-status`; plus the checks that decide the exit code.
export interface Hop {
  readonly from: string;
  readonly to: string;
  readonly uri: string | null;
  readonly by: string | null;
  readonly count: number;
}
export interface TrafficResult {
  readonly requests: number;
  readonly ok: number;
  readonly versions: Readonly<Record<string, number>>;
  readonly hops: readonly Hop[];
  readonly failures: Readonly<Record<string, number>>;
  readonly p50: number;
  readonly p99: number;
}

const ORDER = ['client', 'productpage', 'details', 'reviews v1', 'reviews v2', 'reviews v3', 'ratings'];
const rank = (s: string) => (ORDER.includes(s) ? ORDER.indexOf(s) : ORDER.length);

export function renderSplit(r: TrafficResult, weights: Readonly<Record<string, number>>): string {
  const total = Object.values(r.versions).reduce((a, b) => a + b, 0);
  const lines = [`Requests by version (${r.requests} requests to productpage, each calling reviews once):`];
  for (const v of ['v1', 'v2', 'v3']) {
    const n = r.versions[v] ?? 0;
    const share = total === 0 ? 0 : n / total;
    const bar = '█'.repeat(Math.round(share * 40));
    const weight = `(weight ${String(weights[v] ?? 0).padStart(2)}%)`;
    lines.push(`  reviews ${v}  ${String(n).padStart(5)} requests  ${(share * 100).toFixed(1).padStart(5)}%  ${weight}  ${bar}`.trimEnd());
  }
  return lines.join('\n');
}

export function renderIdentities(r: TrafficResult): string {
  const hops = [...r.hops].sort((a, b) => rank(a.from) - rank(b.from) || rank(a.to) - rank(b.to));
  const width = Math.max(...hops.map((h) => `${h.from} → ${h.to}`.length));
  const uriWidth = Math.max(...hops.map((h) => (h.uri ?? '').length)) + 4;
  const lines = ['mTLS identities each server saw (its x-forwarded-client-cert: URI = the calling workload, By = its own):'];
  for (const h of hops) {
    const ids = h.uri ? `${`URI=${h.uri}`.padEnd(uriWidth)}  By=${h.by ?? '-'}` : 'no client certificate (plaintext)';
    lines.push(`  ${`${h.from} → ${h.to}`.padEnd(width)}  ${ids}  ×${h.count}`);
  }
  return lines.join('\n');
}

export function renderFailures(r: TrafficResult): string {
  const entries = Object.entries(r.failures);
  if (entries.length === 0) return '';
  return ['Failed calls:', ...entries.map(([why, n]) => `  ${why}  ×${n}`)].join('\n');
}

/** Why the run does not show what it should, or undefined when it does. */
export function verdict(r: TrafficResult, weights: Readonly<Record<string, number>>): string | undefined {
  const failed = r.requests - r.ok;
  // A loaded machine may lose the odd request; more than 2% means the mesh is not working.
  if (failed > Math.floor(r.requests * 0.02)) return `${failed} of ${r.requests} requests failed (${Object.keys(r.failures)[0] ?? ''})`;
  const plain = r.hops.find((h) => !h.uri || !h.by);
  if (plain) return `the call ${plain.from} → ${plain.to} carried no mTLS identity`;
  const total = Object.values(r.versions).reduce((a, b) => a + b, 0);
  // Four standard deviations of a 90/10 binomial split (±8.5 points at 200 requests): further off, it is not applied.
  const tolerance = 120 / Math.sqrt(Math.max(1, total));
  for (const [v, w] of Object.entries({ v3: 0, ...weights })) {
    const share = ((r.versions[v] ?? 0) / Math.max(1, total)) * 100;
    if (Math.abs(share - w) > tolerance) return `reviews ${v} got ${share.toFixed(1)}% of the traffic, not about ${w}%`;
  }
  return undefined;
}
