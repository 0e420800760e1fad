import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import { availableParallelism, hostname } from 'node:os';
import { resolve } from 'node:path';
import type { CaptureConfig } from '../api/capture.js';
import { MESH_PORTS } from '../api/capture.js';
import { parsePort } from '../lib/addr.js';
import { ErrorCode, vmeshError } from '../lib/errors.js';
import { loadCaptureConfig } from './capture.js';
import { boolOf, type ConfigSources, deepFreeze, listOf, pick } from './sources.js';

export const DEFAULT_AGENT_DATA_DIR = '/var/lib/vmesh/agent';

export interface AgentConfig {
  /** `host:15012` of each controller; the agent fails over between them. */
  readonly controllers: readonly string[];
  readonly tokenFile?: string;
  readonly token?: string;
  readonly dataDir: string;
  /** The name this host joins as (lower case). */
  readonly hostName: string;
  readonly adminAddress: string;
  readonly adminPort: number;
  /** DNS proxy port on loopback (udp+tcp 53 are captured to it); 0 picks a free one (tests). */
  readonly dnsPort: number;
  /** Run the data-plane proxy (15001/15006 and the config's listeners); off only for control-plane tests. */
  readonly proxy: boolean;
  /** Proxy worker processes (one per core by default, run as the capture-excluded proxy user); 0 runs it in the agent. */
  readonly proxyWorkers: number;
  /** Where the local xDS/SDS socket for the proxy workers lives (reachable by the proxy user, unlike the data dir). */
  readonly runDir: string;
  /** Install traffic capture (and route the VIP range) once the proxy listens; removed when the agent stops. */
  readonly capture: boolean;
  /** The capture rules (the file's `capture:` section and VMESH_CAPTURE_* variables); controllers always excluded. */
  readonly captureConfig: CaptureConfig;
  readonly logLevel: string;
}

export function loadAgentConfig(src: ConfigSources): AgentConfig {
  const get = (flag: string, env: string, key: string) => pick(src, flag, env, key);
  const controllers = listOf(get('controller', 'VMESH_CONTROLLER_GRPC', 'controllers'));
  if (controllers.length === 0) {
    throw vmeshError(ErrorCode.InvalidConfig, 'agent: --controller HOST:15012 is required (several may be given, comma-separated)');
  }
  for (const c of controllers) {
    if (!/^(\[[0-9a-fA-F:.]+\]|[^:[\]]+):\d+$/.test(c))
      throw vmeshError(ErrorCode.InvalidAddress, `controller "${c}": want host:port or [ipv6]:port`);
  }
  const tokenFile = get('tokenFile', 'VMESH_TOKEN_FILE', 'tokenFile');
  const token = get('token', 'VMESH_JOIN_TOKEN', 'token');
  const dataDir = String(get('dataDir', 'VMESH_AGENT_DATA_DIR', 'dataDir') ?? DEFAULT_AGENT_DATA_DIR);
  const hostName = String(get('hostName', 'VMESH_HOST_NAME', 'hostName') ?? hostname()).toLowerCase();
  return deepFreeze({
    controllers,
    ...(tokenFile !== undefined ? { tokenFile: String(tokenFile) } : {}),
    ...(token !== undefined ? { token: String(token) } : {}),
    dataDir,
    hostName,
    adminAddress: String(get('adminAddress', 'VMESH_ADMIN_ADDRESS', 'admin.address') ?? '127.0.0.1'),
    adminPort: parsePort(get('adminPort', 'VMESH_ADMIN_PORT', 'admin.port') ?? MESH_PORTS.admin, 'admin port', { allowZero: true }),
    dnsPort: parsePort(get('dnsPort', 'VMESH_DNS_PORT', 'dns.port') ?? MESH_PORTS.dns, 'DNS port', { allowZero: true }),
    proxy: boolOf(get('proxy', 'VMESH_AGENT_PROXY', 'proxy.enabled'), 'agent proxy', true),
    runDir: String(get('runDir', 'VMESH_AGENT_RUN_DIR', 'runDir') ?? defaultRunDir(dataDir)),
    proxyWorkers: workersOf(get('proxyWorkers', 'VMESH_PROXY_WORKERS', 'proxy.workers')),
    capture: boolOf(get('capture', 'VMESH_AGENT_CAPTURE', 'capture.enabled'), 'agent capture', true),
    captureConfig: loadCaptureConfig({
      ...src,
      flags: {
        // Control traffic must survive a dead proxy: the controllers' addresses are never captured.
        controllerAddresses: [
          ...listOf(pick(src, 'controllerAddresses', 'VMESH_CONTROLLER_ADDRESSES', 'capture.controllerAddresses')),
          ...controllers.map((c) => c.replace(/^\[/, '').replace(/\]?:\d+$/, '')).filter((h) => isIP(h) !== 0),
        ],
      },
    }),
    logLevel: String(get('logLevel', 'VMESH_LOG_LEVEL', 'logLevel') ?? 'info'),
  });
}

function workersOf(v: unknown): number {
  if (v === undefined || v === null || v === '') return availableParallelism();
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 256) {
    throw vmeshError(ErrorCode.InvalidConfig, `agent: proxy workers "${String(v)}" is not an integer from 0 to 256`);
  }
  return n;
}

/** One run directory per data dir, so several agents on one machine (the lab) never share a socket. */
function defaultRunDir(dataDir: string): string {
  return `/run/vmesh/agent-${createHash('sha256').update(resolve(dataDir)).digest('hex').slice(0, 12)}`;
}
