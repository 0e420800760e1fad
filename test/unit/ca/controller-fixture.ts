import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import { controllerServiceClient } from '../../../src/api/controller-proto.js';
import type { HostFacts } from '../../../src/api/host-record.js';
import { CertificateAuthority } from '../../../src/ca/ca.js';
import { HostRegistry } from '../../../src/ca/host-registry.js';
import { createControllerGrpcService, createControllerServerCredentials } from '../../../src/ca/join-server.js';
import { TokenService } from '../../../src/ca/tokens.js';
import { buildCsr, derToPem } from '../../../src/ca/x509.js';
import { grpcServerOptions } from '../../../src/lib/limits.js';
import { createLogger } from '../../../src/lib/logger.js';
import type { RateLimit } from '../../../src/lib/rate-limit.js';
import { FileStore } from '../../../src/store/file/file-store.js';

export const FACTS: HostFacts = {
  hostname: 'h-test',
  osDistro: 'Debian GNU/Linux',
  osRelease: '12',
  kernel: '6.1.0',
  arch: 'x64',
  cpuBrand: 'Test CPU',
  cpuCores: 4,
  memoryTotalBytes: 8 * 2 ** 30,
  ipv4: ['198.18.0.12'],
  ipv6: [],
};

export interface Controller {
  readonly address: string;
  readonly dir: string;
  readonly ca: CertificateAuthority;
  readonly tokens: TokenService;
  readonly hosts: HostRegistry;
  readonly store: FileStore;
  /** Join calls that reached the server's handler. */
  readonly calls: { Join: number; Renew: number };
  /** Log lines the controller wrote (JSON objects). */
  readonly logs: Array<Record<string, unknown>>;
  /** Moves the CA's clock forward (certificate times only). */
  advance(ms: number): void;
  close(): Promise<void>;
}

/** A real controller gRPC server on 127.0.0.1 with a fresh CA and store in a temp dir. */
export async function startController(
  opts: { serverDnsNames?: string[]; serverIps?: string[]; renewLimit?: RateLimit } = {},
): Promise<Controller> {
  const dir = await mkdtemp(join(tmpdir(), 'vmesh-ca-test-'));
  const logs: Array<Record<string, unknown>> = [];
  const destination = new Writable({
    write(chunk, _enc, cb) {
      for (const line of String(chunk).split('\n')) if (line) logs.push(JSON.parse(line));
      cb();
    },
  });
  const logger = createLogger({ level: 'info', destination });
  let skew = 0;
  const ca = await CertificateAuthority.loadOrCreate({
    dir: join(dir, 'ca'),
    trustDomain: 'example.org',
    logger,
    now: () => Date.now() + skew,
  });
  const store = await FileStore.open(dir);
  const tokens = new TokenService(store, ca);
  const hosts = new HostRegistry(store);
  const svc = createControllerGrpcService({
    ca,
    tokens,
    hosts,
    hostCertTtlSeconds: 3600,
    renewLimit: opts.renewLimit ?? { perSecond: 100, burst: 100 },
    logger,
  });
  const calls = { Join: 0, Renew: 0 };
  const impl: grpc.UntypedServiceImplementation = {};
  for (const [name, fn] of Object.entries(svc.implementation)) {
    impl[name] = ((call: unknown, cb: unknown) => {
      calls[name as 'Join' | 'Renew']++;
      (fn as (a: unknown, b: unknown) => void)(call, cb);
    }) as grpc.UntypedHandleCall;
  }
  const server = new grpc.Server(grpcServerOptions('tls'));
  server.addService(svc.service, impl);
  const cert = ca.issueServerCert({ dnsNames: opts.serverDnsNames ?? ['localhost'], ips: opts.serverIps ?? ['127.0.0.1'] });
  const { credentials } = createControllerServerCredentials(ca, cert);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', credentials, (e, p) => (e ? reject(e) : resolve(p))),
  );
  return {
    address: `127.0.0.1:${port}`,
    dir,
    ca,
    tokens,
    hosts,
    store,
    calls,
    logs,
    advance: (ms) => {
      skew += ms;
    },
    close: async () => {
      await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
      server.forceShutdown();
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export function newCsrPem(commonName = 'h'): string {
  return newKeyAndCsr(commonName).csrPem;
}

export function newKeyAndCsr(commonName = 'h'): { keyPem: string; csrPem: string } {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return {
    keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    csrPem: derToPem(buildCsr(privateKey, commonName), 'CERTIFICATE REQUEST'),
  };
}

/** Calls an RPC with a plain grpc-js client, to see the raw status code and details. */
export async function rawCall(
  address: string,
  method: 'Join' | 'Renew',
  request: object,
  creds: { trustPem: string; keyPem?: string; certPem?: string },
): Promise<{ ok: true; value: unknown } | { ok: false; code: grpc.status; details: string }> {
  const Client = controllerServiceClient();
  const client = new Client(
    address,
    grpc.credentials.createSsl(
      Buffer.from(creds.trustPem),
      creds.keyPem ? Buffer.from(creds.keyPem) : null,
      creds.certPem ? Buffer.from(creds.certPem) : null,
    ),
  );
  type Fn = (req: object, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r?: unknown) => void) => void;
  const fn = (client as unknown as Record<string, Fn>)[method] as Fn;
  try {
    return await new Promise((resolve) => {
      fn.call(client, request, { deadline: Date.now() + 10_000 }, (e, r) =>
        resolve(e ? { ok: false, code: e.code, details: e.details } : { ok: true, value: r }),
      );
    });
  } finally {
    client.close();
  }
}
