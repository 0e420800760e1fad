import { parseArgs } from 'node:util';
import { ErrorCode, vmeshError } from '../../../src/lib/errors.js';

export interface BenchOptions {
  /** Simulated agents (hosts that join and hold one delta ADS stream each). */
  readonly agents: number;
  /** Services registered before the agents connect, one workload each. */
  readonly services: number;
  /** Endpoint changes measured (each registers one new workload into an existing service). */
  readonly changes: number;
  /**
   * 0: every agent sees every service. N: a Sidecar in the agents' namespace lists N services as its egress
   * (Istio's scoping), so each agent receives only those; endpoint changes are made to them.
   */
  readonly sidecarEgress: number;
  /** New services measured, one after another (each adds a service with one workload: every type changes). */
  readonly newServices: number;
  /** Time between the starts of two changes, when the previous one converged sooner. */
  readonly spacingMs: number;
  /** Agent processes (1 or 2); the agents are split between them. */
  readonly agentProcs: number;
  /** Controllers sharing one (test) Consul KV store, the agents split between them: 1 (file store) or 2. */
  readonly controllers: number;
  /** Agents allowed to be connecting or in their initial sync at once. */
  readonly connectConcurrency: number;
  readonly joinConcurrency: number;
  readonly apiConcurrency: number;
  readonly changeTimeoutMs: number;
  /** The new-service change pushes every type, some of them large: it gets its own bound. */
  readonly serviceTimeoutMs: number;
  readonly syncTimeoutMs: number;
  readonly setupTimeoutMs: number;
  /** Run the controller with --cpu-prof, the profile written into this directory (undefined: off). */
  readonly cpuProfDir?: string;
  /** Extra node options for the controller process (e.g. --heapsnapshot-signal=SIGUSR2). */
  readonly nodeArgs: string[];
  /** Keep the controller's data directory instead of removing it. */
  readonly keep: boolean;
}

export const USAGE = `usage: npm run bench:xds -- [options]
  --agents N               simulated agents, each its own host certificate and delta ADS stream (default 2000)
  --services M             services, one workload each, registered before the agents connect (default 1000)
  --changes K              endpoint changes measured, one new workload each (default 10)
  --new-services N         new services measured, one at a time (default 5)
  --sidecar-egress N       a Sidecar scopes every agent to N of the services (default 0: no Sidecar)
  --spacing S              seconds between changes (default 2)
  --agent-procs P          agent processes, 1 or 2 (default 1: the controller keeps a core of its own)
  --controllers C          1, or 2 controllers sharing a --store consul (the test's Consul KV, in this process);
                           agents alternate between them, changes alternate between their APIs (default 1)
  --connect-concurrency C  agents connecting or in their initial sync at once (default 100)
  --join-concurrency J     joins in flight during setup (default 50)
  --api-concurrency A      API requests in flight during setup (default 16)
  --change-timeout S       seconds an endpoint change may take to converge (default 30)
  --service-timeout S      seconds each new-service change may take to converge (default 120)
  --sync-timeout S         seconds the initial sync of all agents may take (default 900)
  --setup-timeout S        seconds registration, tokens and joins may take (default 1800)
  --cpu-prof DIR           run the controller with --cpu-prof, the .cpuprofile written to DIR
  --node-arg ARG           an extra node option for the controller process (repeatable)
  --keep                   keep the controller's data directory`;

function int(v: string | undefined, flag: string, def: number, min: number, max: number): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw vmeshError(ErrorCode.Usage, `--${flag}: "${v}" is not a whole number from ${min} to ${max}`);
  }
  return n;
}

/** Parses the benchmark's flags; undefined when --help was asked for. */
export function parseOptions(argv: readonly string[]): BenchOptions | undefined {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (e) {
    throw vmeshError(ErrorCode.Usage, `${(e as Error).message} (see --help)`);
  }
  const v = parsed.values;
  if (v.help) return undefined;
  const agents = int(v.agents, 'agents', 2000, 1, 20_000);
  return {
    agents,
    services: int(v.services, 'services', 1000, 1, 60_000),
    changes: int(v.changes, 'changes', 10, 1, 1000),
    newServices: int(v['new-services'], 'new-services', 5, 0, 100),
    sidecarEgress: int(v['sidecar-egress'], 'sidecar-egress', 0, 0, 60_000),
    spacingMs: int(v.spacing, 'spacing', 2, 0, 600) * 1000,
    agentProcs: Math.min(int(v['agent-procs'], 'agent-procs', 1, 1, 2), agents),
    controllers: int(v.controllers, 'controllers', 1, 1, 2),
    connectConcurrency: int(v['connect-concurrency'], 'connect-concurrency', 100, 1, 20_000),
    joinConcurrency: int(v['join-concurrency'], 'join-concurrency', 50, 1, 1000),
    apiConcurrency: int(v['api-concurrency'], 'api-concurrency', 16, 1, 1000),
    changeTimeoutMs: int(v['change-timeout'], 'change-timeout', 30, 1, 3600) * 1000,
    serviceTimeoutMs: int(v['service-timeout'], 'service-timeout', 120, 1, 3600) * 1000,
    syncTimeoutMs: int(v['sync-timeout'], 'sync-timeout', 900, 1, 7200) * 1000,
    setupTimeoutMs: int(v['setup-timeout'], 'setup-timeout', 1800, 1, 7200) * 1000,
    ...(v['cpu-prof'] ? { cpuProfDir: v['cpu-prof'] } : {}),
    nodeArgs: v['node-arg'] ?? [],
    keep: v.keep ?? false,
  };
}

function parse(argv: readonly string[]) {
  return parseArgs({
    args: [...argv],
    strict: true,
    allowPositionals: false,
    options: {
      agents: { type: 'string' },
      services: { type: 'string' },
      changes: { type: 'string' },
      'new-services': { type: 'string' },
      'sidecar-egress': { type: 'string' },
      spacing: { type: 'string' },
      'agent-procs': { type: 'string' },
      controllers: { type: 'string' },
      'connect-concurrency': { type: 'string' },
      'join-concurrency': { type: 'string' },
      'api-concurrency': { type: 'string' },
      'change-timeout': { type: 'string' },
      'service-timeout': { type: 'string' },
      'sync-timeout': { type: 'string' },
      'setup-timeout': { type: 'string' },
      'cpu-prof': { type: 'string' },
      'node-arg': { type: 'string', multiple: true },
      keep: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
}
