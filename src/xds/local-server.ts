import { chmod, chown, rm } from 'node:fs/promises';
import * as grpc from '@grpc/grpc-js';
import { ErrorCode, vmeshError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { ok } from '../lib/result.js';
import { createAdsServer } from './ads-server.js';
import { type AppliedConfig, receivedAny } from './agent-sync.js';
import { sdsServiceDefinition } from './protos.js';
import { type SecretInput, secretMessage } from './secrets.js';
import { makeResource, snapshotOf, wireResource, type XdsResource } from './snapshot.js';
import { SnapshotCache } from './snapshot-cache.js';
import { NDS, SDS, WDS } from './type-urls.js';

export interface LocalXdsServerOptions {
  /** A unix socket path; its file mode is the access control (0660, group `group`). */
  readonly socketPath: string;
  readonly group?: number;
  readonly logger: Logger;
  /** How long a config may name missing resources before that is warned about (10 s; tests shorten it). */
  readonly incompleteWarnMs?: number;
}

/** Every local proxy process sees the same snapshot. */
const LOCAL_NODE = 'local-proxy';
// Types of one controller update arrive within milliseconds of each other; seconds of waiting is a real problem.
const INCOMPLETE_WARN_MS = 10_000;

/**
 * The agent's xDS and SDS server for its own proxy processes, on a unix socket (as Istio's agent serves
 * Envoy): the config the controller sent, passed through, plus the secrets the agent holds. Private keys
 * cross only this socket, never the network. Serves ADS and Envoy's SecretDiscoveryService.
 */
export class LocalXdsServer {
  private readonly cache: SnapshotCache;
  /** Since the first refused update: the problems of the latest, and the timer that warns if they persist. */
  private incomplete: { problems: readonly string[]; timer: NodeJS.Timeout } | undefined;
  private readonly server = new grpc.Server();
  // Applied resources are kept as the same objects between updates: encode each once.
  private readonly encoded = new WeakMap<object, XdsResource>();
  private readonly secretEncoded = new Map<string, { input: SecretInput; resource: XdsResource }>();
  private generation = 0;

  constructor(private readonly opts: LocalXdsServerOptions) {
    this.cache = new SnapshotCache({ logger: opts.logger });
    const ads = createAdsServer(this.cache, {
      authenticate: () => ok({ nodeId: LOCAL_NODE }),
      logger: opts.logger,
    });
    this.server.addService(ads.service, ads.implementation);
    const impl = ads.implementation as Record<string, grpc.UntypedHandleCall>;
    this.server.addService(sdsServiceDefinition(), {
      StreamSecrets: impl.StreamAggregatedResources as grpc.UntypedHandleCall,
      DeltaSecrets: impl.DeltaAggregatedResources as grpc.UntypedHandleCall,
    });
  }

  async start(): Promise<void> {
    await rm(this.opts.socketPath, { force: true });
    await new Promise<void>((resolve, reject) =>
      this.server.bindAsync(`unix:${this.opts.socketPath}`, grpc.ServerCredentials.createInsecure(), (e) =>
        e ? reject(vmeshError(ErrorCode.Unavailable, `local xDS socket ${this.opts.socketPath}: ${e.message}`)) : resolve(),
      ),
    );
    await chmod(this.opts.socketPath, 0o660);
    if (this.opts.group !== undefined && process.getuid?.() === 0) await chown(this.opts.socketPath, 0, this.opts.group);
  }

  /** Publishes the applied config and the secrets as one snapshot; an inconsistent one keeps the previous. */
  update(applied: AppliedConfig, secrets: readonly SecretInput[]): void {
    const all: XdsResource[] = [];
    for (const [typeUrl, byName] of Object.entries(applied.resources)) {
      // The agent's own types: the DNS proxy's names and the workload registry are not the proxy's.
      if (typeUrl === NDS || typeUrl === WDS) continue;
      for (const [name, msg] of Object.entries(byName)) {
        let r = this.encoded.get(msg as object);
        if (!r) {
          // The controller's bytes as they came; encoding again is left for configs from elsewhere (tests, old caches).
          const wire = receivedAny(msg);
          try {
            r = wire ? wireResource(typeUrl, name, wire) : makeResource(typeUrl, name, msg as object);
          } catch (e) {
            this.opts.logger.warn({ typeUrl, name, err: (e as Error).message }, 'local xds: resource not re-encodable; left out');
            continue;
          }
          this.encoded.set(msg as object, r);
        }
        all.push(r);
      }
    }
    const keep = new Map<string, { input: SecretInput; resource: XdsResource }>();
    for (const s of secrets) {
      const old = this.secretEncoded.get(s.name);
      const same = old && JSON.stringify(old.input) === JSON.stringify(s);
      const entry = same && old ? old : { input: s, resource: makeResourceOf(s) };
      keep.set(s.name, entry);
      all.push(entry.resource);
    }
    this.secretEncoded.clear();
    for (const [k, v] of keep) this.secretEncoded.set(k, v);
    this.generation += 1;
    const set = this.cache.setSnapshot(LOCAL_NODE, snapshotOf(`local-${this.generation}`, all));
    this.noteIncomplete(set.ok ? undefined : set.error);
  }

  /**
   * The controller's types arrive one response at a time (a new cluster before its endpoints), so a config that
   * names what has not arrived yet is normal for a moment: the workers keep the last complete one meanwhile. Only
   * a config still incomplete after incompleteWarnMs is a problem worth a warning.
   */
  private noteIncomplete(problems: readonly string[] | undefined): void {
    if (!problems) {
      if (this.incomplete) clearTimeout(this.incomplete.timer);
      this.incomplete = undefined;
      return;
    }
    this.opts.logger.debug({ problems }, 'local xds: waiting for the rest of an update before passing it to the workers');
    if (this.incomplete) {
      this.incomplete.problems = problems;
      return;
    }
    const since = Date.now();
    const state = { problems, timer: setTimeout(() => this.warnIncomplete(since), this.opts.incompleteWarnMs ?? INCOMPLETE_WARN_MS) };
    state.timer.unref();
    this.incomplete = state;
  }

  private warnIncomplete(since: number): void {
    if (!this.incomplete) return;
    this.opts.logger.warn(
      { problems: this.incomplete.problems, sinceMs: Date.now() - since },
      'local xds: the config names resources that never arrived; the workers keep the last complete config',
    );
  }

  async stop(): Promise<void> {
    if (this.incomplete) clearTimeout(this.incomplete.timer);
    this.server.forceShutdown();
    await rm(this.opts.socketPath, { force: true });
  }
}

function makeResourceOf(s: SecretInput): XdsResource {
  const m = secretMessage(s);
  return makeResource(SDS, m.name, m.message);
}
