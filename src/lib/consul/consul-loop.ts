import { type BackoffOptions, backoffDelay, sleep } from '../backoff.js';
import { ErrorCode, isVmeshError, VmeshError } from '../errors.js';
import type { ConsulQueryResult } from './consul-client.js';

/** Consul's docs ask blocking clients to rate-limit themselves: a loop never starts two requests closer than this. */
export const MIN_REQUEST_INTERVAL_MS = 50;

export interface BlockingLoopOptions {
  readonly signal: AbortSignal;
  readonly backoff: BackoffOptions;
  readonly minIntervalMs?: number;
  /** One read; `index` 0 means a plain (non-blocking) read. */
  query(index: number, signal: AbortSignal): Promise<ConsulQueryResult>;
  /** Handles a response; throwing (e.g. a malformed body) counts as a failed request. */
  onResult(result: ConsulQueryResult): void;
  onError(e: VmeshError): void;
}

/**
 * The index to send next, following Consul's blocking-query rules: an index lower than the previous one
 * (a restore, a new leader with an older snapshot) restarts with a plain read; an index below 1 would make
 * every request return at once, so it becomes 1.
 */
export function nextIndex(previous: number, returned: number): number {
  if (returned < previous) return 0;
  return returned < 1 ? 1 : returned;
}

/**
 * Long-polls one endpoint until `signal` aborts. A failure keeps the caller's last result (nothing is
 * reported as gone), backs off with full jitter, and then restarts with a plain read so whatever changed
 * while Consul was unreachable is picked up even if its index did not move past ours.
 */
export async function runBlockingLoop(o: BlockingLoopOptions): Promise<void> {
  const minInterval = o.minIntervalMs ?? MIN_REQUEST_INTERVAL_MS;
  let index = 0;
  let failures = 0;
  let lastStart = Number.NEGATIVE_INFINITY;
  while (!o.signal.aborted) {
    const gap = lastStart + minInterval - performance.now();
    if (gap > 0 && !(await sleep(gap, o.signal))) break;
    lastStart = performance.now();
    try {
      const r = await o.query(index, o.signal);
      if (o.signal.aborted) break;
      o.onResult(r);
      index = nextIndex(index, r.index);
      failures = 0;
    } catch (e) {
      if (o.signal.aborted) break;
      o.onError(isVmeshError(e) ? e : new VmeshError(ErrorCode.ConsulUnavailable, `consul: ${String(e)}`, {}, { cause: e }));
      index = 0;
      await sleep(backoffDelay(failures, o.backoff), o.signal);
      failures += 1;
    }
  }
}
