import { stringify as toYaml } from 'yaml';
import type { CommandModule } from 'yargs';
import { applyResult, configDeleted, storedResource, storedResourceList } from '../../api/http/config.js';
import { apiClient, apiFlags } from '../api.js';
import { emit, type OutputFormat, outputOption, table } from '../output.js';
import { analyzeCommand, files, printWarnings, readBatch, validateCommand } from './config-check.js';

type Argv = Record<string, unknown> & { output: OutputFormat };

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
    const names = files(argv.file);
    const text = readBatch(names)
      .map((b) => b.text)
      .join('\n---\n');
    const query = { source: names.join(' + '), ...(argv.dryRun ? { dryRun: 'true' } : {}) };
    // A config set near the size limit takes the controller a while to parse and check (24k ServiceEntries: ~10 s).
    const r = await apiClient(argv, 120_000).call(applyResult, 'POST', '/v1/config', text, query);
    if (argv.output === 'text') printWarnings(r.warnings);
    emit(argv.output, r, () =>
      r.results.length === 0
        ? `nothing to apply: no mesh resources in ${names.join(', ')}`
        : r.results.map((x) => `${x.key} ${x.action}${argv.dryRun ? ' (dry run)' : ''}`).join('\n'),
    );
  },
};

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
      const r = await client.call(storedResource, 'GET', `/v1/config/${kind}/${ns}/${encodeURIComponent(String(argv.name))}`);
      emit(argv.output === 'text' ? 'yaml' : argv.output, r, () => toYaml(r));
      return;
    }
    const rs = await client.call(
      storedResourceList,
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
    const r = await apiClient(argv).call(configDeleted, 'DELETE', path);
    emit(argv.output, r, () => `${argv.kind} ${argv.namespace}/${argv.name} deleted`);
  },
};

export const configCommand: CommandModule = {
  command: 'config <command>',
  describe: 'mesh config in Istio YAML: validate, analyze, apply, get, delete',
  builder: (y) =>
    y.command([validateCommand, analyzeCommand, apply, get, del] as CommandModule[]).demandCommand(1, 'name a config command'),
  handler: () => {},
};
