// Hand-made Envoy resources and a loopback ADS harness shared by the xds tests.
import { Writable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import { createLogger, type Logger } from '../../../src/lib/logger.js';
import { ok } from '../../../src/lib/result.js';
import { AdsClient, type AdsClientOptions, type AdsUpdate } from '../../../src/xds/ads-client.js';
import { type AdsNode, type AdsServer, type AdsServerOptions, type AdsStatusEvent, createAdsServer } from '../../../src/xds/ads-server.js';
import { adsServiceDefinition, decodeAny, encodeAny } from '../../../src/xds/protos.js';
import { makeSnapshot, type Snapshot } from '../../../src/xds/snapshot.js';
import { SnapshotCache } from '../../../src/xds/snapshot-cache.js';
import { CDS, EDS, LDS, RDS, TypedConfigUrl } from '../../../src/xds/type-urls.js';

export function cluster(name: string): object {
  return {
    name,
    type: 'EDS',
    eds_cluster_config: { eds_config: { ads: {}, resource_api_version: 'V3' } },
    connect_timeout: { seconds: 1 },
    lb_policy: 'ROUND_ROBIN',
  };
}

export function endpoints(name: string, ips: readonly string[], port = 9080): object {
  return {
    cluster_name: name,
    endpoints: [
      {
        locality: { region: 'lab', zone: 'z1' },
        load_balancing_weight: { value: 1 },
        lb_endpoints: ips.map((ip) => ({ endpoint: { address: { socket_address: { address: ip, port_value: port } } } })),
      },
    ],
  };
}

export function listener(name: string, routeName: string, port: number): object {
  const hcm = encodeAny(TypedConfigUrl.httpConnectionManager, {
    stat_prefix: name,
    rds: { route_config_name: routeName, config_source: { ads: {}, resource_api_version: 'V3' } },
    http_filters: [{ name: 'envoy.filters.http.router', typed_config: encodeAny(TypedConfigUrl.router, {}) }],
  });
  return {
    name,
    address: { socket_address: { address: '0.0.0.0', port_value: port } },
    filter_chains: [{ filters: [{ name: 'envoy.filters.network.http_connection_manager', typed_config: hcm }] }],
  };
}

export function route(name: string, clusterName: string): object {
  return {
    name,
    virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: clusterName } }] }],
  };
}

export interface World {
  clusters?: Record<string, readonly string[]>;
  listeners?: Record<string, { route: string; port: number }>;
  routes?: Record<string, string>;
}

/** A consistent snapshot: every cluster with its endpoints, every listener with its route. */
export function world(version: string, w: World): Snapshot {
  const clusters = Object.entries(w.clusters ?? {});
  return makeSnapshot(version, {
    [CDS]: clusters.map(([n]) => ({ name: n, message: cluster(n) })),
    [EDS]: clusters.map(([n, ips]) => ({ name: n, message: endpoints(n, ips) })),
    [LDS]: Object.entries(w.listeners ?? {}).map(([n, l]) => ({ name: n, message: listener(n, l.route, l.port) })),
    [RDS]: Object.entries(w.routes ?? {}).map(([n, c]) => ({ name: n, message: route(n, c) })),
  });
}

export async function waitFor(what: string, pred: () => boolean, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A logger whose JSON lines land in `lines`. */
export function memoryLogger(level: 'debug' | 'info' | 'warn' = 'warn'): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _enc, cb) {
      lines.push(...String(chunk).split('\n').filter(Boolean));
      cb();
    },
  });
  return { logger: createLogger({ level, destination, component: 'xds-test' }), lines };
}

export interface Harness {
  readonly cache: SnapshotCache;
  readonly ads: AdsServer;
  readonly port: number;
  readonly events: AdsStatusEvent[];
  /** Every node an authenticate call saw. */
  readonly nodes: AdsNode[];
  readonly lines: string[];
  close(): Promise<void>;
}

export async function startAds(opts: Pick<AdsServerOptions, 'absent' | 'onNodeGone'> = {}): Promise<Harness> {
  const cache = new SnapshotCache();
  const events: AdsStatusEvent[] = [];
  const nodes: AdsNode[] = [];
  const { logger, lines } = memoryLogger();
  const ads = createAdsServer(cache, {
    ...opts,
    logger,
    onStatus: (ev) => events.push(ev),
    authenticate: (_call, node) => {
      nodes.push(node);
      if (node.id.startsWith('evil'))
        return { ok: false, error: { code: grpc.status.PERMISSION_DENIED, message: `node ${node.id} refused` } };
      return ok({ nodeId: node.id });
    },
  });
  const server = new grpc.Server();
  server.addService(ads.service, ads.implementation);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
  );
  return {
    cache,
    ads,
    port,
    events,
    nodes,
    lines,
    close: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())).then(() => server.forceShutdown()),
  };
}

export interface RecordedUpdate {
  typeUrl: string;
  version: string;
  names: string[];
  removed: string[];
  resources: ReadonlyMap<string, unknown>;
}

/** An AdsClient that records every update and, like Envoy, subscribes to EDS/RDS names as CDS/LDS reveal them. */
export function recordingClient(
  port: number,
  mode: 'sotw' | 'delta',
  extra: Partial<AdsClientOptions> & { reject?: (t: string, u: AdsUpdate) => string | undefined; follow?: boolean } = {},
): { client: AdsClient; updates: RecordedUpdate[] } {
  const updates: RecordedUpdate[] = [];
  const { logger } = memoryLogger();
  const follow = extra.follow ?? true;
  const client: AdsClient = new AdsClient({
    address: `127.0.0.1:${port}`,
    credentials: grpc.credentials.createInsecure(),
    node: { id: 'node-1', cluster: 'lab', metadata: { hostname: 'h1', labels: { app: 'reviews' } } },
    mode,
    types: [CDS, EDS, LDS, RDS],
    initialNames: { [EDS]: [], [RDS]: [] },
    logger,
    backoff: { baseMs: 20, maxMs: 100 },
    ...extra,
    onUpdate: (typeUrl, u) => {
      const rejection = extra.reject?.(typeUrl, u);
      if (rejection) return { ok: false, error: rejection };
      updates.push({
        typeUrl,
        version: u.version,
        names: [...u.resources.keys()].sort(),
        removed: [...u.removed].sort(),
        resources: u.resources,
      });
      if (follow && typeUrl === CDS) client.subscribe(EDS, [...u.resources.keys()]);
      if (follow && typeUrl === LDS) client.subscribe(RDS, routeNames(u.resources));
      return ok(undefined);
    },
  });
  return { client, updates };
}

function routeNames(listeners: ReadonlyMap<string, unknown>): string[] {
  const names: string[] = [];
  for (const l of listeners.values()) {
    for (const chain of (l as { filter_chains: Array<{ filters: Array<{ typed_config: { type_url: string; value: Buffer } }> }> })
      .filter_chains) {
      for (const f of chain.filters) {
        const hcm = decodeHcm(f.typed_config);
        if (hcm) names.push(hcm);
      }
    }
  }
  return names;
}

function decodeHcm(any: { type_url: string; value: Buffer }): string | undefined {
  if (any.type_url !== TypedConfigUrl.httpConnectionManager) return undefined;
  return decodeAny<{ rds?: { route_config_name?: string } | null }>(any).rds?.route_config_name || undefined;
}

/** A bare ADS stream for sending hand-written requests (stale nonces, reconnects with initial versions). */
export interface RawStream {
  send(msg: object): void;
  next(timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Resolves if nothing arrives within `ms`, rejects otherwise. */
  quiet(ms: number): Promise<void>;
  readonly status: Promise<grpc.StatusObject>;
  close(): void;
}

export function rawStream(port: number, mode: 'sotw' | 'delta'): RawStream {
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const m = adsServiceDefinition()[mode === 'sotw' ? 'StreamAggregatedResources' : 'DeltaAggregatedResources'];
  const call = client.makeBidiStreamRequest<object, Record<string, unknown>>(
    m.path,
    m.requestSerialize as (v: object) => Buffer,
    m.responseDeserialize as (b: Buffer) => Record<string, unknown>,
  );
  const queue: Record<string, unknown>[] = [];
  call.on('data', (d: Record<string, unknown>) => queue.push(d));
  call.on('error', () => {});
  const status = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
  return {
    send: (msg) => call.write(msg),
    async next(timeoutMs = 3000) {
      await waitFor('a response', () => queue.length > 0, timeoutMs);
      return queue.shift() as Record<string, unknown>;
    },
    async quiet(ms) {
      await delay(ms);
      if (queue.length > 0) throw new Error(`unexpected response: ${JSON.stringify(queue[0]).slice(0, 200)}`);
    },
    status,
    close() {
      call.cancel();
      client.close();
    },
  };
}
