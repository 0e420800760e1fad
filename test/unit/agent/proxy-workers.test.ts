import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, describe, test } from 'node:test';
import { ProxyWorkers, WORKER_SEMI_SPACE_MB } from '../../../src/agent/proxy-workers.js';
import { createLogger } from '../../../src/lib/logger.js';

const FAKE = join(import.meta.dirname, 'fixtures', 'fake-worker.mjs');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, fn: () => T | undefined, timeoutMs: number): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(25);
  }
}

/** One ProxyWorkers with one fake worker following `plan`, its log lines, and what capture would have seen. */
function start(plan: string[], opts: { livenessTimeoutMs: number; startupTimeoutMs?: number; semiSpaceMb?: number }) {
  const dir = mkdtempSync(join(tmpdir(), 'vmesh-workers-'));
  writeFileSync(join(dir, 'plan.json'), JSON.stringify(plan));
  const logs: Array<Record<string, unknown>> = [];
  const destination = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split('\n').filter(Boolean)) logs.push(JSON.parse(l));
      cb();
    },
  });
  // Each change the agent's capture reacts to: does a worker listen on the outbound port (full capture) or not (DNS only)?
  const capture: Array<'full' | 'dns'> = [];
  const workers: ProxyWorkers = new ProxyWorkers({
    count: 1,
    socketPath: dir,
    logLevel: 'info',
    logger: createLogger({ destination }),
    onListening: () => {
      const next = workers.listening().some((l) => l.port === 15001) ? 'full' : 'dns';
      if (capture.at(-1) !== next) capture.push(next);
    },
    entry: FAKE,
    ...opts,
  });
  workers.start();
  return {
    workers,
    logs,
    capture,
    starts: () => readFileSync(join(dir, 'starts'), 'utf8').length,
    execArgv: (): string[] => {
      try {
        return JSON.parse(readFileSync(join(dir, 'execargv.json'), 'utf8'));
      } catch {
        return [];
      }
    },
    async stop() {
      await workers.stop(100);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

describe('proxy workers: a worker hung at birth is killed and replaced', () => {
  const running: Array<{ stop(): Promise<void> }> = [];
  after(async () => {
    for (const r of running) await r.stop();
  });

  test('stuck after `started` (compiling its first config): killed after the liveness timeout, replaced, serving', async () => {
    const r = start(['started-hang', 'serve'], { livenessTimeoutMs: 600 });
    running.push(r);
    const first = await until('first worker', () => r.workers.pids()[0], 10_000);
    await until('a replacement serves', () => (r.workers.serving() === 1 ? true : undefined), 15_000);
    assert.notEqual(r.workers.pids()[0], first);
    assert.equal(r.starts(), 2);
    assert.ok(
      r.logs.some((l) => l.msg === 'proxy worker answers no liveness ping; killing it' && l.pid === first),
      JSON.stringify(r.logs),
    );
    assert.deepEqual(r.capture, ['dns', 'full']);
  });

  test('stuck before `started` (loading): killed after the startup deadline, replaced, serving', async () => {
    const r = start(['silent', 'serve'], { livenessTimeoutMs: 600, startupTimeoutMs: 1500 });
    running.push(r);
    const first = await until('first worker', () => r.workers.pids()[0], 10_000);
    await until('a replacement serves', () => (r.workers.serving() === 1 ? true : undefined), 20_000);
    assert.notEqual(r.workers.pids()[0], first);
    assert.ok(
      r.logs.some((l) => l.msg === 'proxy worker did not start (hung at birth); killing it' && l.pid === first),
      JSON.stringify(r.logs),
    );
  });

  test('listening but never answering a ping: stops counting at once (capture falls back to DNS only), then replaced', async () => {
    const r = start(['listening-hang', 'serve'], { livenessTimeoutMs: 600 });
    running.push(r);
    await until('capture back to full on the replacement', () => (r.capture.length === 3 ? true : undefined), 15_000);
    assert.deepEqual(r.capture, ['full', 'dns', 'full']);
    assert.equal(r.starts(), 2);
    assert.equal(r.workers.serving(), 1);
  });

  test('a worker hung at every birth is restarted with backoff, not in a tight loop', async () => {
    const r = start(['started-hang'], { livenessTimeoutMs: 300 });
    running.push(r);
    await until(
      'four restarts',
      () => (r.logs.filter((l) => l.msg === 'proxy worker exited; restarting').length >= 4 ? true : undefined),
      30_000,
    );
    const restarts = r.logs.filter((l) => l.msg === 'proxy worker exited; restarting');
    // The attempt count grows (the delay's cap doubles with it: full jitter below 200 ms * 2^attempt).
    assert.deepEqual(
      restarts.slice(0, 4).map((l) => l.attempt),
      [0, 1, 2, 3],
    );
    for (const [i, l] of restarts.entries()) assert.ok((l.restartInMs as number) < 200 * 2 ** i, JSON.stringify(l));
    assert.equal(r.workers.serving(), 0);
    assert.deepEqual(r.capture, ['dns']);
  });

  test("workers get their own young-generation size, whatever the agent's own flags", async () => {
    const semi = (argv: string[]) => argv.filter((a) => a.startsWith('--max-semi-space-size'));
    const dflt = start(['serve'], { livenessTimeoutMs: 5000 });
    running.push(dflt);
    await until('the worker started', () => (dflt.execArgv().length > 0 ? true : undefined), 15_000);
    assert.deepEqual(semi(dflt.execArgv()), [`--max-semi-space-size=${WORKER_SEMI_SPACE_MB}`]);
    const set = start(['serve'], { livenessTimeoutMs: 5000, semiSpaceMb: 3 });
    running.push(set);
    await until('the worker started', () => (set.execArgv().length > 0 ? true : undefined), 15_000);
    assert.deepEqual(semi(set.execArgv()), ['--max-semi-space-size=3']);
  });
});
