// Micro-benchmark: what a full match of a configured regex costs per request with the engine the proxy uses
// (src/lib/safe-regex.ts, re2js, linear time) against JavaScript's backtracking RegExp anchored ^(?:...)$, for
// typical route and header regexes and for the catastrophic `(a+)+b`. Optional engines (the native `re2` binding,
// `re2-wasm`) are measured when installed under --engines DIR (they are not vmesh dependencies).
// Prints a table; writes test/bench/results/regex-cost.json.
// `node --import tsx test/bench/proxy/regex-cost.ts [--engines /tmp/re2try]`
import { mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { SafeRegex } from '../../../src/lib/safe-regex.js';

const { values: opt } = parseArgs({ options: { engines: { type: 'string' }, 'budget-ms': { type: 'string', default: '300' } } });
const BUDGET_MS = Number(opt['budget-ms']);

type FullMatch = (value: string) => boolean;
interface Engine {
  name: string;
  compile(src: string): FullMatch;
}

const engines: Engine[] = [
  {
    name: 'JS RegExp',
    compile: (src) => {
      const re = new RegExp(`^(?:${src})$`);
      return (v) => re.test(v);
    },
  },
  {
    name: 're2js (vmesh)',
    compile: (src) => {
      const re = SafeRegex.compile(src);
      return (v) => re.fullMatch(v);
    },
  },
];
if (opt.engines) {
  const req = createRequire(join(opt.engines, 'package.json'));
  for (const [pkg, name, flags] of [
    ['re2', 're2 (native)', ''],
    ['re2-wasm', 're2-wasm', 'u'],
  ] as const) {
    try {
      const mod = req(pkg) as { RE2?: new (s: string, f: string) => RegExp } & (new (s: string, f: string) => RegExp);
      const Ctor = mod.RE2 ?? mod;
      engines.push({
        name,
        compile: (src) => {
          const re = new Ctor(`^(?:${src})$`, flags);
          return (v) => re.test(v);
        },
      });
    } catch (e) {
      console.log(`${name}: not measured (${(e as Error).message.split('\n')[0]})`);
    }
  }
}

const UA = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36';
const cases: Array<{ case: string; regex: string; input: string; expect: boolean }> = [
  { case: 'uri /api/v[0-9]+/.* (match)', regex: '/api/v[0-9]+/.*', input: '/api/v2/users/42/orders', expect: true },
  { case: 'uri /api/v[0-9]+/.* (miss)', regex: '/api/v[0-9]+/.*', input: '/static/app.js', expect: false },
  {
    case: 'uri /users/[0-9]+/orders/<uuid>',
    regex: '/users/[0-9]+/orders/[a-f0-9-]{36}',
    input: '/users/42/orders/1b4e28ba-2fa1-11d2-883f-0016d3cca427',
    expect: true,
  },
  { case: 'header user-agent .*Chrome/[0-9]+.*', regex: '.*Chrome/[0-9]+.*', input: UA, expect: true },
  {
    case: 'authority [a-z0-9-]+\\.example\\.com',
    regex: '[a-z0-9-]+\\.example\\.com(:[0-9]+)?',
    input: 'shop-1.example.com:8080',
    expect: true,
  },
  { case: '(a+)+b, 20 a + c', regex: '(a+)+b', input: `${'a'.repeat(20)}c`, expect: false },
  { case: '(a+)+b, 24 a + c', regex: '(a+)+b', input: `${'a'.repeat(24)}c`, expect: false },
  { case: '(a+)+b, 41 a + c (the issue)', regex: '(a+)+b', input: `${'a'.repeat(41)}c`, expect: false },
  { case: '(a+)+b, 100k a + c', regex: '(a+)+b', input: `${'a'.repeat(100_000)}c`, expect: false },
  { case: '/(a+)+b, 8 KiB path of a', regex: '/(a+)+b', input: `/${'a'.repeat(8191)}`, expect: false },
];

/** ns per match (median of 5 rounds), or undefined when one trial match already exceeds the budget. */
function measure(fn: FullMatch, input: string, expect: boolean): { ns?: number; note?: string } {
  const t0 = process.hrtime.bigint();
  const got = fn(input);
  const first = Number(process.hrtime.bigint() - t0) / 1e6;
  if (got !== expect) return { note: `wrong answer ${got}` };
  if (first > BUDGET_MS) return { note: `> ${BUDGET_MS} ms, not repeated` };
  const n = Math.max(1, Math.min(200_000, Math.floor((BUDGET_MS * 1e6) / 5 / Math.max(first * 1e6, 50))));
  const rounds: number[] = [];
  let sink = 0;
  for (let r = 0; r < 5; r++) {
    const t = process.hrtime.bigint();
    for (let i = 0; i < n; i++) sink += fn(input) ? 1 : 0;
    rounds.push(Number(process.hrtime.bigint() - t) / n);
  }
  if (sink < 0) console.log(sink);
  rounds.sort((a, b) => a - b);
  return { ns: Math.round(rounds[2] as number) };
}

/** JS RegExp on (a+)+b doubles per extra byte; 41 bytes and beyond are estimated from 24, never run. */
const JS_UNSAFE = (c: (typeof cases)[number]) => c.regex.includes('(a+)+') && c.input.length > 26;

const rows: Array<Record<string, string | number | undefined>> = [];
for (const c of cases) {
  const row: Record<string, string | number | undefined> = { case: c.case };
  for (const e of engines) {
    if (e.name === 'JS RegExp' && JS_UNSAFE(c)) {
      row[e.name] = 'hangs';
      continue;
    }
    const r = measure(e.compile(c.regex), c.input, c.expect);
    row[e.name] = r.ns ?? r.note;
  }
  rows.push(row);
}
const js24 = rows.find((r) => String(r.case).startsWith('(a+)+b, 24'))?.['JS RegExp'];
const estimate41 = typeof js24 === 'number' ? (js24 * 2 ** 17) / 1e9 : undefined;

const compileRows = engines.map((e) => {
  const t = process.hrtime.bigint();
  for (let i = 0; i < 2000; i++) e.compile(`/api/v${i}/[a-z]+/.*`);
  return { engine: e.name, usPerCompile: Math.round(Number(process.hrtime.bigint() - t) / 2000 / 100) / 10 };
});

const width = 40;
console.log(`${'full match, ns per match (median of 5)'.padEnd(width)}${engines.map((e) => e.name.padStart(16)).join('')}`);
for (const r of rows) console.log(`${String(r.case).padEnd(width)}${engines.map((e) => String(r[e.name]).padStart(16)).join('')}`);
console.log(`${'compile /api/v<i>/[a-z]+/.* (us)'.padEnd(width)}${compileRows.map((r) => String(r.usPerCompile).padStart(16)).join('')}`);
if (estimate41 !== undefined) console.log(`JS RegExp on 41 a + c: ~${Math.round(estimate41)} s of one core (24-byte time x 2^17), not run`);
const dir = join(import.meta.dirname, '..', 'results');
mkdirSync(dir, { recursive: true });
writeFileSync(
  join(dir, 'regex-cost.json'),
  `${JSON.stringify({ at: new Date().toISOString(), node: process.version, rows, compile: compileRows, jsEstimate41Seconds: estimate41 }, null, 2)}\n`,
);
