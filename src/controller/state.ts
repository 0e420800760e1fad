import { randomBytes } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { MeshConfig } from '../api/mesh-config.js';
import { CertificateAuthority, type HostRegistry } from '../ca/index.js';
import type { ControllerConfig } from '../config/controller.js';
import type { HealthTracker } from '../discovery/health.js';
import type { ModelBuilder } from '../discovery/model-builder.js';
import { writeFileAtomic } from '../lib/atomic-file.js';
import type { Logger } from '../lib/logger.js';
import type { ConfigStore } from '../store/config-store.js';
import { ConsulStore } from '../store/consul/consul-store.js';
import { FileStore } from '../store/file/file-store.js';
import { adminTokenFile, adoptShared, caFiles, followSharedStore, pullFiles, pushFiles } from '../store/shared-state.js';
import type { Store } from '../store/store.js';
import { checkDataDirModes, checkStateNotLost } from './data-dir.js';
import type { XdsWiring } from './services/xds-service.js';

export interface ControllerState {
  readonly store: Store;
  /** The store again when other controllers share it (Consul KV), else undefined. */
  readonly shared: Store | undefined;
  readonly ca: CertificateAuthority;
  readonly caDir: string;
  readonly admin: { readonly token: string; readonly file: string };
}

/** HostRegistry rewrites lastSeen at most every 30 s: another controller's record of a host may be that old. */
const HOST_TOUCH_SLACK_MS = 30_000;

/**
 * The store (embedded file, or Consul KV shared by several controllers), the CA and the admin token. Controllers
 * sharing a store sign for one root: a CA vmesh made lives in the store, the first controller's wins (a CA given
 * with --ca-cert/--ca-key is given to each of them alike); the admin token is shared the same way.
 */
export async function openState(cfg: ControllerConfig, mesh: MeshConfig, logger: Logger): Promise<ControllerState> {
  await mkdir(cfg.dataDir, { recursive: true, mode: 0o700 });
  checkDataDirModes(cfg.dataDir);
  if (cfg.store.kind === 'file') checkStateNotLost(cfg.dataDir, cfg.freshState);
  const store: Store =
    cfg.store.kind === 'consul' && cfg.consul
      ? await ConsulStore.open({
          url: cfg.consul.url,
          ...(cfg.consul.token ? { token: cfg.consul.token } : {}),
          ...(cfg.consul.datacenter ? { datacenter: cfg.consul.datacenter } : {}),
          prefix: cfg.store.prefix,
          waitSeconds: cfg.consul.waitSeconds,
          logger: logger.child({ component: 'store' }),
        })
      : await FileStore.open(cfg.dataDir);
  const shared = cfg.store.kind === 'consul' ? store : undefined;
  const caDir = join(cfg.dataDir, 'ca');
  const loadCa = () =>
    CertificateAuthority.loadOrCreate({
      dir: caDir,
      trustDomain: mesh.trustDomain,
      ...(cfg.caCertFile ? { certFile: cfg.caCertFile, keyFile: cfg.caKeyFile } : {}),
      logger: logger.child({ component: 'ca' }),
    });
  try {
    const ca = shared && !cfg.caCertFile ? await adoptShared(shared, caFiles(caDir), loadCa, logger) : await loadCa();
    const make = () => localAdminToken(cfg.dataDir);
    const admin = shared ? await adoptShared(shared, [adminTokenFile(cfg.dataDir)], make, logger) : await make();
    return { store, shared, ca, caDir, admin };
  } catch (e) {
    await store.close();
    throw e;
  }
}

/** The admin token is made once, like Consul's bootstrap token, and kept 0600 in the data directory. */
async function localAdminToken(dataDir: string): Promise<{ token: string; file: string }> {
  const file = join(dataDir, 'admin-token');
  try {
    const t = (await readFile(file, 'utf8')).trim();
    if (t.length >= 32) return { token: t, file };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const token = randomBytes(32).toString('base64url');
  await writeFileAtomic(file, `${token}\n`, 0o600);
  return { token, file };
}

/** An agent that fails over reports to another controller, which records the host's lastSeen in the shared store. */
export function seenElsewhere(hosts: HostRegistry): { at(host: string): number | undefined; slackMs: number } {
  return {
    at: (name) => {
      const at = hosts.get(name)?.lastSeen;
      return at ? Date.parse(at) : undefined;
    },
    slackMs: HOST_TOUCH_SLACK_MS,
  };
}

/** A rotation step taken here: the other controllers take the new CA files from the store. */
export function shareCaChange(shared: Store, caDir: string, logger: Logger): void {
  void pushFiles(shared, caFiles(caDir)).catch((e: unknown) => logger.error({ err: e }, 'could not share the CA change'));
}

const hostSummary = (hosts: HostRegistry) => JSON.stringify(hosts.list().map((h) => [h.name, h.revoked]));

/** Other controllers' writes: config reloads, model rebuilds, removed hosts cut off here too, CA rotation steps taken. */
export function followShared(d: {
  readonly cfg: ControllerConfig;
  readonly store: Store;
  readonly caDir: string;
  readonly ca: CertificateAuthority;
  readonly config: ConfigStore;
  readonly hosts: HostRegistry;
  readonly health: HealthTracker;
  readonly xds: XdsWiring;
  readonly model: ModelBuilder;
  readonly caChanged: () => void;
  readonly logger: Logger;
}): () => void {
  let hostSets = hostSummary(d.hosts);
  return followSharedStore(d.store, {
    config: d.config,
    trigger: () => d.model.trigger(),
    onHosts: () => {
      // lastSeen moves every 30 s per host: only membership and removals change the model.
      const now = hostSummary(d.hosts);
      if (now === hostSets) return;
      const before = new Set((JSON.parse(hostSets) as Array<[string, boolean]>).filter(([, r]) => r).map(([n]) => n));
      hostSets = now;
      for (const h of d.hosts.list()) {
        if (!h.revoked || before.has(h.name)) continue;
        d.health.forgetHost(h.name);
        d.xds.forget(h.name);
      }
      d.model.trigger();
    },
    onCa: async () => {
      if (d.cfg.caCertFile || !(await pullFiles(d.store, caFiles(d.caDir)))) return;
      await d.ca.reload();
      d.caChanged();
    },
    logger: d.logger.child({ component: 'store' }),
  });
}
