// One proxy worker process (started by the agent through node:cluster, as the unprivileged proxy user):
// listeners are shared with the other workers, config and secrets come from the agent's local xDS/SDS socket.
import * as grpc from '@grpc/grpc-js';
import { loadProxyWorkerConfig } from '../config/proxy-worker.js';
import { createAccessLogger, createLogger } from '../lib/logger.js';
import { tuneMalloc } from '../lib/native.js';
import { err, ok, type Result } from '../lib/result.js';
import { routesReady } from '../proxy/config-ready.js';
import { MeshProxy } from '../proxy/proxy.js';
import type { ProxyConfig } from '../proxy/proxy-config.js';
import { FileSecretStore } from '../proxy/secret/file-store.js';
import { type AppliedConfig, CDS, EDS, LDS, RDS, SDS, type SecretInput, secretFromMessage, XdsSync } from '../xds/index.js';
import type { WorkerMessage } from './proxy-workers.js';

const cfg = loadProxyWorkerConfig(process.argv.slice(2));
const logger = createLogger({ level: cfg.logLevel as 'info' }).child({ component: 'proxy', worker: cfg.index });
const secrets = new FileSecretStore();
const proxy = new MeshProxy({ secrets, logger, accessLog: createAccessLogger(), environment: cfg.environment });
const send = (m: WorkerMessage) => process.send?.(m);
const tuned = tuneMalloc();
if (!tuned.ok) logger.warn({ reason: tuned.error.message }, 'malloc tuning not applied');

let compiled: ProxyConfig | undefined;
const validate = (typeUrl: string, next: ReadonlyMap<string, unknown>, all: AppliedConfig): Result<void, string> => {
  if (typeUrl === SDS) return ok(undefined);
  const r = MeshProxy.prepare({ ...all, resources: { ...all.resources, [typeUrl]: Object.fromEntries(next) } }, cfg.count, cfg.index);
  if (!r.ok) return err(r.error);
  compiled = r.value;
  return ok(undefined);
};
const sync = new XdsSync({
  address: `unix:${cfg.socketPath}`,
  credentials: grpc.credentials.createInsecure(),
  nodeId: `proxy-${cfg.index}`,
  types: [SDS, CDS, EDS, LDS, RDS],
  validate,
  // The worker only runs its config; the received bytes are the agent's to keep and pass on.
  keepReceived: false,
  logger: logger.child({ component: 'local-xds' }),
});

let timer: NodeJS.Timeout | undefined;
sync.onChange((typeUrl, c) => {
  if (typeUrl === SDS) {
    secrets.replaceAll(Object.values(c.resources[SDS] ?? {}).flatMap((m) => secretFromMessage(m) ?? ([] as SecretInput[])));
    return;
  }
  // Types arrive one response at a time; apply once the burst is in.
  if (timer) return;
  timer = setTimeout(() => {
    timer = undefined;
    const next = compiled;
    // Not before every route table its listeners name has arrived: the RDS response that completes it applies it.
    if (!next || !routesReady(next)) return;
    void proxy.apply(next).then((r) => {
      if (!r.ok) logger.warn({ error: r.error }, 'config not applied');
      send({ kind: 'listening', listeners: proxy.listening(), version: next.version });
    });
  }, 20);
});
sync.start();

let stopping = false;
const stop = async (drainMs: number) => {
  if (stopping) return;
  stopping = true;
  if (timer) clearTimeout(timer);
  await sync.stop();
  await proxy.stop(drainMs);
  process.exit(0);
};
process.on('message', (m: { kind?: string; drainMs?: number; id?: number }) => {
  if (m?.kind === 'drain') void stop(m.drainMs ?? 5000);
  else if (m?.kind === 'metrics') send({ kind: 'metrics', id: m.id ?? 0, snapshot: proxy.metrics() });
  else if (m?.kind === 'ping') send({ kind: 'pong' });
});
// The agent is gone: without it nothing renews secrets or config, and capture comes off with it.
process.on('disconnect', () => void stop(0));
send({ kind: 'started', pid: process.pid });
