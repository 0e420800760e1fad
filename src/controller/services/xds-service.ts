import * as grpc from '@grpc/grpc-js';
import type { MeshConfig } from '../../api/mesh-config.js';
import type { Endpoint, MeshModel } from '../../api/model.js';
import { authenticatePeer, type CertificateAuthority, type HostRegistry, type PeerCall } from '../../ca/index.js';
import type { ModelBuilder } from '../../discovery/model-builder.js';
import { ANNOTATIONS } from '../../discovery/workload-registry.js';
import { Limits } from '../../lib/limits.js';
import type { Logger } from '../../lib/logger.js';
import type { MetricsRegistry } from '../../lib/metrics-registry.js';
import { err, ok } from '../../lib/result.js';
import type { ConfigStore } from '../../store/config-store.js';
import {
  type AdsServer,
  createAdsServer,
  makeResource,
  SnapshotCache,
  SnapshotPublisher,
  shown,
  XdsMetrics,
  type XdsResource,
} from '../../xds/index.js';
import {
  applyEnvoyFilters,
  type HostIdentity,
  indexConfig,
  isLocalResource,
  nodeInput,
  proxylessStandIn,
  sharingKey,
  translateNode,
} from '../../xds/translate/index.js';

/** Proxyless gRPC clients on the plaintext port get node ids in their own space. */
export const PROXYLESS_PREFIX = 'proxyless~';

interface NodeMeta {
  readonly mode: 'sidecar' | 'gateway' | 'proxyless';
  readonly labels: Record<string, string>;
  readonly namespace?: string;
}

export interface XdsWiring {
  readonly cache: SnapshotCache;
  /** When each node's snapshot last changed (ms since epoch). */
  readonly lastPush: ReadonlyMap<string, number>;
  /** A removed host: close its streams and forget its snapshot. */
  forget(nodeId: string): void;
  readonly publisher: SnapshotPublisher;
  readonly secure: AdsServer;
  readonly plaintext: AdsServer;
}

/** Workloads per host, computed once per model (not once per node: that is N x M for N hosts). */
const workloadsByHost = new WeakMap<MeshModel, Map<string, Endpoint[]>>();
function workloadsOf(model: MeshModel, host: string): Endpoint[] {
  let byHost = workloadsByHost.get(model);
  if (!byHost) {
    const seen = new Map<string, Map<string, Endpoint>>();
    for (const s of model.services.values()) {
      for (const e of s.endpoints) {
        if (!e.host) continue;
        const m = seen.get(e.host) ?? new Map<string, Endpoint>();
        seen.set(e.host, m);
        m.set(`${e.namespace}/${e.workload}`, e);
      }
    }
    byHost = new Map([...seen].map(([h, m]) => [h, [...m.values()]]));
    workloadsByHost.set(model, byHost);
  }
  return byHost.get(host) ?? [];
}

/**
 * Every WorkloadEntry placed on a host (vmesh.io/host), endpoints and pure clients alike, by host: the
 * registry each agent gets as its WDS resource. Read from config once per model (every config change makes one).
 */
const identitiesByHost = new WeakMap<MeshModel, Map<string, HostIdentity[]>>();
function identitiesOf(model: MeshModel, config: ConfigStore, host: string): HostIdentity[] {
  let byHost = identitiesByHost.get(model);
  if (!byHost) {
    byHost = new Map();
    for (const we of config.list('WorkloadEntry')) {
      const h = we.metadata.annotations[ANNOTATIONS.host];
      if (!h) continue;
      const uid = we.metadata.annotations[ANNOTATIONS.uid];
      const spec = we.spec as { serviceAccount?: string };
      const list = byHost.get(h) ?? [];
      byHost.set(h, list);
      list.push({
        namespace: we.metadata.namespace,
        name: we.metadata.name,
        serviceAccount: spec.serviceAccount ?? 'default',
        ...(uid !== undefined && /^\d+$/.test(uid) ? { uid: Number(uid) } : {}),
      });
    }
    identitiesByHost.set(model, byHost);
  }
  return byHost.get(host) ?? [];
}

function stringMap(v: unknown): Record<string, string> {
  if (!v || typeof v !== 'object') return {};
  return Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, String(x)]));
}

type XdsDeps = {
  mesh: MeshConfig;
  model: ModelBuilder;
  config: ConfigStore;
  hosts: HostRegistry;
  ca: CertificateAuthority;
  logger: Logger;
  onPublished?: (ev: { nodeId: string; version: string; changed: boolean; ms: number }) => void;
  /** Where the xDS servers' pushes, ACKs and NACKs are counted (the controller's /metrics). */
  metricsRegistry?: MetricsRegistry;
  /** Tests shorten the first-request deadline; the controller uses Limits.firstRequestMs. */
  firstRequestMs?: number;
};

/** What the ADS servers share: the nodes' metadata, when each was last pushed, and the publisher. */
interface Nodes {
  readonly meta: Map<string, NodeMeta>;
  readonly lastPush: Map<string, number>;
  readonly publisher: SnapshotPublisher;
  readonly metrics: XdsMetrics | undefined;
}

/** Connects the model to the ADS servers: who a node is, what it sees, and publishing on every change. */
export function wireXds(deps: XdsDeps): XdsWiring {
  const logger = deps.logger;
  const meta = new Map<string, NodeMeta>();
  const lastPush = new Map<string, number>();
  const cache = new SnapshotCache({ logger });
  const publisher = new SnapshotPublisher({
    cache,
    translate: translateNode,
    patch: applyEnvoyFilters,
    sharing: { key: sharingKey, isLocal: isLocalResource },
    logger,
    onPublished: (ev) => {
      if (ev.changed) lastPush.set(ev.nodeId, Date.now());
      deps.onPublished?.(ev);
    },
    inputFor: nodeInputs(deps, meta),
  });

  // Built before the servers it reads; the gauges are collected at scrape time, when both exist.
  const metrics = deps.metricsRegistry
    ? new XdsMetrics(deps.metricsRegistry, () => [
        ...secure.status().map((s) => ({ ...s, server: 'secure' })),
        ...plaintext.status().map((s) => ({ ...s, server: 'plaintext' })),
      ])
    : undefined;
  const nodes: Nodes = { meta, lastPush, publisher, metrics };
  const secure = secureAds(deps, cache, nodes);
  const plaintext = plaintextAds(deps, cache, nodes);

  deps.model.onChange((m) => publisher.setModel(m));
  publisher.setModel(deps.model.current());
  return {
    cache,
    publisher,
    secure,
    plaintext,
    lastPush,
    forget(nodeId) {
      secure.disconnect(nodeId, { code: grpc.status.PERMISSION_DENIED, message: `VMESH_ERR_HOST_REVOKED: host ${nodeId} was removed` });
      publisher.removeNode(nodeId);
      meta.delete(nodeId);
      lastPush.delete(nodeId);
    },
  };
}

/** What the translation gets for a node: the host's addresses, workloads and identities, or a proxyless client's metadata. */
function nodeInputs(deps: XdsDeps, meta: ReadonlyMap<string, NodeMeta>) {
  // The config index is the same for every node of one model generation.
  let indexed: { model: MeshModel; index: ReturnType<typeof indexConfig> } | undefined;
  const configIndex = (model: MeshModel) => {
    if (indexed?.model !== model) indexed = { model, index: indexConfig(deps.config.list()) };
    return indexed.index;
  };
  return (nodeId: string, model: MeshModel) => {
    const m = meta.get(nodeId);
    if (nodeId.startsWith(PROXYLESS_PREFIX)) {
      return nodeInput(deps.mesh, model, configIndex(model), {
        id: nodeId,
        mode: 'proxyless',
        addresses: [],
        workloads: [],
        namespace: m?.namespace ?? 'default',
        labels: m?.labels ?? {},
      });
    }
    const host = deps.hosts.get(nodeId);
    if (!host || host.revoked) return undefined;
    const workloads = workloadsOf(model, nodeId);
    return nodeInput(deps.mesh, model, configIndex(model), {
      id: nodeId,
      mode: m?.mode ?? 'sidecar',
      addresses: [...host.facts.ipv4, ...host.facts.ipv6],
      workloads,
      identities: identitiesOf(model, deps.config, nodeId),
      namespace: m?.namespace ?? workloads[0]?.namespace ?? 'default',
      labels: m?.labels ?? {},
    });
  };
}

/** The mTLS ADS: a node is the host its certificate names, and sees what that host may. */
function secureAds(deps: XdsDeps, cache: SnapshotCache, { meta, publisher, metrics }: Nodes): AdsServer {
  return createAdsServer(cache, {
    logger: deps.logger,
    ...(metrics ? { metrics } : {}),
    // Without a client certificate a stream can never authenticate: refused as it opens, before it costs anything.
    admit: (call) =>
      (call as unknown as PeerCall).getAuthContext()?.sslPeerCertificate?.raw
        ? undefined
        : {
            code: grpc.status.UNAUTHENTICATED,
            message: 'VMESH_ERR_UNAUTHENTICATED: xDS on this port needs the host certificate from Join',
          },
    limits: {
      firstRequestMs: deps.firstRequestMs ?? Limits.firstRequestMs,
      pendingPerPeer: Limits.pendingStreamsPerPeer,
      streamsPerNode: Limits.streamsPerNode,
    },
    authenticate: (call, node) => {
      const peer = authenticatePeer(call as never, deps.hosts, deps.ca);
      if (!peer.ok) return err({ code: grpc.status.UNAUTHENTICATED, message: `${peer.error.code}: ${peer.error.message}` });
      if (peer.value.host !== node.id) {
        return err({
          code: grpc.status.PERMISSION_DENIED,
          message: `node id ${shown(node.id)} is not the certificate's host "${peer.value.host}"`,
        });
      }
      const md = node.metadata ?? {};
      meta.set(node.id, { mode: md.mode === 'gateway' ? 'gateway' : 'sidecar', labels: stringMap(md.labels) });
      publisher.ensureNode(node.id);
      return ok({ nodeId: node.id });
    },
  });
}

// Istio's 15010: no authentication, so it serves only what any proxyless client may see, under its own ids.
function plaintextAds(deps: XdsDeps, cache: SnapshotCache, { meta, lastPush, publisher, metrics }: Nodes): AdsServer {
  const standIns = new Map<string, XdsResource | undefined>();
  return createAdsServer(cache, {
    logger: deps.logger,
    ...(metrics ? { metrics } : {}),
    // A target or cluster that does not exist fails calls at once rather than after gRPC's 15 s does-not-exist timer.
    absent: (typeUrl, name) => {
      // Listener and cluster names are a host and a port at most: longer ones are made up, and get nothing.
      if (name.length > 300) return undefined;
      const key = `${typeUrl} ${name}`;
      if (standIns.has(key)) return standIns.get(key);
      const r = proxylessStandIn(typeUrl, name);
      const made = r && makeResource(typeUrl, r.name, r.message);
      // Names are the clients' choice: keep a bounded set of recent ones, not one per name ever asked for.
      if (standIns.size >= 1024) standIns.clear();
      standIns.set(key, made);
      return made;
    },
    limits: {
      firstRequestMs: deps.firstRequestMs ?? Limits.firstRequestMs,
      pendingPerPeer: Limits.pendingStreamsPerPeer,
      streamsPerPeer: Limits.plaintextStreamsPerPeer,
    },
    // Anyone may name a node here: keeping each one's snapshot after its streams end would grow without bound.
    onNodeGone: (id) => {
      publisher.removeNode(id);
      meta.delete(id);
      lastPush.delete(id);
    },
    authenticate: (_call, node) => {
      if (!node.id) return err({ code: grpc.status.INVALID_ARGUMENT, message: 'node id is required' });
      const id = `${PROXYLESS_PREFIX}${node.id}`;
      const md = node.metadata ?? {};
      meta.set(id, {
        mode: 'proxyless',
        labels: stringMap(md.LABELS ?? md.labels),
        namespace: String(md.NAMESPACE ?? md.namespace ?? 'default'),
      });
      publisher.ensureNode(id);
      return ok({ nodeId: id });
    },
  });
}
