import { readFileSync } from 'node:fs';
import { stringify as toYaml } from 'yaml';
import type { CommandModule } from 'yargs';
import { parseMeshConfig } from '../../api/mesh-config.js';
import { formatIssue } from '../../api/resource.js';
import { parseResources } from '../../api/resource-parse.js';
import { validateResources } from '../../api/resource-validate.js';
import { ErrorCode, VmeshError, vmeshError } from '../../lib/errors.js';
import { apiClient, apiFlags } from '../api.js';
import { emit, type OutputFormat, outputOption, table } from '../output.js';

type Argv = Record<string, unknown> & { output: OutputFormat };

/** `-f` given once is a string, repeated an array (yargs never treats `-` as an array element). */
function files(value: unknown): string[] {
  return [value as string | string[]].flat().map(String);
}

function readInput(file: string): string {
  try {
    return file === '-' ? readFileSync(0, 'utf8') : readFileSync(file, 'utf8');
  } catch (e) {
    throw vmeshError(ErrorCode.Usage, `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/** All issues at once on stderr (one line each); the thrown error carries the first as its headline. */
function failWith(issues: ReadonlyArray<Parameters<typeof formatIssue>[0]>): never {
  for (const i of issues.slice(1)) process.stderr.write(`${i.code}: ${formatIssue(i)}\n`);
  const first = issues[0];
  if (!first) throw vmeshError(ErrorCode.Internal, 'validation failed without an issue');
  throw new VmeshError(first.code, `${formatIssue(first)}${issues.length > 1 ? ` (and ${issues.length - 1} more above)` : ''}`);
}

const validate: CommandModule<object, Argv> = {
  command: 'validate',
  describe: 'validate config YAML offline (no controller needed)',
  builder: (y) =>
    y
      .option('file', { alias: 'f', type: 'string', demandOption: true, describe: 'YAML file (repeatable), - for stdin' })
      .option('mesh-config', { type: 'string', describe: 'controller config file whose mesh: section applies' })
      .option('output', outputOption) as never,
  handler: async (argv) => {
    const meshFile = argv.meshConfig as string | undefined;
    const mesh = meshFile ? parseMeshConfig((await import('yaml')).parse(readInput(meshFile))?.mesh ?? {}, meshFile) : undefined;
    const all = [];
    for (const f of files(argv.file)) {
      const r = parseResources(readInput(f), { source: f });
      if (!r.ok) failWith(r.error);
      all.push(...r.value);
    }
    const issues = validateResources(all, mesh ? { mesh } : {});
    if (issues.length > 0) failWith(issues);
    emit(argv.output, { valid: all.length }, () => `${all.length} resource(s) valid`);
  },
};

interface ApplyResult {
  results: Array<{ key: string; action: 'created' | 'updated' | 'unchanged' }>;
}

const apply: CommandModule<object, Argv> = {
  command: 'apply',
  describe: 'apply config YAML to the controller, all or nothing',
  builder: (y) =>
    apiFlags(y)
      .option('file', { alias: 'f', type: 'string', demandOption: true, describe: 'YAML file (repeatable), - for stdin' })
      .option('dry-run', { type: 'boolean', describe: 'validate on the controller, change nothing' })
      .option('output', outputOption) as never,
  handler: async (argv) => {
    // Several files are one batch: join them as one multi-document stream.
    const text = files(argv.file)
      .map((f) => readInput(f))
      .join('\n---\n');
    const r = await apiClient(argv).call<ApplyResult>('POST', '/v1/config', text, argv.dryRun ? { dryRun: 'true' } : {});
    emit(argv.output, r, () => r.results.map((x) => `${x.key} ${x.action}${argv.dryRun ? ' (dry run)' : ''}`).join('\n'));
  },
};

interface StoredResource {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec: unknown;
}

const get: CommandModule<object, Argv> = {
  command: 'get <kind> [name]',
  describe: 'show config resources',
  builder: (y) =>
    apiFlags(y)
      .positional('kind', { type: 'string', demandOption: true, describe: 'e.g. VirtualService' })
      .positional('name', { type: 'string' })
      .option('namespace', { alias: 'n', type: 'string', describe: 'namespace (default: all for lists, default for a name)' })
      .option('output', outputOption) as never,
  handler: async (argv) => {
    const kind = encodeURIComponent(String(argv.kind));
    const client = apiClient(argv);
    if (argv.name !== undefined) {
      const ns = encodeURIComponent(String(argv.namespace ?? 'default'));
      const r = await client.call<StoredResource>('GET', `/v1/config/${kind}/${ns}/${encodeURIComponent(String(argv.name))}`);
      emit(argv.output === 'text' ? 'yaml' : argv.output, r, () => toYaml(r));
      return;
    }
    const rs = await client.call<StoredResource[]>(
      'GET',
      `/v1/config/${kind}`,
      undefined,
      argv.namespace ? { namespace: String(argv.namespace) } : {},
    );
    emit(argv.output, rs, () =>
      table(
        ['namespace', 'name', 'kind', 'version'],
        rs.map((r) => [r.metadata.namespace, r.metadata.name, r.kind, r.metadata.resourceVersion]),
      ),
    );
  },
};

const del: CommandModule<object, Argv> = {
  command: 'delete <kind> <name>',
  describe: 'delete a config resource',
  builder: (y) =>
    apiFlags(y)
      .positional('kind', { type: 'string', demandOption: true })
      .positional('name', { type: 'string', demandOption: true })
      .option('namespace', { alias: 'n', type: 'string', default: 'default' })
      .option('output', outputOption) as never,
  handler: async (argv) => {
    const path = `/v1/config/${encodeURIComponent(String(argv.kind))}/${encodeURIComponent(String(argv.namespace))}/${encodeURIComponent(String(argv.name))}`;
    const r = await apiClient(argv).call<unknown>('DELETE', path);
    emit(argv.output, r, () => `${argv.kind} ${argv.namespace}/${argv.name} deleted`);
  },
};

export const configCommand: CommandModule = {
  command: 'config <command>',
  describe: 'mesh config in Istio YAML: validate, apply, get, delete',
  builder: (y) => y.command([validate, apply, get, del] as CommandModule[]).demandCommand(1, 'name a config command'),
  handler: () => {},
};
