import * as grpc from '@grpc/grpc-js';
import { controllerIdentity } from './join-client.js';

type CaUpdate = grpc.experimental.CaCertificateUpdate;
type IdentityUpdate = grpc.experimental.IdentityCertificateUpdate;

/**
 * A certificate and trust bundle for grpc-js that can be replaced while channels and servers use it: new
 * connections pick up renewed certificates and a rotated trust bundle without rebuilding the channel.
 */
export class MeshCertificateProvider implements grpc.experimental.CertificateProvider {
  private readonly caListeners = new Set<grpc.experimental.CaCertificateUpdateListener>();
  private readonly idListeners = new Set<grpc.experimental.IdentityCertificateUpdateListener>();

  constructor(
    private ca: CaUpdate,
    private identity: IdentityUpdate,
  ) {}

  update(ca: CaUpdate, identity: IdentityUpdate): void {
    this.ca = ca;
    this.identity = identity;
    for (const l of this.caListeners) l(ca);
    for (const l of this.idListeners) l(identity);
  }
  addCaCertificateListener(l: grpc.experimental.CaCertificateUpdateListener): void {
    this.caListeners.add(l);
    process.nextTick(() => this.caListeners.has(l) && l(this.ca));
  }
  removeCaCertificateListener(l: grpc.experimental.CaCertificateUpdateListener): void {
    this.caListeners.delete(l);
  }
  addIdentityCertificateListener(l: grpc.experimental.IdentityCertificateUpdateListener): void {
    this.idListeners.add(l);
    process.nextTick(() => this.idListeners.has(l) && l(this.identity));
  }
  removeIdentityCertificateListener(l: grpc.experimental.IdentityCertificateUpdateListener): void {
    this.idListeners.delete(l);
  }
}

/**
 * Channel credentials (mutual TLS) whose key, certificate and roots follow `provider.update`. The server must be
 * a controller: its address among its certificate's names, or the controller SPIFFE id. With several controllers
 * in one target (`ipv4:a,b`), grpc-js checks every server against the first address, which only that one has.
 */
export function updatableChannelCredentials(provider: MeshCertificateProvider): grpc.ChannelCredentials {
  return grpc.experimental.createCertificateProviderChannelCredentials(provider, provider, { checkServerIdentity: controllerIdentity });
}

/** The provider for a PEM bundle and a key/certificate pair. */
export function pemProvider(bundlePem: string, keyPem: string, certPem: string): MeshCertificateProvider {
  return new MeshCertificateProvider(...pemUpdates(bundlePem, keyPem, certPem));
}

export function pemUpdates(bundlePem: string, keyPem: string, certPem: string): [CaUpdate, IdentityUpdate] {
  return [{ caCertificate: Buffer.from(bundlePem) }, { certificate: Buffer.from(certPem), privateKey: Buffer.from(keyPem) }];
}
