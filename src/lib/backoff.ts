export interface BackoffOptions {
  /** Delay cap of the first retry (attempt 0), doubled per attempt. Default 100 ms. */
  readonly baseMs?: number;
  /** Upper bound of any delay. Default 30 s. */
  readonly maxMs?: number;
  /** Source of randomness in [0, 1); injectable so tests are deterministic. */
  readonly random?: () => number;
}

/**
 * Retrying a controller (xDS stream, reports): full jitter spreads a fleet's retries, and the bound keeps an
 * agent at most about a second behind a restarted controller. Retrying a refused connection costs it little.
 */
export const CONTROLLER_RETRY: BackoffOptions = Object.freeze({ baseMs: 100, maxMs: 1000 });

/**
 * grpc-js's own reconnect backoff (1 s doubling to 120 s by default) decides when a channel even tries again;
 * streams retried sooner than that fail at once. Bounded like CONTROLLER_RETRY (grpc-js adds +-20 % jitter).
 */
export const CONTROLLER_CHANNEL_OPTIONS = Object.freeze({
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 1000,
});

const DEFAULT_BASE_MS = 100;
const DEFAULT_MAX_MS = 30_000;
// 2^40 times any sane base is far beyond any cap: stop doubling there so huge attempts never reach Infinity.
const MAX_EXPONENT = 40;

/**
 * Exponential backoff with full jitter: a uniform delay in [0, min(maxMs, baseMs * 2^attempt)).
 * Full jitter spreads the retries of many clients that failed together (Consul down, controller restart)
 * instead of having them return in lockstep. `attempt` counts from 0; bad inputs never yield NaN or < 0.
 */
export function backoffDelay(attempt: number, opts: BackoffOptions = {}): number {
  const base = finiteNonNegative(opts.baseMs, DEFAULT_BASE_MS);
  const max = finiteNonNegative(opts.maxMs, DEFAULT_MAX_MS);
  const n = Number.isNaN(attempt) || attempt <= 0 ? 0 : Math.min(Math.floor(attempt), MAX_EXPONENT);
  const cap = Math.min(max, base * 2 ** n);
  let r = (opts.random ?? Math.random)();
  if (!Number.isFinite(r) || r < 0) r = 0;
  if (r >= 1) r = 1 - Number.EPSILON;
  return Math.floor(r * cap);
}

function finiteNonNegative(v: number | undefined, dflt: number): number {
  return v !== undefined && Number.isFinite(v) && v >= 0 ? v : dflt;
}

/**
 * Waits `ms` milliseconds. Aborting `signal` ends the wait early without throwing: retry loops check their
 * signal right after, and a rejection here would only force every caller to catch it.
 * Resolves true when the full time elapsed, false when aborted.
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
  if (signal?.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(
      () => {
        signal?.removeEventListener('abort', onAbort);
        resolve(true);
      },
      Math.max(0, Number.isFinite(ms) ? ms : 0),
    );
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
