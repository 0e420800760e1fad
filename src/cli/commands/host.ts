import type { CommandModule } from 'yargs';
import { hostList, hostRemoved } from '../../api/http/hosts.js';
import { apiClient, apiFlags } from '../api.js';
import { emit, type OutputFormat, outputOption, table } from '../output.js';

type Argv = Record<string, unknown> & { output: OutputFormat; name?: string };

const list: CommandModule<object, Argv> = {
  command: 'list',
  describe: 'hosts that joined the mesh, with their facts and liveness',
  builder: (y) => apiFlags(y).option('output', outputOption) as never,
  handler: async (argv) => {
    const hosts = await apiClient(argv).call(hostList, 'GET', '/v1/hosts');
    emit(argv.output, hosts, () =>
      table(
        ['name', 'status', 'os', 'kernel', 'addresses', 'cert expires'],
        hosts.map((h) => [h.name, h.state, h.facts.os, h.facts.kernel, h.facts.addresses.join(','), h.certNotAfter]),
      ),
    );
  },
};

const remove: CommandModule<object, Argv> = {
  command: 'remove <name>',
  describe: 'remove a host: its certificate is refused from now on',
  builder: (y) => apiFlags(y).positional('name', { type: 'string', demandOption: true }).option('output', outputOption) as never,
  handler: async (argv) => {
    const r = await apiClient(argv).call(hostRemoved, 'DELETE', `/v1/hosts/${encodeURIComponent(String(argv.name))}`);
    emit(argv.output, r, () => `host ${argv.name} removed`);
  },
};

export const hostCommand: CommandModule = {
  command: 'host <command>',
  describe: 'hosts in the mesh',
  builder: (y) => y.command([list, remove] as CommandModule[]).demandCommand(1, 'name a host command: list or remove'),
  handler: () => {},
};
