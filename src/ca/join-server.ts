import { X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import type { PeerCertificate } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { type ControllerHandlers, controllerServiceClient, type HostFactsMessage__Output } from '../api/controller-proto.js';
import { toGrpcError } from '../api/grpc-errors.js';
import { checkHostName, type HostFacts } from '../api/host-record.js';
import { ErrorCode, isVmeshError, type VmeshError, vmeshError } from '../lib/errors.js';
import { Limits } from '../lib/limits.js';
import type { Logger } from '../lib/logger.js';
import { KeyedRateLimiter, type RateLimit, takeOrRefuse } from '../lib/rate-limit.js';
import { err, ok, type Result } from '../lib/result.js';
import type { CertificateAuthority, ServerCertificate } from './ca.js';
import { type CaMetrics, countedSigning } from './ca-metrics.js';
import { MeshCertificateProvider } from './cert-provider.js';
import type { HostRegistry } from './host-registry.js';
import { hostSpiffeId, parseSpiffeId } from './spiffe.js';
import { parseToken, type TokenService } from './tokens.js';
import { canonicalSerial, readCertificate, subjectAltNames } from './x509.js';

export interface ControllerServiceDeps {
  readonly ca: CertificateAuthority;
  readonly tokens: TokenService;
  readonly hosts: HostRegistry;
  readonly hostCertTtlSeconds: number;
  /** Renewals per host identity. */
  readonly renewLimit: RateLimit;
  readonly logger: Logger;
  readonly metrics?: CaMetrics;
}

/** What authenticatePeer needs of a call: every grpc-js server call has both. */
export interface PeerCall {
  getAuthContext(): { sslPeerCertificate?: PeerCertificate } | null;
  getPeer(): string;
}

type PeerCa = Pick<CertificateAuthority, 'trustDomain' | 'issued' | 'trustGeneration'>;

/**
 * The host a call comes from, by its client certificate. grpc-js only exposes a certificate that TLS verified
 * against our trust bundle (a certificate from another CA fails TLS verification and is seen as none); we
 * still check it was signed by this CA, take the host from its SPIFFE URI, and refuse revoked or unknown serials.
 */
export function authenticatePeer(call: PeerCall, hosts: HostRegistry, ca: PeerCa): Result<{ host: string; serial: string }, VmeshError> {
  return new PeerAuthenticator(hosts, ca, 0).authenticate(call);
}

/**
 * authenticatePeer for many calls on few connections: every call of a connection presents the same certificate,
 * so what depends on the certificate alone (parsing, the CA's signature on it, its SPIFFE host) is remembered by
 * its exact DER for as long as the CA's trust does not change. What can change between two calls — whether the
 * host is still registered, the certificate revoked or replaced — is checked on every call.
 */
export class PeerAuthenticator {
  private readonly verified = new Map<string, { readonly generation: number; readonly host: string; readonly serial: string }>();

  constructor(
    private readonly hosts: HostRegistry,
    private readonly ca: PeerCa,
    /** Certificates remembered (oldest forgotten first): about one per connected host. */
    private readonly maxEntries = 8192,
  ) {}

  authenticate(call: PeerCall): Result<{ host: string; serial: string }, VmeshError> {
    const raw = call.getAuthContext()?.sslPeerCertificate?.raw;
    if (!raw) {
      return err(
        vmeshError(
          ErrorCode.Unauthenticated,
          'no verified client certificate: this RPC needs mutual TLS with the host certificate from Join (certificates of other CAs do not verify)',
        ),
      );
    }
    const key = raw.toString('latin1');
    let id = this.verified.get(key);
    if (id?.generation !== this.ca.trustGeneration) {
      const fresh = this.identify(raw);
      if (!fresh.ok) return fresh;
      id = fresh.value;
      this.verified.delete(key);
      if (this.maxEntries > 0) {
        this.verified.set(key, id);
        if (this.verified.size > this.maxEntries) this.verified.delete(this.verified.keys().next().value as string);
      }
    }
    const checked = this.hosts.checkCertificate(id.host, id.serial);
    return checked.ok ? ok({ host: id.host, serial: id.serial }) : checked;
  }

  private identify(raw: Buffer): Result<{ generation: number; host: string; serial: string }, VmeshError> {
    const generation = this.ca.trustGeneration;
    const cert = new X509Certificate(raw);
    if (!this.ca.issued(cert))
      return err(vmeshError(ErrorCode.Unauthenticated, `client certificate ${cert.serialNumber} was not issued by this CA`));
    const uris = subjectAltNames(readCertificate(cert.raw)).uris;
    const ids = uris
      .map(parseSpiffeId)
      .flatMap((r) => (r.ok && r.value.kind === 'host' && r.value.trustDomain === this.ca.trustDomain ? [r.value] : []));
    const id = ids[0];
    if (!id || ids.length !== 1) {
      return err(
        vmeshError(
          ErrorCode.Unauthenticated,
          `client certificate names no single host of trust domain ${this.ca.trustDomain} (URIs: ${uris.join(' ') || 'none'})`,
        ),
      );
    }
    return ok({ generation, host: id.host, serial: canonicalSerial(cert.serialNumber) });
  }
}

const MAX_TEXT = 256;
const MAX_ADDRS = 64;

/** Facts come from the client: bound them before they reach the store. */
function factsFromMessage(m: HostFactsMessage__Output | null): HostFacts {
  const text = (s: unknown) => String(s ?? '').slice(0, MAX_TEXT);
  const num = (n: unknown) => (Number.isFinite(Number(n)) && Number(n) >= 0 ? Number(n) : 0);
  const ips = (list: unknown, v: 4 | 6) =>
    Array.isArray(list)
      ? list
          .slice(0, MAX_ADDRS * 4)
          .map(String)
          .filter((a) => isIP(a) === v)
          .slice(0, MAX_ADDRS)
      : [];
  return {
    hostname: text(m?.hostname),
    osDistro: text(m?.osDistro),
    osRelease: text(m?.osRelease),
    kernel: text(m?.kernel),
    arch: text(m?.arch),
    cpuBrand: text(m?.cpuBrand),
    cpuCores: num(m?.cpuCores),
    memoryTotalBytes: num(m?.memoryTotalBytes),
    ipv4: ips(m?.ipv4, 4),
    ipv6: ips(m?.ipv6, 6),
  };
}

/** vmesh.v1.Controller's Join and Renew, ready for `server.addService(service, implementation)`. */
export function createControllerGrpcService(deps: ControllerServiceDeps): {
  service: grpc.ServiceDefinition;
  implementation: grpc.UntypedServiceImplementation;
} {
  const { ca, tokens, hosts, logger } = deps;
  const td = ca.trustDomain;
  const sign = <T>(fn: () => T): T => countedSigning(deps.metrics, 'host', fn);
  const renewals = new KeyedRateLimiter(deps.renewLimit);

  function handle<Req, Res>(
    rpc: string,
    call: grpc.ServerUnaryCall<Req, Res>,
    cb: grpc.sendUnaryData<Res>,
    context: Record<string, unknown>,
    fn: () => Promise<Res>,
  ): void {
    fn().then(
      (res) => cb(null, res),
      (e: unknown) => {
        const fields = { rpc, peer: call.getPeer(), ...context, code: isVmeshError(e) ? e.code : ErrorCode.Internal };
        if (isVmeshError(e) && e.code !== ErrorCode.Internal) logger.warn(fields, `refused ${rpc}: ${e.message}`);
        else logger.error({ ...fields, err: e }, `${rpc} failed`);
        cb(toGrpcError(e));
      },
    );
  }

  const Join: ControllerHandlers['Join'] = (call, cb) => {
    const req = call.request;
    const token = typeof req.token === 'string' && req.token.length <= Limits.joinTokenChars ? req.token : '';
    const hostName = typeof req.hostName === 'string' ? req.hostName.slice(0, Limits.hostNameChars + 1) : '';
    const parsed = parseToken(token);
    handle('Join', call, cb, { tokenId: parsed.ok ? parsed.value.id : undefined, host: hostName }, async () => {
      // The caller is unauthenticated until its token checks out: nothing else of the request is read before
      // that (a CSR is the costly part), and every field is bounded first.
      if (token === '' && (req.token ?? '') !== '') {
        throw vmeshError(ErrorCode.TokenInvalid, `join token: over ${Limits.joinTokenChars} characters, not a vmesh join token`);
      }
      tokens.check(token, hostName || undefined);
      checkHostName(hostName, 'Join host_name');
      // Check the CSR before using the token, so a broken request does not burn it.
      ca.checkCsr(req.csrPem ?? '');
      const { host } = await tokens.consume(token, hostName);
      const signed = sign(() =>
        ca.signCsr(req.csrPem, { uris: [hostSpiffeId(td, host)], ttlSeconds: deps.hostCertTtlSeconds, usage: 'client' }),
      );
      await hosts.register({ name: host, facts: factsFromMessage(req.facts), certSerial: signed.serial, certNotAfter: signed.notAfter });
      logger.info({ rpc: 'Join', host, serial: signed.serial, notAfter: signed.notAfter, peer: call.getPeer() }, 'host joined');
      return {
        hostCertPem: signed.certPem,
        trustBundlePem: ca.trustBundlePem(),
        hostName: host,
        certNotAfter: String(signed.notAfter.getTime()),
      };
    });
  };

  const Renew: ControllerHandlers['Renew'] = (call, cb) => {
    handle('Renew', call, cb, {}, async () => {
      const peer = authenticatePeer(call, hosts, ca);
      if (!peer.ok) {
        deps.metrics?.authenticationFailed();
        throw peer.error;
      }
      const { host } = peer.value;
      // Checked before the CSR is read: a host over its rate costs neither a signing nor a store write.
      takeOrRefuse(renewals, host, `Renew for host "${host}"`);
      const signed = sign(() =>
        ca.signCsr(call.request.csrPem ?? '', {
          uris: [hostSpiffeId(td, host)],
          ttlSeconds: deps.hostCertTtlSeconds,
          usage: 'client',
        }),
      );
      await hosts.recordCertificate(host, { serial: signed.serial, notAfter: signed.notAfter });
      logger.info({ rpc: 'Renew', host, serial: signed.serial, notAfter: signed.notAfter }, 'host certificate renewed');
      return { certPem: signed.certPem, trustBundlePem: ca.trustBundlePem(), certNotAfter: String(signed.notAfter.getTime()) };
    });
  };

  return { service: controllerServiceClient().service, implementation: { Join, Renew } as grpc.UntypedServiceImplementation };
}

/**
 * TLS for port 15012: the controller presents `cert.chainPem` (leaf + CA, so joining agents can pin the CA)
 * and asks for, but does not require, a client certificate: Join has none yet; authenticatePeer enforces it
 * for everything else. (`ServerCredentials.createSsl(ca, pairs, false)` would not even request client
 * certificates, and `true` would refuse Join, hence grpc-js's certificate-provider credentials.)
 */
export function createControllerServerCredentials(
  ca: Pick<CertificateAuthority, 'trustBundlePem'>,
  cert: ServerCertificate,
): { credentials: grpc.ServerCredentials; update(cert: ServerCertificate): void } {
  const toUpdates = (c: ServerCertificate): [grpc.experimental.CaCertificateUpdate, grpc.experimental.IdentityCertificateUpdate] => [
    { caCertificate: Buffer.from(ca.trustBundlePem()) },
    { certificate: Buffer.from(c.chainPem), privateKey: Buffer.from(c.keyPem) },
  ];
  const provider = new MeshCertificateProvider(...toUpdates(cert));
  // One provider serves both roles, so this call does not depend on grpc-js's parameter order.
  const credentials = grpc.experimental.createCertificateProviderServerCredentials(provider, provider, false);
  // grpc-js passes these options to http2.createSecureServer and offers no setting for the handshake: a peer
  // that connects and sends nothing would hold its socket for Node's default 120 s. (Tested through a real
  // server in test/unit/ca/abuse-join.test.ts, so a grpc-js change that drops this shows.)
  const constructorOptions = credentials._getConstructorOptions.bind(credentials);
  credentials._getConstructorOptions = () => {
    const o = constructorOptions();
    return o && { ...o, handshakeTimeout: Limits.tlsHandshakeMs };
  };
  return { credentials, update: (c) => provider.update(...toUpdates(c)) };
}
