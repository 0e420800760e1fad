import { stringify as toYaml } from 'yaml';
import type { MeshGraph } from '../../api/edges.js';
import type { CaStatusView } from '../../api/http/ca.js';
import type { ApplyResultView, ConfigDeleted } from '../../api/http/config.js';
import type { HostRemoved, HostView, TokenCreated } from '../../api/http/hosts.js';
import type { WorkloadDeregistered, WorkloadRegistered, WorkloadView } from '../../api/http/workloads.js';
import type { ProxyStatusView } from '../../api/http/xds.js';
import { configTooLarge, MAX_CONFIG_BYTES } from '../../api/resource.js';
import { parseDuration } from '../../api/resources/duration.js';
import { type HostRegistry, type TokenService, tokenView } from '../../ca/index.js';
import type { HealthTracker } from '../../discovery/health.js';
import type { ModelBuilder } from '../../discovery/model-builder.js';
import type { VmRegistry } from '../../discovery/workload-registry.js';
import { ErrorCode, vmeshError } from '../../lib/errors.js';
import type { Route } from '../../lib/http-api.js';
import { type MetricsRegistry, renderPrometheus } from '../../lib/metrics-registry.js';
import type { ConfigStore } from '../../store/config-store.js';
import { resolveKind } from '../../store/config-store.js';
import { type AdsServer, proxyConfig, proxyStatus, type SnapshotCache, type SnapshotPublisher } from '../../xds/index.js';
import { type CaDeps, caStatus, rotateRoot } from './ca-rotation.js';
import type { EdgeTracker } from './edge-tracker.js';

/**
 * What the routes use of the controller's xDS servers. The wiring (controller/xds.ts) builds them; a service
 * names only the part it needs rather than importing the wiring.
 */
export interface XdsView {
  readonly cache: SnapshotCache;
  readonly lastPush: ReadonlyMap<string, number>;
  /** A removed host: close its streams and forget its snapshot. */
  forget(nodeId: string): void;
  readonly publisher: Pick<SnapshotPublisher, 'tracked'>;
  readonly secure: Pick<AdsServer, 'status'>;
  readonly plaintext: Pick<AdsServer, 'status'>;
}

export interface ApiDeps {
  readonly tokens: TokenService;
  readonly hosts: HostRegistry;
  readonly health: HealthTracker;
  readonly config: ConfigStore;
  readonly registry: VmRegistry;
  readonly model: ModelBuilder;
  readonly xds: XdsView;
  readonly version: string;
  readonly ca: CaDeps;
  /** The controller's own metrics, served as Prometheus text on GET /metrics. */
  readonly metrics: MetricsRegistry;
  /** Edge telemetry from the agents' health reports: GET /v1/graph. */
  readonly edges: EdgeTracker;
  readonly now?: () => number;
}

function ttlSeconds(v: unknown): number {
  if (typeof v === 'number' && v > 0) return v;
  const d = parseDuration(String(v ?? '1h'));
  if (!d.ok || d.value <= 0) throw vmeshError(ErrorCode.Usage, `ttl: "${String(v)}" is not a duration such as 30m or 1h`);
  return Math.ceil(d.value / 1000);
}

function text(body: unknown, what: string): string {
  if (typeof body === 'string') return body;
  if (body !== undefined) return toYaml(body);
  throw vmeshError(ErrorCode.Usage, `${what}: the request body is empty`);
}

/** Health, metrics, join tokens and the CA. */
function systemRoutes(d: ApiDeps): Route[] {
  return [
    { method: 'GET', path: '/v1/health', anonymous: true, handler: async () => ({ body: { ok: true, version: d.version } }) },
    // Anonymous, as istiod's monitoring port: counts and gauges, no secrets; every write still needs a token.
    {
      method: 'GET',
      path: '/metrics',
      anonymous: true,
      handler: async () => ({ body: renderPrometheus(d.metrics.snapshot()), contentType: 'text/plain; version=0.0.4; charset=utf-8' }),
    },
    {
      method: 'POST',
      path: '/v1/tokens',
      handler: async ({ body }) => {
        const b = (body ?? {}) as { host?: string; ttl?: unknown };
        if (!b.host) throw vmeshError(ErrorCode.Usage, 'token create: host is required');
        const t = await d.tokens.create({ host: b.host, ttlSeconds: ttlSeconds(b.ttl) });
        return {
          status: 201,
          body: { token: t.token, id: t.id, host: b.host, expiresAt: t.expiresAt.toISOString() } satisfies TokenCreated,
        };
      },
    },
    { method: 'GET', path: '/v1/tokens', handler: async () => ({ body: d.tokens.list().map(tokenView) }) },
    { method: 'GET', path: '/v1/ca', handler: async () => ({ body: caStatus(d.ca) satisfies CaStatusView }) },
    {
      method: 'POST',
      path: '/v1/ca/rotate-root',
      handler: async ({ body }) => {
        const b = (body ?? {}) as { step?: string; force?: boolean };
        const step = b.step ?? 'stage';
        if (step !== 'stage' && step !== 'activate' && step !== 'finish') {
          throw vmeshError(ErrorCode.Usage, `ca rotate-root: step "${step}" is not stage, activate or finish`);
        }
        return { body: (await rotateRoot(d.ca, step, b.force === true)) satisfies CaStatusView };
      },
    },
  ];
}

/** Joined hosts and registered workloads. */
function inventoryRoutes(d: ApiDeps): Route[] {
  return [
    {
      method: 'GET',
      path: '/v1/hosts',
      handler: async () => ({
        body: d.hosts.list().map((h): HostView => {
          const seen = d.health.hosts().find((x) => x.name === h.name);
          return {
            ...h,
            live: !h.revoked && d.health.isHostLive(h.name),
            state: h.revoked ? 'removed' : d.health.hostState(h.name),
            ...(seen?.lastSeen ? { lastSeen: new Date(seen.lastSeen).toISOString() } : {}),
            facts: { ...h.facts, os: `${h.facts.osDistro} ${h.facts.osRelease}`.trim(), addresses: [...h.facts.ipv4, ...h.facts.ipv6] },
          };
        }),
      }),
    },
    {
      method: 'DELETE',
      path: '/v1/hosts/:name',
      handler: async ({ params }) => {
        const name = params.name ?? '';
        if (!d.hosts.get(name)) throw vmeshError(ErrorCode.NotFound, `host ${name} not found`);
        await d.hosts.remove(name);
        d.health.forgetHost(name);
        d.edges.forget(name);
        d.xds.forget(name);
        d.model.trigger();
        return { body: { removed: name } satisfies HostRemoved };
      },
    },
    {
      method: 'GET',
      path: '/v1/workloads',
      handler: async ({ query }) => ({ body: d.registry.list(query.get('namespace') ?? undefined) satisfies WorkloadView[] }),
    },
    {
      method: 'POST',
      path: '/v1/workloads',
      handler: async ({ body }) => ({ status: 201, body: (await d.registry.register(body)) satisfies WorkloadRegistered }),
    },
    {
      method: 'GET',
      path: '/v1/workloads/:namespace/:name',
      handler: async ({ params }) => {
        const w = d.registry.get(params.namespace ?? '', params.name ?? '');
        if (!w) throw vmeshError(ErrorCode.NotFound, `WorkloadEntry ${params.namespace}/${params.name} not found`);
        return { body: w satisfies WorkloadView };
      },
    },
    {
      method: 'DELETE',
      path: '/v1/workloads/:namespace/:name',
      handler: async ({ params }) => ({
        body: (await d.registry.deregister(params.namespace ?? '', params.name ?? '')) satisfies WorkloadDeregistered,
      }),
    },
  ];
}

/** Istio resources: apply, list, get, delete. */
function configRoutes(d: ApiDeps): Route[] {
  return [
    {
      method: 'POST',
      path: '/v1/config',
      // The HTTP limit sits above the config limit so that an oversized config gets the config's own words.
      maxBody: MAX_CONFIG_BYTES + 1024 * 1024,
      handler: async ({ body, query }) => {
        // An empty apply is nothing to do, as `vmesh config validate` of an empty file is.
        const yaml = body === undefined ? '' : text(body, 'config apply');
        const tooLarge = configTooLarge(Buffer.byteLength(yaml));
        if (tooLarge) throw vmeshError(ErrorCode.LimitExceeded, tooLarge);
        // `source` names the client's files in issues, as `vmesh config validate` names them.
        const source = query.get('source') || 'request body';
        return { body: (await d.config.applyText(yaml, { source, dryRun: query.get('dryRun') === 'true' })) satisfies ApplyResultView };
      },
    },
    {
      method: 'GET',
      path: '/v1/config',
      handler: async ({ query }) => ({
        body: d.config
          .list(undefined, query.get('namespace') ?? undefined)
          .map((r) => ({ apiVersion: r.apiVersion, kind: r.kind, namespace: r.metadata.namespace, name: r.metadata.name })),
      }),
    },
    {
      method: 'GET',
      path: '/v1/config/:kind',
      handler: async ({ params, query }) => {
        const kind = resolveKind(params.kind ?? '');
        const ns = query.get('namespace') ?? undefined;
        const items = d.config.list(kind, ns).map((r) => d.config.getRaw(r.kind, r.metadata.namespace, r.metadata.name));
        return { body: items };
      },
    },
    {
      method: 'GET',
      path: '/v1/config/:kind/:namespace/:name',
      handler: async ({ params }) => {
        const kind = resolveKind(params.kind ?? '');
        const raw = d.config.getRaw(kind, params.namespace ?? '', params.name ?? '');
        if (!raw) throw vmeshError(ErrorCode.NotFound, `${kind} ${params.namespace}/${params.name} not found`);
        return { body: raw };
      },
    },
    {
      method: 'DELETE',
      path: '/v1/config/:kind/:namespace/:name',
      handler: async ({ params }) => {
        const kind = resolveKind(params.kind ?? '');
        await d.config.delete(kind, params.namespace ?? '', params.name ?? '');
        return { body: { deleted: `${kind}/${params.namespace}/${params.name}` } satisfies ConfigDeleted };
      },
    },
  ];
}

/** What the mesh looks like: xDS sync state and config, the graph, services. */
function meshRoutes(d: ApiDeps): Route[] {
  return [
    {
      method: 'GET',
      path: '/v1/xds/status',
      handler: async () => ({
        body: proxyStatus({
          nodes: d.xds.publisher.tracked(),
          streams: [...d.xds.secure.status(), ...d.xds.plaintext.status()],
          cache: d.xds.cache,
          lastPush: d.xds.lastPush,
        }) satisfies ProxyStatusView[],
      }),
    },
    {
      method: 'GET',
      path: '/v1/xds/config/:node/:kind',
      handler: async ({ params }) => ({ body: proxyConfig(d.xds.cache, params.node ?? '', params.kind ?? '') }),
    },
    { method: 'GET', path: '/v1/graph', handler: async () => ({ body: d.edges.graph((d.now ?? Date.now)()) satisfies MeshGraph }) },
    {
      method: 'GET',
      path: '/v1/services',
      handler: async () => {
        const m = d.model.current();
        return { body: { version: m.version, services: [...m.services.values()] } };
      },
    },
  ];
}

/** The controller's HTTPS API (15014): one line per endpoint, each calling a library function. */
export function apiRoutes(d: ApiDeps): Route[] {
  return [...systemRoutes(d), ...inventoryRoutes(d), ...configRoutes(d), ...meshRoutes(d)];
}
