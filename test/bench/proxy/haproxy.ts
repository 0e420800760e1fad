// The HAProxy reference pair: one haproxy per host and per mode (plaintext, mutual TLS 1.3 with ECDSA P-256
// certificates from the vmesh CA), single-threaded like the vmesh proxy, HTTP keep-alive on both hops. Each mode also
// carries HTTP/2 end to end: h2c from the client, h2 between the pair (ALPN h2 over mTLS, h2c in plaintext), h2c to
// the upstream's HTTP/2 port (its gRPC port for gRPC requests).
import { generateKeyPairSync } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CertificateAuthority } from '../../../src/ca/ca.js';
import { buildCsr, derToPem } from '../../../src/ca/x509.js';
import type { Logger } from '../../../src/lib/logger.js';

export type HaproxyMode = 'plain' | 'mtls';

/** Where the client-side haproxy listens (loopback of the client host) per mode. */
export const CLIENT_PORTS = { plain: { http: 10080, h2: 10082, tcp: 11000 }, mtls: { http: 10443, h2: 10444, tcp: 11443 } } as const;
/** Where the server-side haproxy listens (the server host's address) per mode. */
export const SERVER_PORTS = { plain: { http: 18080, h2: 18082, tcp: 19000 }, mtls: { http: 18443, h2: 18444, tcp: 19443 } } as const;

export interface HaproxyFiles {
  readonly client: Record<HaproxyMode, string>;
  readonly server: Record<HaproxyMode, string>;
}

async function issue(ca: CertificateAuthority, dir: string, name: string, ip: string): Promise<string> {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const csr = derToPem(buildCsr(privateKey, name), 'CERTIFICATE REQUEST');
  const signed = ca.signCsr(csr, {
    uris: [`spiffe://${ca.trustDomain}/ns/bench/sa/${name}`],
    ips: [ip],
    ttlSeconds: 24 * 3600,
    usage: 'both',
  });
  const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const file = join(dir, `${name}.pem`);
  // haproxy's `crt` takes the certificate and its key in one file.
  await writeFile(file, signed.certPem + keyPem, { mode: 0o600 });
  return file;
}

function config(opts: { nbthread: number; frontends: string }): string {
  return `global
  nbthread ${opts.nbthread}
  maxconn 4096
  ssl-default-bind-options ssl-min-ver TLSv1.3
  ssl-default-server-options ssl-min-ver TLSv1.3
  tune.ssl.default-dh-param 2048

defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  option http-keep-alive
  http-reuse always
${opts.frontends}`;
}

/** Writes both hosts' configs for both modes, with certificates signed by the CA in `caDir` (the controller's). */
export async function writeHaproxyConfigs(opts: {
  dir: string;
  caDir: string;
  trustDomain: string;
  clientIp: string;
  serverIp: string;
  nbthread: number;
  upstreamHttpPort: number;
  upstreamH2cPort: number;
  upstreamGrpcPort: number;
  upstreamTcpPort: number;
  logger: Logger;
}): Promise<HaproxyFiles> {
  const ca = await CertificateAuthority.loadOrCreate({ dir: opts.caDir, trustDomain: opts.trustDomain, logger: opts.logger });
  const caFile = join(opts.dir, 'ca.pem');
  await writeFile(caFile, ca.certPem);
  const clientCrt = await issue(ca, opts.dir, 'haproxy-client', opts.clientIp);
  const serverCrt = await issue(ca, opts.dir, 'haproxy-server', opts.serverIp);
  const tls = {
    client: `ssl crt ${clientCrt} ca-file ${caFile} verify required`,
    server: `ssl crt ${serverCrt} ca-file ${caFile} verify required`,
  };
  const out = { client: {} as Record<HaproxyMode, string>, server: {} as Record<HaproxyMode, string> };
  for (const mode of ['plain', 'mtls'] as const) {
    const c = CLIENT_PORTS[mode];
    const s = SERVER_PORTS[mode];
    const upTls = mode === 'mtls' ? ` ${tls.client}` : '';
    const downTls = mode === 'mtls' ? ` ${tls.server}` : '';
    const upH2 = mode === 'mtls' ? `${upTls} alpn h2` : ' proto h2';
    const downH2 = mode === 'mtls' ? `${downTls} alpn h2` : ' proto h2';
    const client = `
frontend http_in
  bind 127.0.0.1:${c.http}
  default_backend http_out
backend http_out
  server s1 ${opts.serverIp}:${s.http}${upTls}
frontend h2_in
  bind 127.0.0.1:${c.h2} proto h2
  default_backend h2_out
backend h2_out
  server s1 ${opts.serverIp}:${s.h2}${upH2}
frontend tcp_in
  mode tcp
  bind 127.0.0.1:${c.tcp}
  default_backend tcp_out
backend tcp_out
  mode tcp
  server s1 ${opts.serverIp}:${s.tcp}${upTls}
`;
    const server = `
frontend http_in
  bind ${opts.serverIp}:${s.http}${downTls}
  default_backend http_out
backend http_out
  server s1 127.0.0.1:${opts.upstreamHttpPort}
frontend h2_in
  bind ${opts.serverIp}:${s.h2}${downH2}
  use_backend grpc_out if { req.hdr(content-type) -m beg application/grpc }
  default_backend h2_out
backend h2_out
  server s1 127.0.0.1:${opts.upstreamH2cPort} proto h2
backend grpc_out
  server s1 127.0.0.1:${opts.upstreamGrpcPort} proto h2
frontend tcp_in
  mode tcp
  bind ${opts.serverIp}:${s.tcp}${downTls}
  default_backend tcp_out
backend tcp_out
  mode tcp
  server s1 127.0.0.1:${opts.upstreamTcpPort}
`;
    out.client[mode] = join(opts.dir, `client-${mode}.cfg`);
    out.server[mode] = join(opts.dir, `server-${mode}.cfg`);
    await writeFile(out.client[mode], config({ nbthread: opts.nbthread, frontends: client }));
    await writeFile(out.server[mode], config({ nbthread: opts.nbthread, frontends: server }));
  }
  return out;
}
