import { createHash, createPrivateKey, generateKeyPairSync, type KeyObject, X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import { checkServerIdentity, connect, type PeerCertificate } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { controllerServiceClient, type JoinResponse__Output, type RenewResponse__Output } from '../api/controller-proto.js';
import { fromGrpcError } from '../api/grpc-errors.js';
import { checkHostName, type HostFacts } from '../api/host-record.js';
import { parsePort } from '../lib/addr.js';
import { ErrorCode, VmeshError, vmeshError } from '../lib/errors.js';
import { parseSpiffeId } from './spiffe.js';
import { parseToken } from './tokens.js';
import { buildCsr, derToPem, readCertificate, spkiOf, splitCertificates, subjectAltNames } from './x509.js';

const DEFAULT_TIMEOUT_MS = 15_000;

export interface JoinOptions {
  /** host:port or [v6]:port of the controller's gRPC port (15012). */
  readonly address: string;
  readonly token: string;
  readonly hostName: string;
  readonly facts: HostFacts;
  /** TLS server name to verify instead of the address's host. */
  readonly servername?: string;
  readonly timeoutMs?: number;
}

export interface HostCredentials {
  readonly keyPem: string;
  readonly certPem: string;
  readonly trustBundlePem: string;
  readonly notAfter: Date;
}

function splitAddress(address: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(address) ?? /^([^:[\]]+):(\d+)$/.exec(address);
  if (!m?.[1]) throw vmeshError(ErrorCode.InvalidAddress, `controller address "${address}": want host:port or [ipv6]:port`);
  return { host: m[1], port: parsePort(m[2], `controller address "${address}"`) };
}

const spkiSha256 = (cert: X509Certificate): string => createHash('sha256').update(spkiOf(cert.publicKey)).digest('hex');

export function newKey(): KeyObject {
  return generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
}

/**
 * The certificates the controller presents, leaf first, read over a TLS handshake that verifies nothing and
 * sends no application data: they are only compared with the token's pin.
 */
async function presentedChain(host: string, port: number, servername: string | undefined, timeoutMs: number): Promise<X509Certificate[]> {
  return new Promise((resolve, reject) => {
    const sni = servername ?? (isIP(host) ? undefined : host);
    const socket = connect({ host, port, rejectUnauthorized: false, ALPNProtocols: ['h2'], ...(sni ? { servername: sni } : {}) });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(vmeshError(ErrorCode.Unavailable, `controller ${host}:${port}: no TLS handshake within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once('error', (e) => {
      clearTimeout(timer);
      reject(vmeshError(ErrorCode.Unavailable, `controller ${host}:${port}: TLS connection failed: ${e.message}`));
    });
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      const chain: X509Certificate[] = [];
      const seen = new Set<string>();
      for (let c: PeerCertificate | undefined = socket.getPeerCertificate(true); c?.raw && !seen.has(c.fingerprint256); ) {
        seen.add(c.fingerprint256);
        chain.push(new X509Certificate(c.raw));
        c = (c as { issuerCertificate?: PeerCertificate }).issuerCertificate;
      }
      socket.destroy();
      resolve(chain);
    });
  });
}

/**
 * Standard hostname verification, and when the address is not among the certificate's names (a NAT or load
 * balancer address), acceptance of the controller's own SPIFFE id instead: this CA gives that name only to
 * controllers, so a host certificate from the same CA still cannot pose as the controller.
 */
export function controllerIdentity(hostname: string, cert: PeerCertificate): Error | undefined {
  const standard = checkServerIdentity(hostname, cert);
  if (!standard) return undefined;
  const uris = cert.raw ? subjectAltNames(readCertificate(cert.raw)).uris : [];
  return uris.some((u) => {
    const id = parseSpiffeId(u);
    return id.ok && id.value.kind === 'controller';
  })
    ? undefined
    : standard;
}

/**
 * The TLS server name channels to a controller addressed by IP present. grpc-js sends the target's host as SNI,
 * an IP literal there (which RFC 6066 forbids, and Node warns about: DEP0123); this name replaces it. It is in
 * no certificate: the controller is then accepted by its SPIFFE id (controllerIdentity), as for any address
 * its certificate does not name.
 */
export const CONTROLLER_TLS_NAME = 'controller.vmesh.invalid';

/** Channel options for a gRPC target naming controllers (`host:port`, `ipv4:a,b`, `ipv6:[a]:p`, `dns:name`). */
export function controllerChannelOptions(target: string): grpc.ChannelOptions {
  const hosts = target
    .replace(/^(ipv4|ipv6|dns):(\/\/[^/]*\/)?/, '')
    .split(',')
    .map((a) => /^\[([^\]]+)\](:\d+)?$/.exec(a)?.[1] ?? a.replace(/:\d+$/, ''));
  return hosts.every((h) => isIP(h) !== 0) ? { 'grpc.ssl_target_name_override': CONTROLLER_TLS_NAME } : {};
}

export function channelCredentials(trustPem: string, client?: { keyPem: string; certPem: string }): grpc.ChannelCredentials {
  return grpc.credentials.createSsl(
    Buffer.from(trustPem),
    client ? Buffer.from(client.keyPem) : null,
    client ? Buffer.from(client.certPem) : null,
    { checkServerIdentity: controllerIdentity },
  );
}

export async function unary<Res>(opts: {
  address: string;
  servername?: string;
  credentials: grpc.ChannelCredentials;
  method: 'Join' | 'Renew' | 'SignWorkload';
  request: object;
  timeoutMs: number;
  /** A long-lived vmesh.v1.Controller client to call through (kept open); else one is made for this call. */
  client?: grpc.Client;
}): Promise<Res> {
  const Client = controllerServiceClient();
  const channelOptions: grpc.ChannelOptions = opts.servername
    ? { 'grpc.ssl_target_name_override': opts.servername, 'grpc.default_authority': opts.servername }
    : controllerChannelOptions(opts.address);
  const client = opts.client ?? new Client(opts.address, opts.credentials, channelOptions);
  const fn = (client as unknown as Record<string, CallFn<Res> | undefined>)[opts.method];
  if (!fn) throw new VmeshError(ErrorCode.Internal, `vmesh.v1.Controller has no method ${opts.method}`);
  try {
    return await new Promise<Res>((resolve, reject) => {
      fn.call(client, opts.request, { deadline: Date.now() + opts.timeoutMs }, (e: grpc.ServiceError | null, res?: Res) =>
        e || res === undefined ? reject(fromGrpcError(e, `${opts.method} on ${opts.address}`)) : resolve(res),
      );
    });
  } finally {
    if (!opts.client) client.close();
  }
}

type CallFn<Res> = (req: object, options: grpc.CallOptions, cb: (e: grpc.ServiceError | null, res?: Res) => void) => void;

/** Checks an issued certificate: signed by the bundle, for our key, naming `host` if given; returns its notAfter. */
export function checkIssued(certPem: string, bundlePem: string, key: KeyObject, host: string | undefined, what: string): Date {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch (e) {
    throw vmeshError(ErrorCode.Internal, `${what}: controller returned an unreadable certificate: ${(e as Error).message}`);
  }
  const bundle = splitCertificates(bundlePem).map((p) => new X509Certificate(p));
  if (!bundle.some((ca) => cert.checkIssued(ca) && cert.verify(ca.publicKey))) {
    throw vmeshError(ErrorCode.Internal, `${what}: the returned certificate does not chain to the returned trust bundle`);
  }
  if (!spkiOf(cert.publicKey).equals(spkiOf(key)))
    throw vmeshError(ErrorCode.Internal, `${what}: the returned certificate is for another key`);
  if (host !== undefined) {
    const ids = subjectAltNames(readCertificate(cert.raw)).uris.map(parseSpiffeId);
    if (!ids.some((r) => r.ok && r.value.kind === 'host' && r.value.host === host)) {
      throw vmeshError(ErrorCode.Internal, `${what}: the returned certificate does not name host "${host}"`);
    }
  }
  return new Date(cert.validTo);
}

/**
 * Joins the mesh (agent side): makes the host key here (it never leaves the host), checks that the
 * controller presents the CA the token pins before sending anything, then trades the token and a CSR for
 * the host certificate over TLS verified against that CA.
 */
export async function joinController(opts: JoinOptions): Promise<HostCredentials & { hostName: string }> {
  const parsed = parseToken(opts.token);
  if (!parsed.ok) throw vmeshError(ErrorCode.TokenInvalid, `join token: ${parsed.error}`);
  checkHostName(opts.hostName, 'host name');
  const { host, port } = splitAddress(opts.address);
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const pin = parsed.value.caHashHex;

  const chain = await presentedChain(host, port, opts.servername, timeoutMs);
  const at = chain.findIndex((c) => c.ca && spkiSha256(c) === pin);
  if (at < 0) {
    const seen = chain.filter((c) => c.ca).map((c) => `sha256:${spkiSha256(c)}`);
    throw vmeshError(
      ErrorCode.CaHashMismatch,
      `controller ${opts.address} presents CA ${seen.join(', ') || '(none in its chain)'}, the token pins sha256:${pin}: not joining (wrong controller, or a token for another CA)`,
    );
  }
  // The pinned CA and any issuers above it become the roots for the real, fully verified connection.
  const trustPem = chain
    .slice(at)
    .map((c) => derToPem(c.raw, 'CERTIFICATE'))
    .join('');

  const key = newKey();
  const csrPem = derToPem(buildCsr(key, opts.hostName), 'CERTIFICATE REQUEST');
  const res = await unary<JoinResponse__Output>({
    address: opts.address,
    ...(opts.servername ? { servername: opts.servername } : {}),
    credentials: channelCredentials(trustPem),
    method: 'Join',
    request: { token: opts.token, hostName: opts.hostName, csrPem, facts: opts.facts },
    timeoutMs,
  });
  if (!splitCertificates(res.trustBundlePem).some((p) => spkiSha256(new X509Certificate(p)) === pin)) {
    throw vmeshError(ErrorCode.CaHashMismatch, `Join on ${opts.address}: the returned trust bundle lacks the pinned CA sha256:${pin}`);
  }
  const notAfter = checkIssued(res.hostCertPem, res.trustBundlePem, key, opts.hostName, `Join on ${opts.address}`);
  return {
    keyPem: key.export({ type: 'pkcs8', format: 'pem' }).toString(),
    certPem: res.hostCertPem,
    trustBundlePem: res.trustBundlePem,
    notAfter,
    hostName: opts.hostName,
  };
}

export interface RenewOptions {
  readonly address: string;
  /** The current host key and certificate: they authenticate the call (mutual TLS). */
  readonly keyPem: string;
  readonly certPem: string;
  readonly trustBundlePem: string;
  /** Make a new key for the new certificate (default) or keep the current one. */
  readonly rotateKey?: boolean;
  readonly servername?: string;
  readonly timeoutMs?: number;
}

/** Renews the host certificate over mutual TLS; the returned trust bundle may carry new CAs (rotation). */
export async function renewHostCert(opts: RenewOptions): Promise<HostCredentials> {
  let current: KeyObject;
  try {
    current = createPrivateKey(opts.keyPem);
  } catch (e) {
    throw vmeshError(ErrorCode.InvalidConfig, `host key: cannot parse: ${(e as Error).message}`);
  }
  const key = opts.rotateKey === false ? current : newKey();
  const ids = subjectAltNames(readCertificate(new X509Certificate(opts.certPem).raw)).uris.map(parseSpiffeId);
  const hostId = ids.find((r) => r.ok && r.value.kind === 'host');
  const host = hostId?.ok && hostId.value.kind === 'host' ? hostId.value.host : undefined;
  const csrPem = derToPem(buildCsr(key, host ?? 'vmesh-host'), 'CERTIFICATE REQUEST');
  const res = await unary<RenewResponse__Output>({
    address: opts.address,
    ...(opts.servername ? { servername: opts.servername } : {}),
    credentials: channelCredentials(opts.trustBundlePem, { keyPem: opts.keyPem, certPem: opts.certPem }),
    method: 'Renew',
    request: { csrPem },
    timeoutMs: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
  });
  const notAfter = checkIssued(res.certPem, res.trustBundlePem, key, host, `Renew on ${opts.address}`);
  return {
    keyPem: opts.rotateKey === false ? opts.keyPem : key.export({ type: 'pkcs8', format: 'pem' }).toString(),
    certPem: res.certPem,
    trustBundlePem: res.trustBundlePem,
    notAfter,
  };
}

/**
 * When a certificate should be renewed: at `fraction` of its lifetime. The default fraction lies in
 * [0.5, 0.8), derived from the certificate's validity so it is stable across calls for one certificate yet
 * spreads a fleet's renewals instead of bunching them.
 */
export function renewalTime(notBefore: Date, notAfter: Date, fraction?: number): Date {
  const f =
    fraction ??
    0.5 + (0.3 * createHash('sha256').update(`${notBefore.getTime()}/${notAfter.getTime()}`).digest().readUInt32BE(0)) / 2 ** 32;
  if (!(f > 0 && f <= 1)) throw new VmeshError(ErrorCode.Internal, `renewal fraction ${f} is outside (0, 1]`);
  return new Date(notBefore.getTime() + f * (notAfter.getTime() - notBefore.getTime()));
}

export function shouldRenew(notBefore: Date, notAfter: Date, now: Date | number = Date.now(), fraction?: number): boolean {
  return (typeof now === 'number' ? now : now.getTime()) >= renewalTime(notBefore, notAfter, fraction).getTime();
}
