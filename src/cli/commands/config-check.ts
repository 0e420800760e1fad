import { readFileSync } from 'node:fs';
import type { CommandModule } from 'yargs';
import { storedResourceList } from '../../api/http/config.js';
import { type MeshConfig, parseMeshConfig } from '../../api/mesh-config.js';
import {
  configTooLarge,
  formatIssue,
  RESOURCE_KINDS,
  type Resource,
  resourceKey,
  type ValidationIssue,
  type ValidationWarning,
} from '../../api/resource.js';
import { parseResourceObject, parseResources } from '../../api/resource-parse.js';
import { checkResources } from '../../api/resource-validate.js';
import { ErrorCode, VmeshError, vmeshError } from '../../lib/errors.js';
import { apiClient, apiFlags } from '../api.js';
import { emit, type OutputFormat, outputOption } from '../output.js';

type Argv = Record<string, unknown> & { output: OutputFormat };

/** `-f` given once is a string, repeated an array (yargs never treats `-` as an array element). */
export function files(value: unknown): string[] {
  return value === undefined ? [] : [value as string | string[]].flat().map(String);
}

export function readInput(file: string): string {
  try {
    return file === '-' ? readFileSync(0, 'utf8') : readFileSync(file, 'utf8');
  } catch (e) {
    throw vmeshError(ErrorCode.Usage, `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/**
 * The files' text as one batch, as `apply` sends it: joined as one multi-document stream. Over the size
 * limit it is refused here with the words the controller would use, so validate and apply agree.
 */
export function readBatch(names: readonly string[]): Array<{ file: string; text: string }> {
  const batch = names.map((file) => ({ file, text: readInput(file) }));
  const bytes = batch.reduce((n, b) => n + Buffer.byteLength(b.text), 0) + Math.max(0, batch.length - 1) * 5;
  const tooLarge = configTooLarge(bytes);
  if (tooLarge) throw vmeshError(ErrorCode.LimitExceeded, tooLarge);
  return batch;
}

/** Warnings go to stderr, one line each with their code: they refuse nothing. */
export function printWarnings(lines: readonly string[]): void {
  for (const l of lines) process.stderr.write(`warning: ${l}\n`);
}

export function warningLine(w: ValidationWarning): string {
  return `${w.code}: ${formatIssue(w)}`;
}

/** All issues at once on stderr (one line each); the thrown error carries the first as its headline. */
export function failWith(issues: readonly ValidationIssue[]): never {
  for (const i of issues.slice(1)) process.stderr.write(`${i.code}: ${formatIssue(i)}\n`);
  const first = issues[0];
  if (!first) throw vmeshError(ErrorCode.Internal, 'validation failed without an issue');
  throw new VmeshError(first.code, `${formatIssue(first)}${issues.length > 1 ? ` (and ${issues.length - 1} more above)` : ''}`);
}

async function meshOf(file: string | undefined): Promise<MeshConfig | undefined> {
  if (!file) return undefined;
  return parseMeshConfig((await import('yaml')).parse(readInput(file))?.mesh ?? {}, file);
}

/** Parses every file; any parse issue refuses the lot (as apply does). */
function parseFiles(names: readonly string[], warnings: ValidationWarning[]): Resource[] {
  const all: Resource[] = [];
  const issues: ValidationIssue[] = [];
  for (const { file, text } of readBatch(names)) {
    const r = parseResources(text, { source: file, warnings });
    if (r.ok) all.push(...r.value);
    else issues.push(...r.error);
  }
  if (issues.length > 0) failWith(issues);
  return all;
}

const meshConfigOption = {
  type: 'string',
  describe: "the controller's --config file: its mesh: section (root namespace, domain, extensionProviders) applies",
} as const;

export const validateCommand: CommandModule<object, Argv> = {
  command: 'validate',
  describe: 'validate config YAML offline (no controller needed); warnings do not fail it',
  builder: (y) =>
    y
      .option('file', { alias: 'f', type: 'string', demandOption: true, describe: 'YAML file (repeatable), - for stdin' })
      .option('mesh-config', meshConfigOption)
      .option('output', outputOption) as never,
  handler: async (argv) => {
    const mesh = await meshOf(argv.meshConfig as string | undefined);
    const names = files(argv.file);
    const skipped: ValidationWarning[] = [];
    const all = parseFiles(names, skipped);
    const checked = checkResources(all, mesh ? { mesh } : {});
    if (checked.errors.length > 0) {
      printWarnings([...skipped, ...checked.warnings].map(warningLine));
      failWith(checked.errors);
    }
    const warnings = [...skipped, ...checked.warnings].map(warningLine);
    if (argv.output === 'text') printWarnings(warnings);
    emit(argv.output, { valid: all.length, warnings }, () =>
      all.length === 0 ? `nothing to validate: no mesh resources in ${names.join(', ')}` : `${all.length} resource(s) valid`,
    );
  },
};

/** The controller's stored config, parsed as the controller parsed it. */
async function storedResources(argv: Argv): Promise<Resource[]> {
  const client = apiClient(argv);
  const out: Resource[] = [];
  for (const kind of RESOURCE_KINDS) {
    const raws = await client.call(storedResourceList, 'GET', `/v1/config/${kind}`);
    for (const raw of raws) {
      const r = parseResourceObject(raw, { source: `stored ${kind} ${raw.metadata?.namespace}/${raw.metadata?.name}` });
      if (r.ok) out.push(r.value);
    }
  }
  return out;
}

export const analyzeCommand: CommandModule<object, Argv> = {
  command: 'analyze',
  describe: "check the controller's stored config together with files (as istioctl analyze); exit 0 with only warnings",
  builder: (y) =>
    apiFlags(y)
      .option('file', { alias: 'f', type: 'string', describe: 'YAML file (repeatable), - for stdin: as if applied' })
      .option('offline', { type: 'boolean', describe: 'analyze the files alone, without the controller' })
      .option('mesh-config', meshConfigOption)
      .option('output', outputOption) as never,
  handler: async (argv) => {
    const mesh = await meshOf(argv.meshConfig as string | undefined);
    const skipped: ValidationWarning[] = [];
    const given = parseFiles(files(argv.file), skipped);
    const keys = new Set(given.map(resourceKey));
    const stored = argv.offline ? [] : (await storedResources(argv)).filter((r) => !keys.has(resourceKey(r)));
    const all = [...stored, ...given];
    const checked = checkResources(all, mesh ? { mesh } : {});
    const warnings = [...skipped, ...checked.warnings].map(warningLine);
    const errors = checked.errors.map((i) => `${i.code}: ${formatIssue(i)}`);
    if (checked.errors.length > 0) {
      printWarnings(warnings);
      failWith(checked.errors);
    }
    if (argv.output === 'text') printWarnings(warnings);
    emit(argv.output, { analyzed: all.length, errors, warnings }, () =>
      warnings.length === 0
        ? `${all.length} resource(s) analyzed: no issues`
        : `${all.length} resource(s) analyzed: ${warnings.length} warning(s)`,
    );
  },
};
