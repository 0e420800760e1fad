import { stringify as toYaml } from 'yaml';

export type OutputFormat = 'text' | 'table' | 'json' | 'yaml';

export const outputOption = {
  alias: 'o',
  choices: ['text', 'table', 'json', 'yaml'] as const,
  default: 'text' as const,
  describe: 'output format',
} as const;

/** Writes a command's result to stdout in the format asked for; logs go to stderr. */
export function emit(format: OutputFormat, value: unknown, text: () => string): void {
  if (format === 'json') process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
  else if (format === 'yaml') process.stdout.write(toYaml(value));
  else {
    const t = text();
    process.stdout.write(t.endsWith('\n') || t === '' ? t : `${t}\n`);
  }
}

/** A plain aligned table, kubectl style: upper-case headers, two spaces between columns. */
export function table(headers: readonly string[], rows: ReadonlyArray<ReadonlyArray<string | number | undefined>>): string {
  const cells = [headers.map((h) => h.toUpperCase()), ...rows.map((r) => r.map((c) => (c === undefined ? '' : String(c))))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ')).join('\n');
}
