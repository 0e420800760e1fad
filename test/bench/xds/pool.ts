import { ErrorCode, vmeshError } from '../../../src/lib/errors.js';

/**
 * Runs `task(i)` for i in [0, count) with at most `concurrency` in flight, in index order, and stops
 * starting new tasks after `deadline` (ms since the epoch). The first failure ends the run.
 */
export async function runPool<T>(opts: {
  what: string;
  count: number;
  concurrency: number;
  deadline: number;
  task: (i: number) => Promise<T>;
  onProgress?: (done: number) => void;
}): Promise<T[]> {
  const out = new Array<T>(opts.count);
  let next = 0;
  let done = 0;
  const lane = async () => {
    while (next < opts.count) {
      if (Date.now() > opts.deadline) {
        throw vmeshError(ErrorCode.Unavailable, `${opts.what}: deadline passed after ${done} of ${opts.count}`);
      }
      const i = next++;
      out[i] = await opts.task(i);
      done++;
      opts.onProgress?.(done);
    }
  };
  await Promise.all(Array.from({ length: Math.min(opts.concurrency, opts.count) }, lane));
  return out;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
