import { parseArgs } from 'node:util';
import { ErrorCode, vmeshError } from '../lib/errors.js';
import { deepFreeze } from './deep-freeze.js';

/** What the agent tells each proxy worker process it starts (on the worker's command line). */
export interface ProxyWorkerConfig {
  /** The agent's local xDS/SDS unix socket. */
  readonly socketPath: string;
  readonly index: number;
  readonly count: number;
  readonly logLevel: string;
  /** The worker's environment, read here once: Telemetry's `environment` span tags name its variables. */
  readonly environment: Readonly<Record<string, string | undefined>>;
}

export function proxyWorkerArgs(c: Omit<ProxyWorkerConfig, 'environment'>): string[] {
  return ['--socket', c.socketPath, '--index', String(c.index), '--count', String(c.count), '--log-level', c.logLevel];
}

export function loadProxyWorkerConfig(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): ProxyWorkerConfig {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      socket: { type: 'string' },
      index: { type: 'string' },
      count: { type: 'string' },
      'log-level': { type: 'string' },
    },
    strict: true,
  });
  const int = (v: string | undefined, what: string, min: number) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min)
      throw vmeshError(ErrorCode.InvalidConfig, `proxy worker: --${what} "${v}" is not an integer >= ${min}`);
    return n;
  };
  if (!values.socket) throw vmeshError(ErrorCode.InvalidConfig, 'proxy worker: --socket is required');
  return deepFreeze({
    socketPath: values.socket,
    index: int(values.index, 'index', 0),
    count: int(values.count, 'count', 1),
    logLevel: values['log-level'] ?? 'info',
    environment: { ...env },
  });
}
