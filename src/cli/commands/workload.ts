import type { CommandModule } from 'yargs';
import { type WorkloadView, workloadDeregistered, workloadList, workloadRegistered, workloadView } from '../../api/http/workloads.js';
import { ErrorCode, vmeshError } from '../../lib/errors.js';
import { apiClient, apiFlags } from '../api.js';
import { emit, type OutputFormat, outputOption, table } from '../output.js';

type Argv = Record<string, unknown> & { output: OutputFormat };

function labelsOf(values: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  for (const v of (values as string[] | undefined) ?? []) {
    for (const part of String(v).split(',')) {
      const i = part.indexOf('=');
      if (i <= 0) throw vmeshError(ErrorCode.Usage, `--label "${part}": want key=value`);
      out[part.slice(0, i).trim()] = part.slice(i + 1).trim();
    }
  }
  return out;
}

const register: CommandModule<object, Argv> = {
  command: 'register',
  describe:
    'register a workload running on a VM (a WorkloadEntry; its ServiceEntry is created when missing); without --port, a pure client that only calls others; waits until its host presents the identity',
  builder: (y) =>
    apiFlags(y)
      .option('name', { type: 'string', demandOption: true, describe: 'workload name, e.g. reviews-v2' })
      .option('service', { type: 'string', describe: 'service it belongs to, e.g. reviews (required with --port)' })
      .option('namespace', { alias: 'n', type: 'string', default: 'default' })
      .option('service-account', { type: 'string', describe: 'identity (default: the service name, or the name of a pure client)' })
      .option('address', { type: 'string', describe: "IP address the workload listens on (a pure client: its host's)" })
      .option('port', { type: 'string', array: true, describe: 'name:port, e.g. http:9080 (repeatable; none: a pure client)' })
      .option('label', { type: 'string', array: true, describe: 'key=value (repeatable)' })
      .option('host', { type: 'string', demandOption: true, describe: 'the vmesh host it runs on' })
      .option('uid', { type: 'number', describe: 'uid the workload runs as (its outbound identity; required for a pure client)' })
      .option('locality', { type: 'string', describe: 'region/zone/subzone' })
      .option('weight', { type: 'number', describe: 'load-balancing weight' })
      .option('wait', { type: 'boolean', default: true, describe: 'wait until the host presents the identity (--no-wait: return at once)' })
      .option('wait-timeout', { type: 'number', default: 30, describe: 'seconds to wait for the host' })
      .option('output', outputOption) as never,
  handler: async (argv) => {
    const body = {
      name: argv.name,
      service: argv.service,
      namespace: argv.namespace,
      serviceAccount: argv.serviceAccount,
      address: argv.address,
      ports: argv.port,
      labels: labelsOf(argv.label),
      host: argv.host,
      uid: argv.uid,
      locality: argv.locality,
      weight: argv.weight,
    };
    const started = Date.now();
    const api = apiClient(argv);
    const r = await api.call(workloadRegistered, 'POST', '/v1/workloads', body);
    const what = `workload ${r.workload.namespace}/${r.workload.name} registered${r.serviceEntryCreated ? ` (ServiceEntry ${r.workload.service} created)` : ''}${r.workload.state === 'client' ? ' as a pure client' : ''}`;
    if (!argv.wait || r.workload.host === undefined) {
      emit(argv.output, r, () => what);
      return;
    }
    const servedMs = await waitServed(api, r.workload, Number(argv.waitTimeout) * 1000, started);
    emit(
      argv.output,
      { ...r, servedAfterMs: servedMs },
      () => `${what}; host ${r.workload.host} presents its identity after ${(servedMs / 1000).toFixed(1)} s`,
    );
  },
};

/** Polls the controller until the workload's host reports presenting its identity; ms since `started`. */
async function waitServed(api: ReturnType<typeof apiClient>, w: WorkloadView, timeoutMs: number, started: number): Promise<number> {
  const path = `/v1/workloads/${encodeURIComponent(w.namespace)}/${encodeURIComponent(w.name)}`;
  for (;;) {
    const now = await api.call(workloadView, 'GET', path);
    if (now.identityServed) return Date.now() - started;
    if (Date.now() - started >= timeoutMs) {
      throw vmeshError(
        ErrorCode.IdentityNotServed,
        `workload ${w.namespace}/${w.name} is registered, but host "${w.host}" did not present its identity within ${timeoutMs / 1000} s (is the agent on ${w.host} running and connected?)`,
      );
    }
    await new Promise((res) => setTimeout(res, 100));
  }
}

const deregister: CommandModule<object, Argv> = {
  command: 'deregister <name>',
  describe: 'remove a registered workload',
  builder: (y) =>
    apiFlags(y)
      .positional('name', { type: 'string', demandOption: true })
      .option('namespace', { alias: 'n', type: 'string', default: 'default' })
      .option('output', outputOption) as never,
  handler: async (argv) => {
    const path = `/v1/workloads/${encodeURIComponent(String(argv.namespace))}/${encodeURIComponent(String(argv.name))}`;
    const r = await apiClient(argv).call(workloadDeregistered, 'DELETE', path);
    emit(
      argv.output,
      r,
      () => `workload ${argv.namespace}/${argv.name} deregistered${r.serviceEntryRemoved ? ' (its ServiceEntry too)' : ''}`,
    );
  },
};

const list: CommandModule<object, Argv> = {
  command: 'list',
  describe: 'registered workloads',
  builder: (y) =>
    apiFlags(y)
      .option('namespace', { alias: 'n', type: 'string', describe: 'only this namespace' })
      .option('output', outputOption) as never,
  handler: async (argv) => {
    const ws = await apiClient(argv).call(
      workloadList,
      'GET',
      '/v1/workloads',
      undefined,
      argv.namespace ? { namespace: String(argv.namespace) } : {},
    );
    emit(argv.output, ws, () =>
      table(
        ['namespace', 'name', 'service', 'address', 'ports', 'host', 'uid', 'state', 'labels'],
        ws.map((w) => [
          w.namespace,
          w.name,
          w.service,
          w.address,
          Object.entries(w.ports)
            .map(([n, p]) => `${n}:${p}`)
            .join(','),
          w.host,
          w.uid,
          w.state,
          Object.entries(w.labels)
            .map(([k, v]) => `${k}=${v}`)
            .join(','),
        ]),
      ),
    );
  },
};

export const workloadCommand: CommandModule = {
  command: 'workload <command>',
  describe: 'workloads on VMs: register, deregister, list',
  builder: (y) => y.command([register, deregister, list] as CommandModule[]).demandCommand(1, 'name a workload command'),
  handler: () => {},
};
