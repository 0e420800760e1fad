import { X509Certificate } from 'node:crypto';
import { hostname, networkInterfaces } from 'node:os';
import * as grpc from '@grpc/grpc-js';
import { type MeshConfig, parseMeshConfig } from '../api/mesh-config.js';
import {
  authenticatePeer,
  CaMetrics,
  type CertificateAuthority,
  createControllerGrpcService,
  createControllerServerCredentials,
  HostRegistry,
  IssuedCertificates,
  TokenService,
  trustBundleSha256,
} from '../ca/index.js';
import type { ControllerConfig } from '../config/controller.js';
import { ConsulWatcher } from '../discovery/consul-watcher.js';
import { discoveryMetrics } from '../discovery/discovery-metrics.js';
import { HealthTracker } from '../discovery/health.js';
import { ModelBuilder } from '../discovery/model-builder.js';
import { VipAllocator } from '../discovery/vip-allocator.js';
import { VmRegistry } from '../discovery/workload-registry.js';
import { ErrorCode, vmeshError } from '../lib/errors.js';
import { createApiServer } from '../lib/http-api.js';
import { grpcServerOptions } from '../lib/limits.js';
import { listenOn } from '../lib/listen.js';
import type { Logger } from '../lib/logger.js';
import { MetricsRegistry } from '../lib/metrics-registry.js';
import { processMetrics } from '../lib/process-metrics.js';
import { ConfigStore } from '../store/config-store.js';
import { apiRoutes } from './services/api-routes.js';
import { EdgeTracker } from './services/edge-tracker.js';
import { reportHealthHandler } from './services/health-service.js';
import { uiRoutes } from './services/ui-routes.js';
import { signWorkloadHandler } from './services/workload-cert-service.js';
import { followShared, openState, seenElsewhere, shareCaChange } from './state.js';
import { wireXds } from './xds.js';

export const VMESH_VERSION = '0.1.0';

export interface RunningController {
  readonly grpcPort: number;
  readonly apiPort: number;
  readonly xdsPlaintextPort?: number;
  readonly mesh: MeshConfig;
  readonly ca: CertificateAuthority;
  readonly model: ModelBuilder;
  readonly adminTokenFile: string;
  stop(): Promise<void>;
}

/** Every name and address the controller may be reached by goes into its TLS certificate. */
function serverNames(cfg: ControllerConfig): { dnsNames: string[]; ips: string[] } {
  const ips = new Set(['127.0.0.1', '::1']);
  const dnsNames = new Set(['localhost', hostname().toLowerCase()]);
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) if (!a.address.startsWith('fe80')) ips.add(a.address);
  for (const a of cfg.advertise) (/^[\d.]+$|:/.test(a) ? ips : dnsNames).add(a.replace(/:\d+$/, ''));
  return { dnsNames: [...dnsNames], ips: [...ips] };
}

function listenGrpc(server: grpc.Server, address: string, creds: grpc.ServerCredentials): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(address, creds, (e, port) =>
      e ? reject(vmeshError(ErrorCode.Unavailable, `cannot listen on ${address}: ${e.message}`)) : resolve(port),
    );
  });
}

const hostPort = (host: string, port: number) => (host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`);

/** Builds the controller from its config: store, CA, discovery, gRPC (15012) and the HTTPS API (15014). */
export async function startController(cfg: ControllerConfig, logger: Logger): Promise<RunningController> {
  const mesh = parseMeshConfig(cfg.mesh, 'controller config mesh:');
  const { store, shared, ca, caDir, admin } = await openState(cfg, mesh, logger);
  const tokens = new TokenService(store, ca);
  const hosts = new HostRegistry(store);
  const issued = new IssuedCertificates();
  let config: ConfigStore;
  try {
    config = new ConfigStore(store, mesh);
  } catch (e) {
    await store.close();
    throw e;
  }
  let model: ModelBuilder | undefined;
  const health = new HealthTracker({
    hostTimeoutMs: cfg.hostTimeoutSeconds * 1000,
    onChange: () => model?.trigger(),
    ...(shared ? { seenElsewhere: seenElsewhere(hosts) } : {}),
  });
  model = new ModelBuilder({
    config,
    vips: new VipAllocator(store),
    health,
    meshedHosts: () =>
      new Set(
        hosts
          .list()
          .filter((h) => !h.revoked)
          .map((h) => h.name),
      ),
    revokedHosts: () =>
      new Set(
        hosts
          .list()
          .filter((h) => h.revoked)
          .map((h) => h.name),
      ),
    mesh,
    logger: logger.child({ component: 'model' }),
  });
  const registry = new VmRegistry(config, health, (h) => {
    const facts = hosts.get(h)?.facts;
    return facts?.ipv4[0] ?? facts?.ipv6[0];
  });
  // Everything started is stopped in reverse, on stop() and when a later step of startup fails.
  const closers: Array<() => unknown> = [() => store.close(), () => model?.stop(), () => health.stop()];
  const closeAll = async () => {
    for (const c of closers.splice(0).reverse()) {
      try {
        await c();
      } catch (e) {
        logger.warn({ err: e }, 'error while stopping');
      }
    }
  };
  try {
    return await startServing();
  } catch (e) {
    await closeAll();
    throw e;
  }

  async function startServing(): Promise<RunningController> {
    let consul: ConsulWatcher | undefined;
    if (cfg.consul) {
      consul = new ConsulWatcher({
        url: cfg.consul.url,
        ...(cfg.consul.token ? { token: cfg.consul.token } : {}),
        ...(cfg.consul.datacenter ? { datacenter: cfg.consul.datacenter } : {}),
        waitSeconds: cfg.consul.waitSeconds,
        logger: logger.child({ component: 'consul' }),
        // Consul's own catalog entry is not a mesh service.
        exclude: ['consul'],
      });
      const w = consul;
      closers.push(() => w.stop());
      const m = model as ModelBuilder;
      consul.onChange((s) => m.setConsul(s));
      consul.onError((e) => logger.warn({ code: e.code }, e.message));
      consul.start();
    }

    const metricsRegistry = new MetricsRegistry();
    processMetrics(metricsRegistry);
    const caMetrics = new CaMetrics(metricsRegistry, () => new Date(new X509Certificate(ca.certPem).validTo));
    discoveryMetrics(metricsRegistry, { model: model as ModelBuilder, config, health, ...(consul ? { consul } : {}) });
    const xds = wireXds({
      mesh,
      model: model as ModelBuilder,
      config,
      hosts,
      ca,
      logger: logger.child({ component: 'xds' }),
      metricsRegistry,
    });

    const reportIntervalMs = Math.max(1000, Math.floor((cfg.hostTimeoutSeconds * 1000) / 3));
    const edges = new EdgeTracker({ reportIntervalMs });
    metricsRegistry.gauge('vmesh_graph_hosts', 'Hosts whose edge telemetry the mesh graph holds', [], () => [[[], edges.hosts()]]);
    metricsRegistry.gauge('vmesh_graph_edge_samples', "Edge samples in the hosts' latest reports", [], () => [[[], edges.samples()]]);

    const serverCert = ca.issueServerCert(serverNames(cfg));
    const grpcServer = new grpc.Server(grpcServerOptions('tls'));
    grpcServer.addService(xds.secure.service, xds.secure.implementation);
    const controllerService = createControllerGrpcService({
      ca,
      tokens,
      hosts,
      hostCertTtlSeconds: cfg.hostCertTtlSeconds,
      renewLimit: cfg.rateLimits.renew,
      logger: logger.child({ component: 'join' }),
      metrics: caMetrics,
    });
    grpcServer.addService(controllerService.service, {
      ...controllerService.implementation,
      ReportHealth: reportHealthHandler({
        tracker: health,
        authenticate: (call) => authenticatePeer(call, hosts, ca),
        reportIntervalMs,
        edges,
        logger: logger.child({ component: 'health' }),
        touch: (h) => hosts.touch(h),
        trustBundleSha256: () => trustBundleSha256(ca.trustBundlePem()),
        onBundle: (h, sha) => issued.recordBundle(h, sha),
        // Pure clients listen on nothing: not probed.
        workloadsOn: (h) =>
          registry
            .onHost(h)
            .filter((w) => w.state !== 'client')
            .map((w) => ({
              namespace: w.namespace,
              name: w.name,
              address: w.address,
              ports: { ...w.ports },
              serviceAccount: w.serviceAccount,
              uid: w.uid ?? 0,
              hasUid: w.uid !== undefined,
            })),
      }),
      SignWorkload: signWorkloadHandler({
        ca,
        authenticate: (call) => authenticatePeer(call, hosts, ca),
        identitiesOn: (h) => registry.onHost(h),
        ttlSeconds: cfg.workloadCertTtlSeconds,
        rateLimit: cfg.rateLimits.signWorkload,
        logger: logger.child({ component: 'ca' }),
        onIssued: (h, id, notAfter) => issued.record(h, id, notAfter),
        metrics: caMetrics,
      }),
    });
    const creds = createControllerServerCredentials(ca, serverCert);
    // A rotation step (here, or taken by another controller sharing the store): serve a certificate and roots that match.
    const caChanged = () => {
      const next = ca.issueServerCert(serverNames(cfg));
      creds.update(next);
      api.setSecureContext({ key: next.keyPem, cert: next.chainPem });
      logger.info({ rotation: ca.rotationState().phase, caHash: ca.caHash() }, 'CA changed: serving certificates re-issued');
    };
    closers.push(() => grpcServer.forceShutdown());
    const grpcPort = await listenGrpc(grpcServer, hostPort(cfg.listenAddress, cfg.grpcPort), creds.credentials);

    let plainServer: grpc.Server | undefined;
    let xdsPlaintextPort: number | undefined;
    if (cfg.xdsPlaintextPort !== undefined) {
      const ps = new grpc.Server(grpcServerOptions('plaintext'));
      plainServer = ps;
      closers.push(() => ps.forceShutdown());
      plainServer.addService(xds.plaintext.service, xds.plaintext.implementation);
      xdsPlaintextPort = await listenGrpc(
        plainServer,
        hostPort(cfg.xdsPlaintextAddress, cfg.xdsPlaintextPort),
        grpc.ServerCredentials.createInsecure(),
      );
      logger.warn(
        { port: xdsPlaintextPort, address: cfg.xdsPlaintextAddress },
        'plaintext xDS is on: unauthenticated, for proxyless gRPC clients and debugging',
      );
    }

    const api = createApiServer({
      key: serverCert.keyPem,
      cert: serverCert.chainPem,
      adminToken: admin.token,
      routes: [
        ...uiRoutes(),
        ...apiRoutes({
          tokens,
          hosts,
          health,
          config,
          registry,
          model: model as ModelBuilder,
          xds,
          version: VMESH_VERSION,
          metrics: metricsRegistry,
          edges,
          ca: {
            ca,
            hosts,
            health,
            issued,
            onChange: () => {
              caChanged();
              if (shared) shareCaChange(shared, caDir, logger);
            },
          },
        }),
      ],
      logger: logger.child({ component: 'api' }),
    });
    closers.push(() => {
      const closed = new Promise<void>((r) => api.close(() => r()));
      api.closeAllConnections();
      return closed;
    });
    const apiPort = await listenOn(api, cfg.listenAddress, cfg.apiPort);
    if (shared) {
      closers.push(
        followShared({ cfg, store: shared, caDir, ca, config, hosts, health, xds, model: model as ModelBuilder, caChanged, logger }),
      );
    }
    health.start();
    await (model as ModelBuilder).rebuild();
    logger.info(
      { grpcPort, apiPort, xdsPlaintextPort, dataDir: cfg.dataDir, trustDomain: mesh.trustDomain, consul: cfg.consul?.url },
      'controller ready',
    );

    const m = model as ModelBuilder;
    return {
      grpcPort,
      apiPort,
      ...(xdsPlaintextPort !== undefined ? { xdsPlaintextPort } : {}),
      mesh,
      ca,
      model: m,
      adminTokenFile: admin.file,
      stop: closeAll,
    };
  }
}
