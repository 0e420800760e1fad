import type { RemoteAddr } from '../../lib/addr.js';
import { queryValue } from '../match/route-match.js';
import type { HashPolicy, RetryPolicy } from '../proxy-config.js';
import { getHeader } from './headers.js';

/** gRPC status retry_on conditions and the codes they name. */
const GRPC_RETRY_ON: ReadonlyArray<readonly [string, string]> = [
  ['cancelled', '1'],
  ['deadline-exceeded', '4'],
  ['resource-exhausted', '8'],
  ['internal', '13'],
  ['unavailable', '14'],
];

/** Whether a response status (or a trailers-only gRPC status) is one the policy retries. */
export function retryOnResponse(p: RetryPolicy, status: number, names: readonly string[], values: readonly string[]): boolean {
  const on = p.on;
  if (status >= 500) {
    if (on.has('5xx')) return true;
    if ((status === 502 || status === 503 || status === 504) && on.has('gateway-error')) return true;
  }
  if (status === 409 && on.has('retriable-4xx')) return true;
  if (on.has('retriable-status-codes') && p.retriableStatusCodes.includes(status)) return true;
  const gs = names.length > 0 ? getHeader(names, values, 'grpc-status') : undefined;
  if (gs !== undefined) for (const [cond, code] of GRPC_RETRY_ON) if (gs === code && on.has(cond)) return true;
  return false;
}

export type ResetKind = 'connect' | 'reset' | 'timeout' | 'refused';

/** Envoy: 5xx and gateway-error cover every reset, connect failure and per-try timeout; the narrower ones their own. */
export function retryOnReset(p: RetryPolicy, kind: ResetKind): boolean {
  const on = p.on;
  if (on.has('5xx') || on.has('gateway-error') || on.has('reset')) return true;
  if (kind === 'connect') return on.has('connect-failure');
  if (kind === 'refused') return on.has('refused-stream');
  return false;
}

/** Fully jittered exponential backoff: uniform in [0, min(max, base * (2^n - 1))) for retry n (1-based). */
export function backoffMs(p: RetryPolicy, n: number, random: number): number {
  const ceiling = Math.min(p.backoffMaxMs, p.backoffBaseMs * (2 ** Math.min(n, 30) - 1));
  return Math.floor(random * ceiling);
}

function cookieValue(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** The consistent-hash key from the route's hash policies: the first one that yields a value. */
export function hashKeyOf(
  policies: readonly HashPolicy[],
  req: { header(name: string): string | undefined; readonly path: string; readonly remote: RemoteAddr },
): string | undefined {
  for (const p of policies) {
    let v: string | undefined;
    switch (p.kind) {
      case 'header':
        v = req.header(p.name);
        break;
      case 'cookie':
        v = cookieValue(req.header('cookie'), p.name);
        break;
      case 'source_ip':
        v = req.remote.address;
        break;
      case 'query': {
        const q = req.path.indexOf('?');
        v = q < 0 ? undefined : queryValue(req.path, q, p.name);
        break;
      }
    }
    if (v !== undefined) return v;
  }
  return undefined;
}
