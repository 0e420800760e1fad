import * as grpc from '@grpc/grpc-js';
import {
  type CaMetrics,
  type CertificateAuthority,
  createControllerGrpcService,
  createControllerServerCredentials,
  type HostRegistry,
  type IssuedCertificates,
  PeerAuthenticator,
  type PeerCall,
  type TokenService,
  trustBundleSha256,
} from '../ca/index.js';
import type { ControllerConfig } from '../config/controller.js';
import type { HealthTracker } from '../discovery/health.js';
import type { VmRegistry } from '../discovery/workload-registry.js';
import { ErrorCode, vmeshError } from '../lib/errors.js';
import type { Component } from '../lib/lifecycle.js';
import { grpcServerOptions } from '../lib/limits.js';
import type { Logger } from '../lib/logger.js';
import type { EdgeTracker } from './services/edge-tracker.js';
import { reportHealthHandler } from './services/health-service.js';
import { signWorkloadHandler } from './services/workload-cert-service.js';
import type { XdsWiring } from './services/xds-service.js';
import type { ServingCertificates } from './serving-certs.js';

function listenGrpc(server: grpc.Server, address: string, creds: grpc.ServerCredentials): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(address, creds, (e, port) =>
      e ? reject(vmeshError(ErrorCode.Unavailable, `cannot listen on ${address}: ${e.message}`)) : resolve(port),
    );
  });
}

const hostPort = (host: string, port: number) => (host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`);

/** A gRPC server as a component: bound on start (the port it got is `port`), shut down at once on stop. */
export interface GrpcComponent extends Component {
  readonly port: number;
}

function grpcComponent(
  name: string,
  server: grpc.Server,
  address: string,
  creds: grpc.ServerCredentials,
  onBound?: (port: number) => void,
) {
  let port = 0;
  return {
    name,
    get port() {
      return port;
    },
    async start() {
      port = await listenGrpc(server, address, creds).catch((e: unknown) => {
        server.forceShutdown();
        throw e;
      });
      onBound?.(port);
    },
    async stop() {
      server.forceShutdown();
    },
  };
}

export interface ControllerServices {
  readonly cfg: ControllerConfig;
  readonly ca: CertificateAuthority;
  readonly tokens: TokenService;
  readonly hosts: HostRegistry;
  readonly issued: IssuedCertificates;
  readonly health: HealthTracker;
  readonly registry: VmRegistry;
  readonly edges: EdgeTracker;
  readonly reportIntervalMs: number;
  readonly caMetrics: CaMetrics;
  readonly xds: XdsWiring;
  readonly serving: ServingCertificates;
  readonly logger: Logger;
}

/** The mTLS port (15012): join and renewal, health reports, workload certificates and ADS. */
export function secureGrpc(d: ControllerServices): GrpcComponent {
  const { cfg, ca, hosts, logger } = d;
  const server = new grpc.Server(grpcServerOptions('tls'));
  server.addService(d.xds.secure.service, d.xds.secure.implementation);
  const controllerService = createControllerGrpcService({
    ca,
    tokens: d.tokens,
    hosts,
    hostCertTtlSeconds: cfg.hostCertTtlSeconds,
    renewLimit: cfg.rateLimits.renew,
    logger: logger.child({ component: 'join' }),
    metrics: d.caMetrics,
  });
  const peers = new PeerAuthenticator(hosts, ca);
  const authenticate = (call: PeerCall) => peers.authenticate(call);
  server.addService(controllerService.service, {
    ...controllerService.implementation,
    ReportHealth: reportHealthHandler({
      tracker: d.health,
      authenticate,
      reportIntervalMs: d.reportIntervalMs,
      edges: d.edges,
      logger: logger.child({ component: 'health' }),
      touch: (h) => hosts.touch(h),
      trustBundleSha256: () => trustBundleSha256(ca.trustBundlePem()),
      onBundle: (h, sha) => d.issued.recordBundle(h, sha),
      workloadsOn: (h) => probedWorkloads(d.registry, h),
    }),
    SignWorkload: signWorkloadHandler({
      ca,
      authenticate,
      identitiesOn: (h) => d.registry.onHost(h),
      ttlSeconds: cfg.workloadCertTtlSeconds,
      rateLimit: cfg.rateLimits.signWorkload,
      logger: logger.child({ component: 'ca' }),
      onIssued: (h, id, notAfter) => d.issued.record(h, id, notAfter),
      metrics: d.caMetrics,
    }),
  });
  const creds = createControllerServerCredentials(ca, d.serving.current);
  d.serving.onChange((next) => creds.update(next));
  return grpcComponent('grpc', server, hostPort(cfg.listenAddress, cfg.grpcPort), creds.credentials);
}

/** The workloads a host's agent probes: pure clients listen on nothing. */
function probedWorkloads(registry: VmRegistry, host: string) {
  return registry
    .onHost(host)
    .filter((w) => w.state !== 'client')
    .map((w) => ({
      namespace: w.namespace,
      name: w.name,
      address: w.address,
      ports: { ...w.ports },
      serviceAccount: w.serviceAccount,
      uid: w.uid ?? 0,
      hasUid: w.uid !== undefined,
    }));
}

/** Plaintext ADS, only when configured: for proxyless gRPC clients and debugging. */
export function plaintextGrpc(cfg: ControllerConfig, xds: XdsWiring, logger: Logger): GrpcComponent {
  const server = new grpc.Server(grpcServerOptions('plaintext'));
  server.addService(xds.plaintext.service, xds.plaintext.implementation);
  return grpcComponent(
    'xds-plaintext',
    server,
    hostPort(cfg.xdsPlaintextAddress, cfg.xdsPlaintextPort ?? 0),
    grpc.ServerCredentials.createInsecure(),
    (port) =>
      logger.warn(
        { port, address: cfg.xdsPlaintextAddress },
        'plaintext xDS is on: unauthenticated, for proxyless gRPC clients and debugging',
      ),
  );
}
