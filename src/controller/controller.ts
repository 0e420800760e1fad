import { X509Certificate } from 'node:crypto';
import { type MeshConfig, parseMeshConfig } from '../api/mesh-config.js';
import { CaMetrics, type CertificateAuthority } from '../ca/index.js';
import type { ControllerConfig } from '../config/controller.js';
import { ConsulWatcher } from '../discovery/consul-watcher.js';
import { discoveryMetrics } from '../discovery/discovery-metrics.js';
import type { ModelBuilder } from '../discovery/model-builder.js';
import { type Component, component, startAll } from '../lib/lifecycle.js';
import type { Logger } from '../lib/logger.js';
import { MetricsRegistry } from '../lib/metrics-registry.js';
import { tuneMalloc } from '../lib/native.js';
import { processMetrics } from '../lib/process-metrics.js';
import { apiServer } from './api-server.js';
import { plaintextGrpc, secureGrpc } from './grpc-servers.js';
import { type MeshCore, meshCore } from './mesh-core.js';
import { EdgeTracker } from './services/edge-tracker.js';
import { wireXds } from './services/xds-service.js';
import { ServingCertificates } from './serving-certs.js';
import { type ControllerState, followShared, openState, shareCaChange } from './state.js';

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

/** Builds the controller from its config: store, CA, discovery, gRPC (15012) and the HTTPS API (15014). */
export async function startController(cfg: ControllerConfig, logger: Logger): Promise<RunningController> {
  const tuned = tuneMalloc();
  if (!tuned.ok) logger.warn({ reason: tuned.error.message }, 'malloc tuning not applied; large buffers may fragment the heap');
  const mesh = parseMeshConfig(cfg.mesh, 'controller config mesh:');
  const state = await openState(cfg, mesh, logger);
  let core: MeshCore;
  try {
    core = meshCore({ cfg, mesh, ...state, logger });
  } catch (e) {
    await state.store.close();
    throw e;
  }
  const parts = controllerComponents(cfg, mesh, state, core, logger);
  const running = await startAll(parts.components, logger);
  logger.info(
    {
      grpcPort: parts.grpc.port,
      apiPort: parts.api.port,
      xdsPlaintextPort: parts.plaintext?.port,
      dataDir: cfg.dataDir,
      trustDomain: mesh.trustDomain,
      consul: cfg.consul?.url,
    },
    'controller ready',
  );
  return {
    grpcPort: parts.grpc.port,
    apiPort: parts.api.port,
    ...(parts.plaintext ? { xdsPlaintextPort: parts.plaintext.port } : {}),
    mesh,
    ca: state.ca,
    model: core.model,
    adminTokenFile: state.admin.file,
    stop: () => running.stop(),
  };
}

/**
 * The controller's parts in start order; they stop in reverse: the servers close before the state they serve, and
 * the store closes last. The model's first build comes after every server listens, as the last step.
 */
function controllerComponents(cfg: ControllerConfig, mesh: MeshConfig, state: ControllerState, core: MeshCore, logger: Logger) {
  const { store, shared, ca, caDir } = state;
  const { model, config, health } = core;
  const consul = consulWatcher(cfg, model, logger);

  const metricsRegistry = new MetricsRegistry();
  processMetrics(metricsRegistry);
  const caMetrics = new CaMetrics(metricsRegistry, () => new Date(new X509Certificate(ca.certPem).validTo));
  discoveryMetrics(metricsRegistry, { model, config, health, ...(consul ? { consul } : {}) });
  const xds = wireXds({ mesh, model, config, hosts: core.hosts, ca, logger: logger.child({ component: 'xds' }), metricsRegistry });
  const reportIntervalMs = Math.max(1000, Math.floor((cfg.hostTimeoutSeconds * 1000) / 3));
  const edges = new EdgeTracker({ reportIntervalMs });
  metricsRegistry.gauge('vmesh_graph_hosts', 'Hosts whose edge telemetry the mesh graph holds', [], () => [[[], edges.hosts()]]);
  metricsRegistry.gauge('vmesh_graph_edge_samples', "Edge samples in the hosts' latest reports", [], () => [[[], edges.samples()]]);

  // A rotation step (here, or taken by another controller sharing the store): serve a certificate and roots that match.
  const serving = new ServingCertificates(cfg, ca);
  const caChanged = () => {
    serving.reissue();
    logger.info({ rotation: ca.rotationState().phase, caHash: ca.caHash() }, 'CA changed: serving certificates re-issued');
  };
  const grpc = secureGrpc({ cfg, ca, ...core, edges, reportIntervalMs, caMetrics, xds, serving, logger });
  const plaintext = cfg.xdsPlaintextPort !== undefined ? plaintextGrpc(cfg, xds, logger) : undefined;
  const api = apiServer({
    address: cfg.listenAddress,
    port: cfg.apiPort,
    adminToken: state.admin.token,
    serving,
    logger: logger.child({ component: 'api' }),
    deps: {
      ...core,
      xds,
      version: VMESH_VERSION,
      metrics: metricsRegistry,
      edges,
      ca: {
        ca,
        hosts: core.hosts,
        health,
        issued: core.issued,
        onChange: () => {
          caChanged();
          if (shared) shareCaChange(shared, caDir, logger);
        },
      },
    },
  });
  let unfollow: (() => unknown) | undefined;
  const components: Component[] = [
    component('store', { stop: () => store.close() }),
    component('model', { stop: () => model.stop() }),
    component('health', { stop: () => health.stop() }),
    component('jwks', { start: () => core.jwks.start(), stop: () => core.jwks.stop() }),
    ...(consul ? [component('consul', { start: () => consul.start(), stop: () => consul.stop() })] : []),
    grpc,
    ...(plaintext ? [plaintext] : []),
    api,
    ...(shared
      ? [
          component('shared-store', {
            start: () => {
              unfollow = followShared({ cfg, store: shared, caDir, ca, config, hosts: core.hosts, health, xds, model, caChanged, logger });
            },
            stop: () => unfollow?.(),
          }),
        ]
      : []),
    component('first-build', {
      start: () => {
        health.start();
        return model.rebuild();
      },
    }),
  ];
  return { components, grpc, api, plaintext };
}

/** Consul's catalog as a source of services, when configured. */
function consulWatcher(cfg: ControllerConfig, model: ModelBuilder, logger: Logger): ConsulWatcher | undefined {
  if (!cfg.consul) return undefined;
  const consul = new ConsulWatcher({
    url: cfg.consul.url,
    ...(cfg.consul.token ? { token: cfg.consul.token } : {}),
    ...(cfg.consul.datacenter ? { datacenter: cfg.consul.datacenter } : {}),
    waitSeconds: cfg.consul.waitSeconds,
    logger: logger.child({ component: 'consul' }),
    // Consul's own catalog entry is not a mesh service.
    exclude: ['consul'],
  });
  consul.onChange((s) => model.setConsul(s));
  consul.onError((e) => logger.warn({ code: e.code }, e.message));
  return consul;
}
