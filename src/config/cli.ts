import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MESH_PORTS } from '../api/capture.js';
import { ErrorCode, vmeshError } from '../lib/errors.js';
import { DEFAULT_CONTROLLER_DATA_DIR } from './controller.js';
import { type ConfigSources, deepFreeze, pick, refuseSecretFlag } from './sources.js';

/** How the CLI reaches the controller's API. */
export interface CliConfig {
  readonly controllerUrl: string;
  readonly token?: string;
  readonly caPem?: string;
}

function readIfPresent(path: string): string | undefined {
  try {
    return existsSync(path) ? readFileSync(path, 'utf8').trim() : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Flags > env > file > defaults. On the controller's own host the CLI finds the admin token and the CA
 * certificate in the controller's data directory, as `consul` finds its bootstrap token.
 */
export function loadCliConfig(src: ConfigSources): CliConfig {
  const get = (flag: string, env: string, key: string) => pick(src, flag, env, key);
  const url = String(get('controller', 'VMESH_CONTROLLER', 'controller') ?? `https://127.0.0.1:${MESH_PORTS.controllerApi}`);
  if (!/^https:\/\/[^/]+/.test(url)) {
    throw vmeshError(ErrorCode.InvalidConfig, `controller: "${url}" is not an https URL such as https://127.0.0.1:15014`);
  }
  const dataDir = String(get('dataDir', 'VMESH_DATA_DIR', 'dataDir') ?? DEFAULT_CONTROLLER_DATA_DIR);
  refuseSecretFlag(src, 'token', 'token', '--token-file F or the VMESH_TOKEN environment variable');
  const tokenFile = get('tokenFile', 'VMESH_TOKEN_FILE', 'tokenFile');
  const token = get('token', 'VMESH_TOKEN', 'token') ?? readIfPresent(String(tokenFile ?? join(dataDir, 'admin-token')));
  if (tokenFile !== undefined && token === undefined) {
    throw vmeshError(ErrorCode.InvalidConfig, `token file ${String(tokenFile)} cannot be read`);
  }
  const caFile = get('caCert', 'VMESH_CA_CERT', 'caCert');
  const caPem = readIfPresent(String(caFile ?? join(dataDir, 'ca', 'ca-cert.pem')));
  if (caFile !== undefined && caPem === undefined)
    throw vmeshError(ErrorCode.InvalidConfig, `CA certificate ${String(caFile)} cannot be read`);
  return deepFreeze({
    controllerUrl: url,
    ...(token !== undefined ? { token: String(token) } : {}),
    ...(caPem !== undefined ? { caPem } : {}),
  });
}
