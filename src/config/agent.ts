import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import { availableParallelism, hostname } from 'node:os';
import { resolve } from 'node:path';
import type { CaptureConfig } from '../api/capture.js';
import { MESH_PORTS } from '../api/capture.js';
import { parsePort } from '../lib/addr.js';
import { ErrorCode, vmeshError } from '../lib/errors.js';
import { loadCaptureConfig } from './capture.js';
import { boolOf, type ConfigSources, deepFreeze, listOf, pick, refuseSecretFlag } from './sources.js';

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
  /** Health and Prometheus metrics (`/stats/prometheus`, `/healthz/ready`): 0.0.0.0:15020 by default, as Istio's. */
  readonly metricsAddress: string;
  readonly metricsPort: number;
  /** DNS proxy port on loopback (udp+tcp 53 are captured to it); 0 picks a free one (tests). */
  readonly dnsPort: number;
  /** Run the data-plane proxy (15001/15006 and the config's listeners); off only for control-plane tests. */
  readonly proxy: boolean;
  /** Proxy worker processes (one per core by default, run as the capture-excluded proxy user); 0 runs it in the agent. */
  readonly proxyWorkers: number;
  /**
   * A worker that answers no liveness ping for this long is taken for hung: it stops counting as serving (capture
   * comes off if no other worker serves) and is killed and restarted. 10 s by default (a large config
   * compiles in a worker's event loop).
   */
  readonly proxyLivenessTimeoutMs: number;
  /** Where the local xDS/SDS socket for the proxy workers lives (reachable by the proxy user, unlike the data dir). */
  readonly runDir: string;
  /** sidecar: serve the host's workloads (capture on); gateway: an ingress/egress gateway (Gateway listeners, no capture). */
  readonly mode: 'sidecar' | 'gateway';
  /** Labels Gateway resources select this gateway by (`selector: {istio: ingressgateway}`). */
  readonly gatewayLabels: Readonly<Record<string, string>>;
  /** Gateway credentialName files: `<dir>/<name>/tls.crt`, `tls.key`, `ca.crt`. */
  readonly credentialsDir: string;
  /** Install traffic capture (and route the VIP range) once the proxy listens; removed when the agent stops. */
  readonly capture: boolean;
  /** The capture rules (the file's `capture:` section and VMESH_CAPTURE_* variables); controllers always excluded. */
  readonly captureConfig: CaptureConfig;
  readonly logLevel: string;
}

/** Seconds (a number, or a string such as "5"); at least one, so a busy worker is not taken for a hung one. */
function livenessMs(v: unknown): number {
  if (v === undefined || v === null || v === '') return 10_000;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 1) {
    throw vmeshError(ErrorCode.InvalidConfig, `agent: proxy liveness timeout "${String(v)}" is not a number of seconds >= 1`);
  }
  return Math.round(n * 1000);
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
  refuseSecretFlag(src, 'token', 'token', '--token-file F or the VMESH_JOIN_TOKEN environment variable');
  const tokenFile = get('tokenFile', 'VMESH_TOKEN_FILE', 'tokenFile');
  const token = get('token', 'VMESH_JOIN_TOKEN', 'token');
  const modeRaw = String(get('mode', 'VMESH_AGENT_MODE', 'mode') ?? 'sidecar');
  if (modeRaw !== 'sidecar' && modeRaw !== 'gateway') {
    throw vmeshError(ErrorCode.InvalidConfig, `agent: mode "${modeRaw}" is not sidecar or gateway`);
  }
  const mode: 'sidecar' | 'gateway' = modeRaw;
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
    metricsAddress: String(get('metricsAddress', 'VMESH_METRICS_ADDRESS', 'metrics.address') ?? '0.0.0.0'),
    metricsPort: parsePort(get('metricsPort', 'VMESH_METRICS_PORT', 'metrics.port') ?? MESH_PORTS.health, 'metrics port', {
      allowZero: true,
    }),
    dnsPort: parsePort(get('dnsPort', 'VMESH_DNS_PORT', 'dns.port') ?? MESH_PORTS.dns, 'DNS port', { allowZero: true }),
    proxy: boolOf(get('proxy', 'VMESH_AGENT_PROXY', 'proxy.enabled'), 'agent proxy', true),
    runDir: String(get('runDir', 'VMESH_AGENT_RUN_DIR', 'runDir') ?? defaultRunDir(dataDir)),
    proxyWorkers: workersOf(get('proxyWorkers', 'VMESH_PROXY_WORKERS', 'proxy.workers')),
    proxyLivenessTimeoutMs: livenessMs(get('proxyLivenessTimeout', 'VMESH_PROXY_LIVENESS_TIMEOUT', 'proxy.livenessTimeout')),
    mode,
    gatewayLabels: labelsOf(get('gatewayLabel', 'VMESH_GATEWAY_LABELS', 'gateway.labels')),
    credentialsDir: String(get('credentialsDir', 'VMESH_CREDENTIALS_DIR', 'gateway.credentialsDir') ?? '/etc/vmesh/credentials'),
    capture: boolOf(get('capture', 'VMESH_AGENT_CAPTURE', 'capture.enabled'), 'agent capture', mode === 'sidecar'),
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

/** `k=v` labels from a repeated flag, a comma list, or a mapping in the file. */
function labelsOf(v: unknown): Record<string, string> {
  if (v && typeof v === 'object' && !Array.isArray(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, String(x)]));
  const out: Record<string, string> = {};
  for (const item of listOf(v)) {
    const i = item.indexOf('=');
    if (i <= 0) throw vmeshError(ErrorCode.InvalidConfig, `agent: gateway label "${item}" is not key=value`);
    out[item.slice(0, i)] = item.slice(i + 1);
  }
  return out;
}
