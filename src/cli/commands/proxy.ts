import { get as httpGet } from 'node:http';
import type { CommandModule } from 'yargs';
import { proxyConfigList, proxyStatusList } from '../../api/http/xds.js';
import { ErrorCode, vmeshError } from '../../lib/errors.js';
import { apiClient, apiFlags } from '../api.js';
import { emit, type OutputFormat, outputOption, table } from '../output.js';

type Argv = Record<string, unknown> & { output: OutputFormat };

const TYPES = ['CDS', 'EDS', 'LDS', 'RDS', 'NDS', 'WDS'];

export const proxyStatusCommand: CommandModule<object, Argv> = {
  command: 'proxy-status',
  describe: 'one row per agent: connected, last push, and per type whether it ACKed (or NACKed) what was sent',
  builder: (y) => apiFlags(y).option('output', outputOption) as never,
  handler: async (argv) => {
    const rows = await apiClient(argv).call(proxyStatusList, 'GET', '/v1/xds/status');
    emit(argv.output, rows, () =>
      table(
        ['node', 'connected', 'last push', ...TYPES, 'snapshot'],
        rows.map((r) => [
          r.node,
          r.connected ? `yes (${r.mode})` : 'no',
          r.lastPush,
          ...TYPES.map((t) => {
            const s = r.types[t];
            return s ? (s.state === 'NACKED' ? `NACKED: ${s.error}` : s.state) : '-';
          }),
          r.snapshot,
        ]),
      ),
    );
  },
};

const KINDS = ['listeners', 'routes', 'clusters', 'endpoints', 'names', 'workloads', 'secrets'] as const;
const LOCAL_TYPES: Record<string, string> = {
  listeners: 'type.googleapis.com/envoy.config.listener.v3.Listener',
  routes: 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration',
  clusters: 'type.googleapis.com/envoy.config.cluster.v3.Cluster',
  endpoints: 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment',
  names: 'type.googleapis.com/vmesh.v1.NameTable',
  workloads: 'type.googleapis.com/vmesh.v1.HostWorkloads',
};

function readLocal<T>(port: number, path: string): Promise<T> {
  return new Promise((resolve, reject) => {
    httpGet({ host: '127.0.0.1', port, path, timeout: 5000 }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => {
        body += c.toString();
      });
      res.on('end', () => {
        try {
          resolve(JSON.parse(body));
        } catch {
          reject(vmeshError(ErrorCode.Internal, 'agent admin answered with non-JSON'));
        }
      });
    }).on('error', (e: NodeJS.ErrnoException) =>
      reject(vmeshError(ErrorCode.Unavailable, `cannot reach the agent's admin port 127.0.0.1:${port}: ${e.code ?? e.message}`)),
    );
  });
}

export const proxyConfigCommand: CommandModule<object, Argv> = {
  command: 'proxy-config <node> <kind>',
  describe: 'what the controller last sent a node (listeners|routes|clusters|endpoints|names|workloads); --local: what this host applied',
  builder: (y) =>
    apiFlags(y)
      .positional('node', { type: 'string', demandOption: true, describe: 'host name (node id)' })
      .positional('kind', { choices: KINDS, demandOption: true })
      .option('local', { type: 'boolean', describe: "read the applied config from this host's agent admin port" })
      .option('admin-port', { type: 'number', default: 15000 })
      .option('output', outputOption) as never,
  handler: async (argv) => {
    const kind = String(argv.kind);
    let items: Array<{ name: string; resource: unknown; version?: string }>;
    if (argv.local && kind === 'secrets') {
      // What the agent's SDS serves its proxy, described: names, whose certificates, until when. Never a key.
      const secrets = await readLocal<Array<{ name: string; kind: string; notAfter?: string }>>(Number(argv.adminPort), '/secrets');
      emit(argv.output, secrets, () =>
        table(
          ['name', 'kind', 'not after'],
          secrets.map((x) => [x.name, x.kind, x.notAfter ?? '-']),
        ),
      );
      return;
    }
    if (argv.local) {
      const dump = await readLocal<{ resources: Record<string, Record<string, unknown>> }>(Number(argv.adminPort), '/config_dump');
      const byName = dump.resources[LOCAL_TYPES[kind] ?? ''] ?? {};
      items = Object.entries(byName).map(([name, resource]) => ({ name, resource }));
    } else {
      items = await apiClient(argv).call(proxyConfigList, 'GET', `/v1/xds/config/${encodeURIComponent(String(argv.node))}/${kind}`);
    }
    emit(argv.output, items, () =>
      table(
        ['name', 'version'],
        items.map((i) => [i.name, i.version ?? 'applied']),
      ),
    );
  },
};
