import { err, ok, type Result } from '../../lib/result.js';

/** Nanoseconds per unit, as Go's time.ParseDuration reads them (Istio's YAML is parsed that way). */
const UNIT_NS: Readonly<Record<string, bigint>> = {
  ns: 1n,
  us: 1_000n,
  µs: 1_000n,
  μs: 1_000n,
  ms: 1_000_000n,
  s: 1_000_000_000n,
  m: 60_000_000_000n,
  h: 3_600_000_000_000n,
};

const PART = /^(\d+)?(?:\.(\d*))?(ns|us|µs|μs|ms|s|m|h)/;
const NS_PER_MS = 1_000_000n;
/** Ten years: longer than any timeout means anything, short enough to stay exact in a double. */
const MAX_MS = 10 * 365 * 24 * 3_600_000;

/**
 * Parses a duration as Istio writes them ("1s", "0.5s", "100ms", "1m", "1h30m") into milliseconds.
 * Like Istio, it refuses what is not a whole number of milliseconds and negative durations.
 */
export function parseDuration(text: string): Result<number, string> {
  const bad = (why: string) => err(`${JSON.stringify(text)} is not a duration: ${why}`);
  const s = text.trim();
  if (s === '') return bad('it is empty; write e.g. "1s" or "100ms"');
  if (s === '0') return ok(0);
  if (s.startsWith('-')) return bad('durations cannot be negative');
  let rest = s.startsWith('+') ? s.slice(1) : s;
  let total = 0n;
  while (rest !== '') {
    const m = PART.exec(rest);
    const whole = m?.[1];
    const frac = m?.[2];
    const unit = m?.[3];
    if (!m || unit === undefined || (whole === undefined && !frac)) {
      return bad(
        /^\d+(\.\d+)?$/.test(s) ? `it has no unit; write e.g. "${s}s" or "${s}ms"` : 'want a number and a unit (ms, s, m, h), e.g. "1.5s"',
      );
    }
    const perUnit = UNIT_NS[unit] ?? 1n;
    let ns = BigInt(whole ?? '0') * perUnit;
    if (frac) {
      const scale = 10n ** BigInt(frac.length);
      const fracNs = BigInt(frac) * perUnit;
      if (fracNs % scale !== 0n) return bad('only millisecond precision is supported');
      ns += fracNs / scale;
    }
    total += ns;
    rest = rest.slice(m[0].length);
  }
  if (total % NS_PER_MS !== 0n) return bad('only millisecond precision is supported');
  const ms = total / NS_PER_MS;
  if (ms > BigInt(MAX_MS)) return bad('it is longer than ten years');
  return ok(Number(ms));
}

/** The shortest Istio-style text for a number of milliseconds: 1500 -> "1.5s", 60000 -> "1m", 250 -> "250ms". */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0 || ms >= 1000) return `${ms / 1000}s`;
  return `${ms}ms`;
}
