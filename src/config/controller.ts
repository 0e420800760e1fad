import { MESH_PORTS } from '../api/capture.js';
import { parsePort } from '../lib/addr.js';
import { ErrorCode, vmeshError } from '../lib/errors.js';
import type { RateLimit } from '../lib/rate-limit.js';
import { boolOf, type ConfigSources, deepFreeze, listOf, pick, readSecretFile, refuseSecretFlag } from './sources.js';

export const DEFAULT_CONTROLLER_DATA_DIR = '/var/lib/vmesh/controller';

export interface ControllerConfig {
  readonly dataDir: string;
  /** Address the gRPC (15012) and HTTPS API (15014) servers bind. */
  readonly listenAddress: string;
  readonly grpcPort: number;
  readonly apiPort: number;
  /** Istio's 15010: plaintext xDS, off unless a port is given; loopback unless told. */
  readonly xdsPlaintextPort?: number;
  readonly xdsPlaintextAddress: string;
  /** Names and addresses agents and the CLI use to reach this controller (in its TLS certificate). */
  readonly advertise: readonly string[];
  readonly consul?: { readonly url: string; readonly token?: string; readonly datacenter?: string; readonly waitSeconds: number };
  /**
   * Where state lives: the embedded file store in dataDir (one controller), or Consul KV under `prefix` at the
   * `consul` URL, shared by every controller given the same Consul and prefix.
   */
  readonly store: { readonly kind: 'file' } | { readonly kind: 'consul'; readonly prefix: string };
  readonly caCertFile?: string;
  readonly caKeyFile?: string;
  /** Start with an empty file store although the data dir shows an earlier run (its state.json is gone). */
  readonly freshState?: boolean;
  readonly hostCertTtlSeconds: number;
  /** Lifetime of workload SVIDs; agents renew them at 50-80 % of it. */
  readonly workloadCertTtlSeconds: number;
  /** An agent that has not reported for this long is not live; its endpoints leave load balancing. */
  readonly hostTimeoutSeconds: number;
  /**
   * Per host identity: Renew (host certificates) and SignWorkload (workload SVIDs). A real host renews a few
   * times a week and signs each of its identities once a day; one host cannot spend the CA's and store's time.
   */
  readonly rateLimits: { readonly renew: RateLimit; readonly signWorkload: RateLimit };
  /** The `mesh:` section of the config file (MeshConfig), validated by api/mesh-config. */
  readonly mesh: unknown;
  readonly logLevel: string;
}

function positive(value: unknown, what: string, dflt: number): number {
  if (value === undefined || value === null) return dflt;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw vmeshError(ErrorCode.InvalidConfig, `${what}: "${String(value)}" is not a positive number`);
  return n;
}

export function loadControllerConfig(src: ConfigSources): ControllerConfig {
  const get = (flag: string, env: string, key: string) => pick(src, flag, env, key);
  const consulUrl = get('consul', 'VMESH_CONSUL_URL', 'consul.url');
  if (consulUrl !== undefined && !/^https?:\/\/[^/]+/.test(String(consulUrl))) {
    throw vmeshError(ErrorCode.InvalidConfig, `consul: "${String(consulUrl)}" is not an http(s) URL such as http://127.0.0.1:8500`);
  }
  const caCert = get('caCert', 'VMESH_CA_CERT', 'ca.certFile');
  const caKey = get('caKey', 'VMESH_CA_KEY', 'ca.keyFile');
  if ((caCert === undefined) !== (caKey === undefined)) {
    throw vmeshError(ErrorCode.InvalidConfig, '--ca-cert and --ca-key go together: give both or neither');
  }
  const storeKind = String(get('store', 'VMESH_STORE', 'store.kind') ?? 'file');
  if (storeKind !== 'file' && storeKind !== 'consul') {
    throw vmeshError(ErrorCode.InvalidConfig, `store: "${storeKind}" is not a store kind; want file (embedded, the default) or consul`);
  }
  if (storeKind === 'consul' && consulUrl === undefined) {
    throw vmeshError(ErrorCode.InvalidConfig, 'store consul: give the Consul URL too (--consul http://127.0.0.1:8500)');
  }
  const prefix = String(get('consulPrefix', 'VMESH_CONSUL_PREFIX', 'store.prefix') ?? 'vmesh/');
  if (!/^[A-Za-z0-9][A-Za-z0-9._\-/]*\/$/.test(prefix)) {
    throw vmeshError(ErrorCode.InvalidConfig, `consul prefix: "${prefix}" is not a KV path ending in "/" (e.g. vmesh/)`);
  }
  const plain = get('xdsPlaintextPort', 'VMESH_XDS_PLAINTEXT_PORT', 'xds.plaintextPort');
  refuseSecretFlag(src, 'consulToken', 'consul-token', '--consul-token-file F or the VMESH_CONSUL_TOKEN environment variable');
  const consulTokenFile = get('consulTokenFile', 'VMESH_CONSUL_TOKEN_FILE', 'consul.tokenFile');
  const consulToken =
    get('consulToken', 'VMESH_CONSUL_TOKEN', 'consul.token') ??
    (consulTokenFile !== undefined ? readSecretFile(String(consulTokenFile), 'Consul token') : undefined);
  const consulDc = get('consulDatacenter', 'VMESH_CONSUL_DATACENTER', 'consul.datacenter');
  const cfg: ControllerConfig = {
    dataDir: String(get('dataDir', 'VMESH_DATA_DIR', 'dataDir') ?? DEFAULT_CONTROLLER_DATA_DIR),
    listenAddress: String(get('listen', 'VMESH_LISTEN', 'listen') ?? '0.0.0.0'),
    grpcPort: parsePort(get('grpcPort', 'VMESH_GRPC_PORT', 'grpcPort') ?? MESH_PORTS.controllerGrpc, 'gRPC port', { allowZero: true }),
    apiPort: parsePort(get('apiPort', 'VMESH_API_PORT', 'apiPort') ?? MESH_PORTS.controllerApi, 'API port', { allowZero: true }),
    ...(plain !== undefined ? { xdsPlaintextPort: parsePort(plain, 'xDS plaintext port', { allowZero: true }) } : {}),
    xdsPlaintextAddress: String(get('xdsPlaintextAddress', 'VMESH_XDS_PLAINTEXT_ADDRESS', 'xds.plaintextAddress') ?? '127.0.0.1'),
    advertise: listOf(get('advertise', 'VMESH_ADVERTISE', 'advertise')),
    ...(consulUrl !== undefined
      ? {
          consul: {
            url: String(consulUrl),
            ...(consulToken !== undefined ? { token: String(consulToken) } : {}),
            ...(consulDc !== undefined ? { datacenter: String(consulDc) } : {}),
            waitSeconds: positive(get('consulWait', 'VMESH_CONSUL_WAIT', 'consul.waitSeconds'), 'consul wait', 30),
          },
        }
      : {}),
    store: storeKind === 'consul' ? { kind: 'consul', prefix } : { kind: 'file' },
    ...(caCert !== undefined ? { caCertFile: String(caCert), caKeyFile: String(caKey) } : {}),
    hostCertTtlSeconds: positive(get('hostCertTtl', 'VMESH_HOST_CERT_TTL', 'hostCertTtlSeconds'), 'host certificate TTL', 7 * 24 * 3600),
    workloadCertTtlSeconds: positive(
      get('workloadCertTtl', 'VMESH_WORKLOAD_CERT_TTL', 'workloadCertTtlSeconds'),
      'workload certificate TTL',
      24 * 3600,
    ),
    hostTimeoutSeconds: positive(get('hostTimeout', 'VMESH_HOST_TIMEOUT', 'hostTimeoutSeconds'), 'host timeout', 60),
    rateLimits: {
      renew: {
        perSecond: positive(get('renewRate', 'VMESH_RENEW_RATE', 'rateLimits.renewPerSecond'), 'renew rate', 0.1),
        burst: positive(get('renewBurst', 'VMESH_RENEW_BURST', 'rateLimits.renewBurst'), 'renew burst', 10),
      },
      signWorkload: {
        perSecond: positive(get('signRate', 'VMESH_SIGN_RATE', 'rateLimits.signPerSecond'), 'sign rate', 20),
        burst: positive(get('signBurst', 'VMESH_SIGN_BURST', 'rateLimits.signBurst'), 'sign burst', 200),
      },
    },
    ...(boolOf(get('freshState', 'VMESH_FRESH_STATE', 'freshState'), 'fresh state', false) ? { freshState: true } : {}),
    mesh: src.file.mesh ?? {},
    logLevel: String(get('logLevel', 'VMESH_LOG_LEVEL', 'logLevel') ?? 'info'),
  };
  return deepFreeze(cfg);
}
