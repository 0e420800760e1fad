import type { CommandModule } from 'yargs';
import { type CaStatusView, caStatus } from '../../api/http/ca.js';
import { apiClient, apiFlags } from '../api.js';
import { emit, type OutputFormat, outputOption, table } from '../output.js';

type Argv = Record<string, unknown> & { output: OutputFormat; activate?: boolean; finish?: boolean; force?: boolean };

function render(s: CaStatusView): string {
  const r = s.rotation;
  const roots = table(
    ['root', 'CA hash', 'expires'],
    [
      ['current (signing)', r.current.caHash, r.current.notAfter],
      ...(r.next ? [['next (trusted, not signing)', r.next.caHash, r.next.notAfter]] : []),
      ...(r.previous ? [['previous (still trusted)', r.previous.caHash, r.previous.notAfter]] : []),
    ],
  );
  const hosts = table(
    ['host', 'live', 'host cert expires', 'trust bundle', 'workload certificates'],
    s.hosts.map((h) => [
      h.name,
      h.live ? 'yes' : 'no',
      h.hostCertNotAfter,
      h.bundle,
      h.workloads.map((w) => `${w.spiffeId.replace(/^spiffe:\/\/[^/]+\//, '')} (${w.notAfter})`).join(', '),
    ]),
  );
  return `trust domain ${s.trustDomain}, rotation: ${r.phase}, issued since start: ${r.issuedSinceStart}\n\n${roots}\n\n${hosts}`;
}

const status: CommandModule<object, Argv> = {
  command: 'status',
  describe: 'the CA roots and their expiry, rotation phase, issued count, and each host with its certificates',
  builder: (y) => apiFlags(y).option('output', outputOption) as never,
  handler: async (argv) => {
    const s = await apiClient(argv).call(caStatus, 'GET', '/v1/ca');
    emit(argv.output, s, () => render(s));
  },
};

const rotateRoot: CommandModule<object, Argv> = {
  command: 'rotate-root',
  describe: 'rotate the root: trust a new root (default), then --activate it, then --finish (drop the old one)',
  builder: (y) =>
    apiFlags(y)
      .option('activate', { type: 'boolean', describe: 'sign with the staged root (once every live host trusts it)' })
      .option('finish', { type: 'boolean', describe: 'stop trusting the previous root (once every live host fetched new certificates)' })
      .option('force', { type: 'boolean', describe: 'do not wait for hosts that lag behind' })
      .conflicts('activate', 'finish')
      .option('output', outputOption) as never,
  handler: async (argv) => {
    const step = argv.activate ? 'activate' : argv.finish ? 'finish' : 'stage';
    const s = await apiClient(argv).call(caStatus, 'POST', '/v1/ca/rotate-root', { step, force: argv.force === true });
    emit(argv.output, s, () => `root rotation: ${step} done\n\n${render(s)}`);
  },
};

export const caCommand: CommandModule = {
  command: 'ca <command>',
  describe: "the mesh's certificate authority",
  builder: (y) => y.command([status, rotateRoot] as CommandModule[]).demandCommand(1, 'name a ca command: status or rotate-root'),
  handler: () => {},
};
