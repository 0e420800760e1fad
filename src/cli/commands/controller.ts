import type { CommandModule } from 'yargs';
import { loadControllerConfig } from '../../config/controller.js';
import { readConfigFile, readEnv } from '../../config/sources.js';
import { createLogger } from '../../lib/logger.js';
import { serveUntilSignal } from '../serve.js';

type Argv = Record<string, unknown> & { config?: string };

const FLAGS = [
  'dataDir',
  'listen',
  'grpcPort',
  'apiPort',
  'advertise',
  'consul',
  'consulToken',
  'consulTokenFile',
  'consulDatacenter',
  'consulWait',
  'store',
  'consulPrefix',
  'caCert',
  'caKey',
  'hostCertTtl',
  'workloadCertTtl',
  'hostTimeout',
  'renewRate',
  'renewBurst',
  'signRate',
  'signBurst',
  'xdsPlaintextPort',
  'xdsPlaintextAddress',
  'freshState',
  'logLevel',
];

export const controllerCommand: CommandModule<object, Argv> = {
  command: 'controller',
  describe: 'run the controller: discovery, config, xDS and the certificate authority',
  builder: (y) =>
    y
      .option('config', { type: 'string', describe: 'controller config file (YAML; mesh: holds the MeshConfig)' })
      .option('data-dir', { type: 'string', describe: 'state directory (default /var/lib/vmesh/controller)' })
      .option('listen', { type: 'string', describe: 'address to bind (default 0.0.0.0)' })
      .option('grpc-port', { type: 'string', describe: 'gRPC: Join, xDS, CSRs, health (default 15012)' })
      .option('api-port', { type: 'string', describe: 'HTTPS API for the CLI (default 15014)' })
      .option('advertise', { type: 'string', array: true, describe: 'names/addresses agents use to reach this controller' })
      .option('consul', { type: 'string', describe: 'Consul HTTP API URL, e.g. http://127.0.0.1:8500' })
      .option('consul-token', { type: 'string', describe: 'refused: a secret on the command line is visible in ps' })
      .option('consul-token-file', { type: 'string', describe: 'file holding the Consul ACL token (or VMESH_CONSUL_TOKEN)' })
      .option('consul-datacenter', { type: 'string' })
      .option('consul-wait', { type: 'string', describe: 'blocking query wait in seconds (default 30)' })
      .option('store', {
        type: 'string',
        describe: 'file (embedded, default) or consul: state in Consul KV, shared by several controllers',
      })
      .option('consul-prefix', { type: 'string', describe: 'KV prefix of the consul store (default vmesh/); protect it with Consul ACLs' })
      .option('ca-cert', { type: 'string', describe: 'bring your own CA (or intermediate) certificate' })
      .option('ca-key', { type: 'string', describe: 'its private key' })
      .option('host-cert-ttl', { type: 'string', describe: 'host certificate lifetime in seconds (default 7 days)' })
      .option('workload-cert-ttl', { type: 'string', describe: 'workload certificate (SVID) lifetime in seconds (default 24 h)' })
      .option('host-timeout', { type: 'string', describe: 'seconds without a report before a host is not live (default 60)' })
      .option('renew-rate', { type: 'string', describe: 'host certificate renewals per host per second (default 0.1)' })
      .option('renew-burst', { type: 'string', describe: 'renewals a host may make at once above that rate (default 10)' })
      .option('sign-rate', { type: 'string', describe: 'workload certificates signed per host per second (default 20)' })
      .option('sign-burst', { type: 'string', describe: 'workload certificates a host may have signed at once (default 200)' })
      .option('xds-plaintext-port', { type: 'string', describe: "plaintext xDS (Istio's 15010), off unless given" })
      .option('xds-plaintext-address', { type: 'string', describe: 'address for plaintext xDS (default 127.0.0.1)' })
      .option('fresh-state', {
        type: 'boolean',
        describe: 'start with an empty store although the data dir holds a CA from an earlier run (hosts must re-join)',
      })
      .option('log-level', { type: 'string', describe: 'trace, debug, info, warn, error' }) as never,
  handler: async (argv) => {
    const flags = Object.fromEntries(FLAGS.map((k) => [k, argv[k]]));
    const cfg = loadControllerConfig({ flags, env: readEnv(), file: readConfigFile(argv.config) });
    const logger = createLogger({ level: cfg.logLevel as 'info' });
    // Loaded on demand: the CLI's other commands should not pay for the whole controller at startup.
    const { startController } = await import('../../controller/controller.js');
    const running = await startController(cfg, logger);
    await serveUntilSignal({ grpcPort: running.grpcPort, apiPort: running.apiPort }, () => running.stop(), logger);
  },
};
