// The ca layer's public surface: the controller and agent import from here.

export {
  type CaOptions,
  CertificateAuthority,
  type CertUsage,
  type RootInfo,
  type RotationState,
  type ServerCertificate,
  type SignedCertificate,
  type SignOptions,
} from './ca.js';
export { CaMetrics, type CertKind, countedSigning } from './ca-metrics.js';
export { MeshCertificateProvider, pemProvider, pemUpdates, updatableChannelCredentials } from './cert-provider.js';
export { gatherHostFacts } from './host-facts.js';
export { HostRegistry } from './host-registry.js';
export { IssuedCertificates } from './issued-certificates.js';
export {
  CONTROLLER_TLS_NAME,
  controllerChannelOptions,
  type HostCredentials,
  type JoinOptions,
  joinController,
  type RenewOptions,
  renewalTime,
  renewHostCert,
  shouldRenew,
} from './join-client.js';
export {
  authenticatePeer,
  type ControllerServiceDeps,
  createControllerGrpcService,
  createControllerServerCredentials,
  PeerAuthenticator,
  type PeerCall,
} from './join-server.js';
export { controllerSpiffeId, hostSpiffeId, isValidTrustDomain, parseSpiffeId, type SpiffeId, workloadSpiffeId } from './spiffe.js';
export { type ParsedToken, parseToken, type TokenInfo, TokenService, tokenView } from './tokens.js';
export { type SignWorkloadOptions, signWorkloadCert, trustBundleSha256, type WorkloadCert } from './workload-client.js';
export { WorkloadIdentities, type WorkloadIdentitiesOptions } from './workload-identities.js';
