import { readFile } from 'node:fs/promises';
import type * as grpc from '@grpc/grpc-js';
import { writeFileAtomic } from '../lib/atomic-file.js';
import type { Logger } from '../lib/logger.js';
import { err, ok, type Result } from '../lib/result.js';
import { AdsClient, type AdsUpdate } from './ads-client.js';
import { expandAnys } from './decode-deep.js';
import type { AnyMessage } from './protos.js';
import { CDS, EDS, LDS, NDS, RDS, WDS } from './type-urls.js';

/** What the agent applied, by type URL then resource name (decoded messages), with each type's version. */
export interface AppliedConfig {
  readonly versions: Readonly<Record<string, string>>;
  readonly resources: Readonly<Record<string, Readonly<Record<string, unknown>>>>;
  /** When it was last changed (ISO time). */
  readonly updatedAt: string;
}

/**
 * Each applied resource's Any as the controller sent it, keyed by the decoded object: the local xDS server passes
 * these bytes to the proxy workers unchanged instead of encoding the decoded form again (one decode per update
 * and process, no encode). Kept beside AppliedConfig rather than in it, so the config stays plain JSON.
 */
const received = new WeakMap<object, AnyMessage>();

/** The Any an applied resource arrived as; undefined for objects that did not come from an XdsSync. */
export function receivedAny(resource: unknown): AnyMessage | undefined {
  return resource && typeof resource === 'object' ? received.get(resource) : undefined;
}

/** The cache file: the applied config plus each resource's bytes (base64), so a restart passes bytes on too. */
interface CachedConfig extends AppliedConfig {
  readonly wire?: Readonly<Record<string, Readonly<Record<string, { readonly type_url: string; readonly value: string }>>>>;
}

/** Decides whether an update can be applied; an error NACKs it and the last good config stays. */
export type UpdateValidator = (typeUrl: string, next: ReadonlyMap<string, unknown>, all: AppliedConfig) => Result<void, string>;

export interface XdsSyncOptions {
  readonly address: string;
  readonly credentials: grpc.ChannelCredentials;
  readonly channelOptions?: grpc.ChannelOptions;
  readonly nodeId: string;
  readonly metadata?: Record<string, unknown>;
  /** Where the last good config is kept, so a restarted agent serves traffic while the controller is down. */
  readonly cacheFile?: string;
  readonly logger: Logger;
  readonly validate?: UpdateValidator;
  readonly types?: readonly string[];
  /**
   * Keep each applied resource's bytes as received (receivedAny, and the cache file), so LocalXdsServer passes them on
   * without encoding (default true). A process that only runs the config, a proxy worker, can leave them: they hold
   * about the encoded size of the config.
   */
  readonly keepReceived?: boolean;
}

const PERSIST_DELAY_MS = 100;

/**
 * The agent's side of xDS: one delta ADS stream subscribed to everything it needs, each update checked
 * before it is applied (NACK otherwise), and the applied config persisted on every change.
 */
export class XdsSync {
  private readonly client: AdsClient;
  private applied: Record<string, Map<string, unknown>> = {};
  private versions: Record<string, string> = {};
  private updatedAt = new Date(0).toISOString();
  private readonly listeners = new Set<(typeUrl: string, c: AppliedConfig) => void>();
  private persistTimer: NodeJS.Timeout | undefined;
  private persisting: Promise<void> = Promise.resolve();

  constructor(private readonly opts: XdsSyncOptions) {
    this.client = new AdsClient({
      address: opts.address,
      credentials: opts.credentials,
      ...(opts.channelOptions ? { channelOptions: opts.channelOptions } : {}),
      node: { id: opts.nodeId, cluster: 'vmesh-agent', ...(opts.metadata ? { metadata: opts.metadata } : {}) },
      mode: 'delta',
      types: opts.types ?? [CDS, EDS, LDS, RDS, NDS, WDS],
      onUpdate: (t, u) => this.onUpdate(t, u),
      logger: opts.logger,
    });
  }

  /** Loads the last good config from disk (if any); call before start() so the proxy can serve at once. */
  async loadCached(): Promise<boolean> {
    if (!this.opts.cacheFile) return false;
    let text: string;
    try {
      text = await readFile(this.opts.cacheFile, 'utf8');
    } catch {
      return false;
    }
    try {
      const c = JSON.parse(text) as CachedConfig;
      this.applied = Object.fromEntries(Object.entries(c.resources).map(([t, rs]) => [t, new Map(Object.entries(rs))]));
      for (const [t, byName] of Object.entries(c.wire ?? {})) {
        for (const [name, any] of Object.entries(byName)) {
          const r = this.applied[t]?.get(name);
          if (r && typeof r === 'object') received.set(r, { type_url: any.type_url, value: Buffer.from(any.value, 'base64') });
        }
      }
      this.versions = { ...c.versions };
      this.updatedAt = c.updatedAt;
      this.opts.logger.info({ file: this.opts.cacheFile, versions: this.versions }, 'xds: serving the last good config from disk');
      return true;
    } catch (e) {
      this.opts.logger.warn({ file: this.opts.cacheFile, err: e }, 'xds: cached config unreadable; waiting for the controller');
      return false;
    }
  }

  start(): void {
    this.client.start();
  }

  /** A new connection and stream to the controller (after the host certificate was renewed). */
  reconnect(): void {
    this.client.reconnect();
  }

  async stop(): Promise<void> {
    await this.client.stop();
    if (this.persistTimer) {
      clearTimeout(this.persistTimer);
      this.persistTimer = undefined;
      this.persisting = this.persisting.then(() => this.persist());
    }
    await this.persisting;
  }

  config(): AppliedConfig {
    const resources: Record<string, Record<string, unknown>> = {};
    for (const [t, m] of Object.entries(this.applied)) resources[t] = Object.fromEntries(m);
    return { versions: { ...this.versions }, resources, updatedAt: this.updatedAt };
  }

  onChange(cb: (typeUrl: string, c: AppliedConfig) => void): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }

  private onUpdate(typeUrl: string, u: AdsUpdate): Result<void, string> {
    const next = new Map(this.applied[typeUrl] ?? []);
    for (const name of u.removed) next.delete(name);
    // Nested typed configs are decoded too, so the applied config is plain JSON (persisted, dumped, read by the proxy).
    for (const [name, msg] of u.resources) {
      const r = expandAnys(msg);
      const any = this.opts.keepReceived === false ? undefined : u.wire.get(name);
      if (any && r && typeof r === 'object') received.set(r, any);
      next.set(name, r);
    }
    const check = this.opts.validate?.(typeUrl, next, this.config()) ?? ok(undefined);
    if (!check.ok) {
      this.opts.logger.warn(
        { typeUrl, version: u.version, error: check.error },
        'xds: update refused (NACK); keeping the last good config',
      );
      return err(check.error);
    }
    this.applied[typeUrl] = next;
    this.versions[typeUrl] = u.version;
    this.updatedAt = new Date().toISOString();
    this.schedulePersist();
    const c = this.config();
    for (const cb of this.listeners) cb(typeUrl, c);
    return ok(undefined);
  }

  private schedulePersist(): void {
    if (this.persistTimer || !this.opts.cacheFile) return;
    this.persistTimer = setTimeout(() => {
      this.persistTimer = undefined;
      this.persisting = this.persisting.then(() => this.persist());
    }, PERSIST_DELAY_MS);
  }

  private async persist(): Promise<void> {
    if (!this.opts.cacheFile) return;
    try {
      const wire: Record<string, Record<string, { type_url: string; value: string }>> = {};
      for (const [t, m] of Object.entries(this.applied)) {
        const byName: Record<string, { type_url: string; value: string }> = {};
        for (const [name, r] of m) {
          const any = receivedAny(r);
          if (any) byName[name] = { type_url: any.type_url, value: Buffer.from(any.value).toString('base64') };
        }
        wire[t] = byName;
      }
      const cached: CachedConfig = { ...this.config(), wire };
      await writeFileAtomic(this.opts.cacheFile, JSON.stringify(cached), 0o600);
    } catch (e) {
      this.opts.logger.warn({ file: this.opts.cacheFile, err: e }, 'xds: could not persist the applied config');
    }
  }
}
