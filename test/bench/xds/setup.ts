import { z } from 'zod';
import type { HostFacts } from '../../../src/api/host-record.js';
import { tokenCreated } from '../../../src/api/http/hosts.js';
import { workloadRegistered } from '../../../src/api/http/workloads.js';
import { joinController } from '../../../src/ca/join-client.js';
import type { ApiClient } from '../../../src/cli/api-client.js';
import { ErrorCode, vmeshError } from '../../../src/lib/errors.js';
import type { AgentCreds } from './agent-protocol.js';
import { runPool, sleep } from './pool.js';

export const NAMESPACE = 'default';
export const PORT = 9080;

/** Addresses from 198.18.0.0/15, the range reserved for network benchmarks; nothing ever connects to them. */
export function benchAddress(n: number): string {
  if (!Number.isInteger(n) || n < 1 || n > 131_070)
    throw vmeshError(ErrorCode.InvalidAddress, `bench address #${n}: outside 198.18.0.0/15`);
  return `198.${18 + (n >> 16)}.${(n >> 8) & 255}.${n & 255}`;
}

export const serviceName = (i: number): string => `svc-${i}`;
export const clusterName = (service: string): string => `outbound|${PORT}||${service}.${NAMESPACE}.mesh`;
export const agentHost = (i: number): string => `bench-${i}`;

/** The registration of one workload: on a fake host that never joins, at an address nothing listens on. */
export function workload(name: string, service: string, host: string, address: string): Record<string, unknown> {
  return {
    name,
    service,
    namespace: NAMESPACE,
    serviceAccount: service,
    address,
    ports: [`http:${PORT}`],
    labels: { version: 'v1' },
    host,
  };
}

function facts(host: string, i: number): HostFacts {
  return {
    hostname: host,
    osDistro: 'bench',
    osRelease: '1',
    kernel: 'bench',
    arch: 'x64',
    cpuBrand: 'simulated',
    cpuCores: 1,
    memoryTotalBytes: 1 << 30,
    // Agents' addresses sit in the upper half of the range, away from the services' endpoints.
    ipv4: [benchAddress(65_536 + i)],
    ipv6: [],
  };
}

export interface SetupTimes {
  registerMs: number;
  modelMs: number;
  tokensMs: number;
  joinMs: number;
}

const progress = (what: string, total: number) => (done: number) => {
  if (done % Math.max(1, Math.floor(total / 4)) === 0 || done === total) process.stderr.write(`  ${what}: ${done}/${total}\n`);
};

/**
 * M services with one workload each (POST /v1/workloads), then N join tokens (POST /v1/tokens) and N joins
 * (the agent's own joinController: a key made here, a CSR, a host certificate), all before any agent connects.
 */
export async function setupMesh(opts: {
  api: ApiClient;
  grpcAddress: string;
  services: number;
  agents: number;
  apiConcurrency: number;
  joinConcurrency: number;
  deadline: number;
}): Promise<{ creds: AgentCreds[]; caPem: string; times: SetupTimes }> {
  const { api, deadline } = opts;
  const t0 = Date.now();
  await runPool({
    what: 'registering services',
    count: opts.services,
    concurrency: opts.apiConcurrency,
    deadline,
    onProgress: progress('services registered', opts.services),
    task: (i) =>
      api.call(
        workloadRegistered,
        'POST',
        '/v1/workloads',
        workload(`${serviceName(i)}-w0`, serviceName(i), `svc-host-${i}`, benchAddress(i + 1)),
      ),
  });
  const t1 = Date.now();
  // Registration returns once stored; the model is rebuilt after a debounce: wait until it holds every service.
  for (;;) {
    const { services } = await api.call(z.object({ services: z.array(z.unknown()) }), 'GET', '/v1/services');
    if (services.length >= opts.services) break;
    if (Date.now() > deadline) throw vmeshError(ErrorCode.Unavailable, `model holds ${services.length} of ${opts.services} services`);
    await sleep(200);
  }
  const t2 = Date.now();
  const tokens = await runPool({
    what: 'creating join tokens',
    count: opts.agents,
    concurrency: opts.apiConcurrency,
    deadline,
    onProgress: progress('tokens created', opts.agents),
    task: async (i) => (await api.call(tokenCreated, 'POST', '/v1/tokens', { host: agentHost(i), ttl: '2h' })).token,
  });
  const t3 = Date.now();
  const joined = await runPool({
    what: 'joining hosts',
    count: opts.agents,
    concurrency: opts.joinConcurrency,
    deadline,
    onProgress: progress('hosts joined', opts.agents),
    task: (i) =>
      joinController({
        address: opts.grpcAddress,
        token: tokens[i] ?? '',
        hostName: agentHost(i),
        facts: facts(agentHost(i), i),
        timeoutMs: 60_000,
      }),
  });
  const t4 = Date.now();
  const caPem = joined[0]?.trustBundlePem ?? '';
  return {
    creds: joined.map((j) => ({ id: j.hostName, keyPem: j.keyPem, certPem: j.certPem })),
    caPem,
    times: { registerMs: t1 - t0, modelMs: t2 - t1, tokensMs: t3 - t2, joinMs: t4 - t3 },
  };
}
