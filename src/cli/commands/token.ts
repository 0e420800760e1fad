import type { CommandModule } from 'yargs';
import { tokenCreated, tokenList } from '../../api/http/hosts.js';
import { apiClient, apiFlags } from '../api.js';
import { emit, type OutputFormat, outputOption, table } from '../output.js';

type Argv = Record<string, unknown> & { output: OutputFormat };

const create: CommandModule<object, Argv> = {
  command: 'create',
  describe: 'print a single-use, expiring join token for a host (it carries the CA hash)',
  builder: (y) =>
    apiFlags(y)
      .option('host', { type: 'string', demandOption: true, describe: 'name the host will join as' })
      .option('ttl', { type: 'string', default: '1h', describe: 'lifetime: 30m, 1h, 24h...' })
      .option('output', outputOption) as never,
  handler: async (argv) => {
    const t = await apiClient(argv).call(tokenCreated, 'POST', '/v1/tokens', { host: argv.host, ttl: argv.ttl });
    emit(argv.output, t, () => t.token);
  },
};

const list: CommandModule<object, Argv> = {
  command: 'list',
  describe: 'list join tokens (never their secrets)',
  builder: (y) => apiFlags(y).option('output', outputOption) as never,
  handler: async (argv) => {
    const ts = await apiClient(argv).call(tokenList, 'GET', '/v1/tokens');
    emit(argv.output, ts, () =>
      table(
        ['id', 'host', 'expires', 'used'],
        ts.map((t) => [t.id, t.host, t.expiresAt, t.used ? 'yes' : 'no']),
      ),
    );
  },
};

export const tokenCommand: CommandModule = {
  command: 'token <command>',
  describe: 'join tokens for new hosts',
  builder: (y) => y.command([create, list] as CommandModule[]).demandCommand(1, 'name a token command: create or list'),
  handler: () => {},
};
