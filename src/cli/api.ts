import type { Argv } from 'yargs';
import { type CliConfig, loadCliConfig } from '../config/cli.js';
import { readConfigFile, readEnv } from '../config/sources.js';
import { ApiClient } from './api-client.js';

/** Flags every command that talks to the controller's API accepts. */
export function apiFlags<T>(y: Argv<T>) {
  return y
    .option('controller', { type: 'string', describe: 'controller API URL (default https://127.0.0.1:15014)' })
    .option('token', {
      type: 'string',
      describe: 'refused: a secret on the command line is visible in ps (use --token-file or VMESH_TOKEN)',
    })
    .option('token-file', { type: 'string', describe: 'file holding the admin token (default: <data-dir>/admin-token)' })
    .option('ca-cert', { type: 'string', describe: "the controller's CA certificate (default: <data-dir>/ca/ca-cert.pem)" })
    .option('data-dir', { type: 'string', describe: "the controller's data directory, when on its host" })
    .option('config', { type: 'string', describe: 'CLI config file (YAML: controller, token, caCert)' });
}

/** The controller URL, token and CA from flags, env and the CLI config file. */
export function cliConfig(argv: Record<string, unknown>): CliConfig {
  const flags = {
    controller: argv.controller,
    token: argv.token,
    tokenFile: argv.tokenFile,
    caCert: argv.caCert,
    dataDir: argv.dataDir,
  };
  return loadCliConfig({ flags, env: readEnv(), file: readConfigFile(argv.config as string | undefined) });
}

/** `timeoutMs`: how long the controller may stay silent; large config applies take seconds to parse and check. */
export function apiClient(argv: Record<string, unknown>, timeoutMs?: number): ApiClient {
  const cfg = cliConfig(argv);
  return new ApiClient({
    url: cfg.controllerUrl,
    ...(timeoutMs !== undefined ? { timeoutMs } : {}),
    ...(cfg.token !== undefined ? { token: cfg.token } : {}),
    ...(cfg.caPem !== undefined ? { caPem: cfg.caPem } : {}),
  });
}
