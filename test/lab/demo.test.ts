import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { requireLabTools } from './lab.js';

// `npm run demo` end to end, as a child process the way a user runs it: its exit code, the lines a user reads, and
// that nothing of its lab is left behind, after a full run and after a SIGINT in the middle.
requireLabTools(['ip', 'nft', 'setpriv']);

const ROOT = join(import.meta.dirname, '..', '..');
const SA = 'spiffe://cluster.local/ns/default/sa/';

interface Run {
  pid: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs the demo; `interruptAfter` sends SIGINT once stdout matches it. Killed after `timeoutMs` whatever happens. */
function runDemo(opts: { interruptAfter?: RegExp; timeoutMs: number }): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'demo', 'run.ts')], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let interrupted = false;
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      if (opts.interruptAfter && !interrupted && opts.interruptAfter.test(stdout)) {
        interrupted = true;
        child.kill('SIGINT');
      }
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ pid: child.pid ?? -1, code, signal, stdout, stderr });
    });
  });
}

async function leftovers(pid: number): Promise<string[]> {
  const out = await new Promise<string>((resolve) => {
    const c = spawn('ip', ['netns', 'list'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let s = '';
    c.stdout.setEncoding('utf8').on('data', (d: string) => {
      s += d;
    });
    c.on('close', () => resolve(s));
  });
  const prefix = `vmesh-${pid}-`;
  const netns = out.split('\n').filter((l) => l.startsWith(prefix));
  let dirs: string[] = [];
  try {
    dirs = readdirSync('/etc/netns').filter((d) => d.startsWith(prefix));
  } catch {
    /* no /etc/netns at all */
  }
  return [...netns, ...dirs.map((d) => `/etc/netns/${d}`)];
}

const show = (r: Run) => `exit ${r.code ?? r.signal}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;

describe('npm run demo', () => {
  test('runs bookinfo end to end: a 90/10 split, an mTLS identity on every hop, every agent SYNCED, then tears down', async () => {
    // The demo aims at about a minute; a loaded machine gets far more before this counts as a hang.
    const r = await runDemo({ timeoutMs: 300_000 });
    assert.equal(r.code, 0, show(r));
    // One progress line per step, each with its timing.
    for (let i = 1; i <= 10; i++) assert.match(r.stdout, new RegExp(`\\d+\\.\\ds\\s+${i}/10\\s+✓ .*\\(\\d+\\.\\ds\\)`), show(r));

    const count = (v: string) => Number(new RegExp(`reviews ${v}\\s+(\\d+) requests`).exec(r.stdout)?.[1] ?? Number.NaN);
    const [v1, v2, v3] = [count('v1'), count('v2'), count('v3')];
    assert.equal(v1 + v2, 200, show(r));
    assert.equal(v3, 0, show(r));
    // 10% of 200 is 20 (sd ≈ 4.2): far outside 6..40 only if the split is not applied.
    assert.ok(v2 >= 6 && v2 <= 40, `v2 got ${v2} of 200\n${show(r)}`);

    const hops: Array<[string, string, string]> = [
      ['client → productpage', 'client', 'bookinfo-productpage'],
      ['productpage → details', 'bookinfo-productpage', 'bookinfo-details'],
      ['productpage → reviews v1', 'bookinfo-productpage', 'bookinfo-reviews-v1'],
      ['productpage → reviews v2', 'bookinfo-productpage', 'bookinfo-reviews-v2'],
      ['reviews v2 → ratings', 'bookinfo-reviews-v2', 'bookinfo-ratings'],
    ];
    for (const [hop, uri, by] of hops) {
      assert.match(r.stdout, new RegExp(`${hop}\\s+URI=${SA}${uri}\\s+By=${SA}${by}\\s+×\\d+`), show(r));
    }
    assert.doesNotMatch(r.stdout, /plaintext|Failed calls/, show(r));

    for (const node of ['h2', 'h3', 'h4']) {
      assert.match(r.stdout, new RegExp(`^${node}\\s+yes \\(\\w+\\)\\s+\\S+(\\s+SYNCED){6}\\s+\\w+$`, 'm'), show(r));
    }
    // The traffic graph the agents reported: every call edge, each over mutual TLS, with the totals sent.
    const edge = (from: string, to: string) =>
      Number(
        new RegExp(`^${from}\\s+${to}\\s+http\\s+\\S+/s\\s+\\d+\\.\\d%\\s+.*\\s+yes\\s+(\\d+)$`, 'm').exec(r.stdout)?.[1] ?? Number.NaN,
      );
    assert.ok(edge('client\\.default', 'productpage\\.default\\.mesh') >= 200, show(r));
    assert.ok(edge('productpage\\.default\\.mesh', 'productpage\\.default') >= 200, show(r));
    assert.ok(edge('productpage\\.default', 'details\\.default\\.mesh') >= 200, show(r));
    assert.ok(edge('productpage\\.default', 'reviews\\.default\\.mesh') >= 200, show(r));
    // The split's share of reviews, as the reviews v2 proxy counted it (the warm-up requests may add a few).
    const toV2 = edge('reviews\\.default\\.mesh', 'reviews-v2\\.default');
    assert.ok(toV2 >= v2 && toV2 <= v2 + 5, `reviews -> reviews-v2: ${toV2}, the demo counted ${v2}\n${show(r)}`);
    assert.ok(edge('reviews-v2\\.default', 'ratings\\.default\\.mesh') >= v2, show(r));
    assert.match(r.stdout, /✓ lab torn down/, show(r));
    assert.match(r.stdout.trimEnd().split('\n').pop() ?? '', /^vmesh demo: done in \d+\.\ds: 200\/200 requests/, show(r));
    assert.deepEqual(await leftovers(r.pid), [], show(r));
  });

  test('Ctrl-C (SIGINT) in the middle tears the lab down and exits 130 with one line saying so', async () => {
    const r = await runDemo({ interruptAfter: /2\/10\s+✓/, timeoutMs: 120_000 });
    assert.equal(r.code, 130, show(r));
    assert.match(r.stdout, /✓ lab torn down/, show(r));
    assert.match(r.stderr.trimEnd().split('\n').pop() ?? '', /^vmesh demo: interrupted by SIGINT at step \d+\/10 /, show(r));
    assert.deepEqual(await leftovers(r.pid), [], show(r));
  });
});
