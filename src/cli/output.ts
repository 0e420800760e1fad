import { stringify as toYaml } from 'yaml';

export type OutputFormat = 'text' | 'json' | 'yaml';

/** Writes a command's result to stdout in the format asked for; logs go to stderr. */
export function emit(format: OutputFormat, value: unknown, text: () => string): void {
  if (format === 'json') process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
  else if (format === 'yaml') process.stdout.write(toYaml(value));
  else process.stdout.write(text().endsWith('\n') ? text() : `${text()}\n`);
}
