import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { ErrorCode, vmeshError } from '../lib/errors.js';

/**
 * Where settings come from, in precedence order: flags (declared in cli) > environment > file > defaults.
 * This module is the only place that reads process.env.
 */
export interface ConfigSources {
  readonly flags: Readonly<Record<string, unknown>>;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly file: Readonly<Record<string, unknown>>;
}

export function readEnv(): Readonly<Record<string, string | undefined>> {
  return Object.freeze({ ...process.env });
}

/** Reads a YAML (or JSON, which is YAML) config file into a plain object. */
export function readConfigFile(path: string | undefined): Record<string, unknown> {
  if (!path) return {};
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw vmeshError(ErrorCode.InvalidConfig, `config file ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw vmeshError(ErrorCode.InvalidConfig, `config file ${path}: not valid YAML: ${(e as Error).message}`);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) {
    throw vmeshError(ErrorCode.InvalidConfig, `config file ${path}: the top level must be a mapping`);
  }
  return doc as Record<string, unknown>;
}

/** Picks a value by precedence; `fileKey` is a dotted path inside the file. */
export function pick(src: ConfigSources, flag: string, envName: string, fileKey: string): unknown {
  const f = src.flags[flag];
  if (f !== undefined && !(Array.isArray(f) && f.length === 0)) return f;
  const e = src.env[envName];
  if (e !== undefined && e !== '') return e;
  let cur: unknown = src.file;
  for (const part of fileKey.split('.')) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}

/** Lists may come as arrays (flags, files) or comma-separated strings (env, single flags). */
export function listOf(value: unknown): string[] {
  if (value === undefined || value === null) return [];
  const items = Array.isArray(value) ? value : [value];
  return items
    .flatMap((v) => String(v).split(','))
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

export function boolOf(value: unknown, what: string, dflt: boolean): boolean {
  if (value === undefined || value === null) return dflt;
  if (typeof value === 'boolean') return value;
  const s = String(value).toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(s)) return true;
  if (['0', 'false', 'no', 'off'].includes(s)) return false;
  throw vmeshError(ErrorCode.InvalidConfig, `${what}: "${String(value)}" is not a boolean (true/false)`);
}

export function idOf(value: unknown, what: string, dflt: number): number {
  if (value === undefined || value === null) return dflt;
  const s = String(value).trim();
  if (!/^\d+$/.test(s) || Number(s) > 4294967294) {
    throw vmeshError(ErrorCode.InvalidConfig, `${what}: "${String(value)}" is not a numeric uid/gid`);
  }
  return Number(s);
}

export { deepFreeze } from './deep-freeze.js';

/**
 * A secret given as a flag's value is refused: command lines are visible to every user of the host (`ps`,
 * /proc/PID/cmdline) and land in shell history. Secrets come from a file or the environment.
 */
export function refuseSecretFlag(src: ConfigSources, flag: string, cliName: string, instead: string): void {
  if (src.flags[flag] !== undefined) {
    throw vmeshError(
      ErrorCode.Usage,
      `--${cliName} puts a secret on the command line, where ps shows it to every user: use ${instead} instead`,
    );
  }
}

/** The trimmed content of a secret file; VMESH_ERR_INVALID_CONFIG naming the file when it cannot be read or is empty. */
export function readSecretFile(path: string, what: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8').trim();
  } catch (e) {
    throw vmeshError(ErrorCode.InvalidConfig, `${what} file ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  if (text === '') throw vmeshError(ErrorCode.InvalidConfig, `${what} file ${path} is empty`);
  return text;
}
