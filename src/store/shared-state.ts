import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../lib/atomic-file.js';
import type { Logger } from '../lib/logger.js';
import type { ConfigStore } from './config-store.js';
import type { Store, StoreOp } from './store.js';

/** A file of the controller's data directory that every controller sharing the store must hold alike. */
export interface SharedFile {
  readonly key: string;
  readonly path: string;
  readonly mode: number;
}

/** The CA files of a CA vmesh made (ca/ in the data directory), rotation files included. */
export function caFiles(caDir: string): SharedFile[] {
  const f = (name: string, mode: number) => ({ key: `ca/${name}`, path: join(caDir, name), mode });
  return [
    f('ca-key.pem', 0o600),
    f('ca-cert.pem', 0o644),
    f('ca-next-key.pem', 0o600),
    f('ca-next-cert.pem', 0o644),
    f('ca-previous-cert.pem', 0o644),
  ];
}

export function adminTokenFile(dataDir: string): SharedFile {
  return { key: 'admin/token', path: join(dataDir, 'admin-token'), mode: 0o600 };
}

async function readLocal(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/**
 * Writes the store's copies over the local files (a file whose key is absent is removed). Nothing happens, and
 * false is returned, when the store does not hold `files[0]` (the one that says the set exists).
 */
export async function pullFiles(store: Pick<Store, 'get'>, files: readonly SharedFile[]): Promise<boolean> {
  if (typeof store.get(files[0]?.key ?? '') !== 'string') return false;
  for (const f of files) {
    const v = store.get(f.key);
    if (typeof v !== 'string') await rm(f.path, { force: true });
    else if ((await readLocal(f.path)) !== v) await writeFileAtomic(f.path, v, f.mode);
  }
  return true;
}

/**
 * Puts the local files into the store in one transaction (absent ones deleted). With `ifAbsent`, only when the
 * store does not hold `files[0]` yet: false when another controller put its own first.
 */
export async function pushFiles(store: Store, files: readonly SharedFile[], opts: { ifAbsent?: boolean } = {}): Promise<boolean> {
  const local = await Promise.all(files.map(async (f) => ({ f, text: await readLocal(f.path) })));
  let pushed = false;
  await store.txn((s) => {
    pushed = !(opts.ifAbsent && s.get(files[0]?.key ?? '') !== undefined);
    if (!pushed) return [];
    return local.map(
      ({ f, text }): StoreOp => (text === undefined ? { op: 'delete', key: f.key } : { op: 'put', key: f.key, value: text }),
    );
  });
  return pushed;
}

/**
 * Makes the local files the shared ones: the store's when it has them; else the local ones (made by `create` if
 * missing) are offered, and if another controller's landed first, those are taken instead. Resolves with the
 * result of the last `create` (which must load what is on disk).
 */
export async function adoptShared<T>(store: Store, files: readonly SharedFile[], create: () => Promise<T>, logger: Logger): Promise<T> {
  const what = files[0]?.key ?? '';
  if (await pullFiles(store, files)) {
    logger.info({ key: what }, 'shared store: using the copy other controllers use');
    return create();
  }
  const made = await create();
  if (await pushFiles(store, files, { ifAbsent: true })) {
    logger.info({ key: what }, 'shared store: published this controller’s copy');
    return made;
  }
  await pullFiles(store, files);
  logger.info({ key: what }, 'shared store: another controller published first; using its copy');
  return create();
}

/**
 * Follows other controllers' writes to the shared store: config is read again (its change triggers the model),
 * VIP changes rebuild the model, host changes reach `onHosts` (which decides), CA changes (a root rotation step
 * taken elsewhere) reach `onCa`.
 */
export function followSharedStore(
  store: Store,
  h: {
    readonly config: ConfigStore;
    readonly trigger: () => void;
    readonly onHosts: (names: readonly string[]) => void;
    readonly onCa: () => Promise<void>;
    readonly logger: Logger;
  },
): () => void {
  if (!store.onRemoteChange) return () => {};
  let ca: Promise<void> = Promise.resolve();
  return store.onRemoteChange((keys) => {
    const under = (p: string) => keys.filter((k) => k.startsWith(p));
    if (under('config/').length > 0) {
      h.config.resync((key, why) =>
        h.logger.error({ key, why }, 'shared store: a resource another controller applied does not validate here'),
      );
    }
    const hosts = under('hosts/').map((k) => k.slice('hosts/'.length));
    if (hosts.length > 0) h.onHosts(hosts);
    if (under('vips/').length > 0) h.trigger();
    if (under('ca/').length > 0) {
      ca = ca
        .then(h.onCa)
        .catch((e: unknown) => h.logger.error({ err: e }, 'shared store: could not take the CA another controller changed'));
    }
  });
}
