import type { CommandModule } from 'yargs';
import { loadAgentConfig } from '../../config/agent.js';
import { readConfigFile, readEnv } from '../../config/sources.js';
import { createLogger } from '../../lib/logger.js';
import { serveUntilSignal } from '../serve.js';

type Argv = Record<string, unknown> & { config?: string };

const FLAGS = [
  'controller',
  'tokenFile',
  'token',
  'dataDir',
  'hostName',
  'adminAddress',
  'adminPort',
  'metricsAddress',
  'metricsPort',
  'dnsPort',
  'proxy',
  'capture',
  'proxyWorkers',
  'proxyLivenessTimeout',
  'mode',
  'gatewayLabel',
  'credentialsDir',
  'runDir',
  'logLevel',
];

export const agentCommand: CommandModule<object, Argv> = {
  command: 'agent',
  describe: "run the host's agent: join, sync xDS, report health (systemd unit vmesh-agent.service)",
  builder: (y) =>
    y
      .option('config', { type: 'string', describe: 'agent config file (YAML)' })
      .option('controller', { type: 'string', array: true, describe: 'controller HOST:15012 (repeat or comma-separate to fail over)' })
      .option('token-file', { type: 'string', describe: 'file with the join token (used once, on the first start)' })
      .option('token', {
        type: 'string',
        describe: 'refused: a secret on the command line is visible in ps (use --token-file or VMESH_JOIN_TOKEN)',
      })
      .option('data-dir', { type: 'string', describe: 'state directory (default /var/lib/vmesh/agent)' })
      .option('host-name', { type: 'string', describe: 'name to join as (default: the hostname)' })
      .option('admin-address', { type: 'string', describe: 'admin bind address (default 127.0.0.1)' })
      .option('admin-port', { type: 'string', describe: 'admin port (default 15000)' })
      .option('metrics-address', { type: 'string', describe: 'bind address of /stats/prometheus and /healthz/ready (default 0.0.0.0)' })
      .option('metrics-port', { type: 'string', describe: 'port of /stats/prometheus and /healthz/ready (default 15020)' })
      .option('dns-port', { type: 'string', describe: 'DNS proxy port on loopback (default 15053)' })
      .option('capture', { type: 'boolean', describe: 'install traffic capture when the proxy listens (default true; --no-capture)' })
      .option('proxy', { type: 'boolean', describe: 'run the data-plane proxy (default true; --no-proxy for control-plane only)' })
      .option('proxy-workers', { type: 'string', describe: 'proxy processes (default: one per core; 0 runs the proxy inside the agent)' })
      .option('proxy-liveness-timeout', {
        type: 'string',
        describe: 'seconds a proxy worker may leave a liveness ping unanswered before it is restarted (default 10)',
      })
      .option('run-dir', {
        type: 'string',
        describe: 'directory of the local xDS/SDS socket (default /run/vmesh/agent-<hash of data dir>)',
      })
      .option('mode', { type: 'string', choices: ['sidecar', 'gateway'], describe: 'sidecar (default) or an ingress/egress gateway' })
      .option('gateway-label', { type: 'string', array: true, describe: 'gateway mode: a label Gateway selectors match (key=value)' })
      .option('credentials-dir', { type: 'string', describe: 'gateway credentialName files (default /etc/vmesh/credentials)' })
      .option('log-level', { type: 'string', describe: 'trace, debug, info, warn, error' }) as never,
  handler: async (argv) => {
    const flags = Object.fromEntries(FLAGS.map((k) => [k, argv[k]]));
    const cfg = loadAgentConfig({ flags, env: readEnv(), file: readConfigFile(argv.config) });
    const logger = createLogger({ level: cfg.logLevel as 'info' });
    // Loaded on demand: the CLI's other commands should not pay for the whole agent at startup.
    const { startAgent } = await import('../../agent/agent.js');
    const running = await startAgent(cfg, logger);
    await serveUntilSignal({ adminPort: running.adminPort, dnsPort: running.dnsPort, host: cfg.hostName }, () => running.stop(), logger);
  },
};
