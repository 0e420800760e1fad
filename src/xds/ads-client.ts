import * as grpc from '@grpc/grpc-js';
import { backoffDelay, CONTROLLER_CHANNEL_OPTIONS, CONTROLLER_RETRY, sleep } from '../lib/backoff.js';
import { ErrorCode, formatError, vmeshError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { err, type Result } from '../lib/result.js';
import { type DecodedResources, decodeDelta, decodeSotw, deltaRemovals } from './client-decode.js';
import type { DeltaDiscoveryResponseMsg, DiscoveryResponseMsg } from './messages.js';
import { type AnyMessage, adsServiceDefinition, type ProtoRegistry, protos } from './protos.js';
import { toStruct } from './struct.js';
import { FULL_STATE_TYPES, typeLabel } from './type-urls.js';

export interface AdsUpdate {
  /** version_info (SotW) or system_version_info (delta) of the response. */
  readonly version: string;
  /** Added or changed resources, decoded. In SotW, LDS/CDS carry their complete set, RDS/EDS what the response held. */
  readonly resources: ReadonlyMap<string, unknown>;
  /** The same resources' Anys as they arrived (type_url and bytes), by name. */
  readonly wire: ReadonlyMap<string, AnyMessage>;
  /** Names to drop: delta removed_resources; SotW LDS/CDS/NDS names held before and absent now; otherwise none. */
  readonly removed: readonly string[];
}

export interface AdsClientOptions {
  readonly address: string;
  readonly credentials: grpc.ChannelCredentials;
  readonly node: { readonly id: string; readonly cluster: string; readonly metadata?: Record<string, unknown> };
  readonly mode: 'sotw' | 'delta';
  /** Type URLs in subscription order. */
  readonly types: readonly string[];
  /** Named subscriptions (RDS/EDS); a type absent here subscribes to everything ("*"). */
  readonly initialNames?: Readonly<Record<string, readonly string[]>>;
  /** ok -> ACK; error -> NACK with that text in error_detail, and the previous version stays. */
  onUpdate(typeUrl: string, update: AdsUpdate): Result<void, string>;
  readonly logger: Logger;
  readonly backoff?: { readonly baseMs?: number; readonly maxMs?: number };
  /** Decoder; all vmesh protos by default. A small process passes loadProtoRegistry() of the few files it needs. */
  readonly protos?: ProtoRegistry;
  readonly channelOptions?: grpc.ChannelOptions;
}

export interface AdsTypeState {
  readonly version?: string;
  readonly nonce?: string;
  readonly wildcard: boolean;
  readonly names: string[];
  /** Names of the resources accepted so far. */
  readonly resources: string[];
}

interface TypeState {
  readonly wildcard: boolean;
  names: Set<string>;
  version?: string;
  nonce?: string;
  /** Accepted resources: name -> version ('' in SotW). Survives reconnects: delta sends it as initial_resource_versions. */
  held: Map<string, string>;
  /** A request for the type went out on the current stream. */
  requested: boolean;
}

const CLIENT_FEATURES = ['xds.config.supports-resource-in-sotw'];
const INVALID_ARGUMENT = 3;

/** The agent's ADS client: one stream, SotW or delta, ACK/NACK per response, reconnect with backoff. */
export class AdsClient {
  private client: grpc.Client;
  private readonly types = new Map<string, TypeState>();
  private readonly abort = new AbortController();
  private call: grpc.ClientDuplexStream<object, object> | undefined;
  /** Consecutive attempts have failed: further failures are logged at debug level. */
  private retrying = false;
  private nodeSent = false;
  private running: Promise<void> | undefined;
  private stopping = false;

  constructor(private readonly opts: AdsClientOptions) {
    for (const t of opts.types) {
      const names = opts.initialNames?.[t];
      this.types.set(t, { wildcard: names === undefined, names: new Set(names ?? []), held: new Map(), requested: false });
    }
    this.client = this.newClient();
  }

  // Its own connection, never one shared through grpc-js's global subchannel pool: reconnect() must really
  // open a new TLS connection (with a renewed certificate), not reuse a pooled one.
  private newClient(): grpc.Client {
    return new grpc.Client(this.opts.address, this.opts.credentials, {
      'grpc.use_local_subchannel_pool': 1,
      ...CONTROLLER_CHANNEL_OPTIONS,
      ...this.opts.channelOptions,
    });
  }

  /**
   * Opens a new connection and stream (delta resumes from the versions held): after the client certificate was
   * renewed, so the server authenticates the new one.
   */
  reconnect(): void {
    if (this.stopping) return;
    const old = this.client;
    this.client = this.newClient();
    this.call?.cancel();
    old.close();
  }

  start(): void {
    this.running ??= this.loop();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.abort.abort();
    this.call?.cancel();
    await this.running;
    this.client.close();
  }

  subscribe(typeUrl: string, names: readonly string[]): void {
    const st = this.named(typeUrl);
    const added = [...new Set(names)].filter((n) => !st.names.has(n));
    if (added.length === 0) return;
    for (const n of added) st.names.add(n);
    this.sendSubscription(typeUrl, st, added, []);
  }

  unsubscribe(typeUrl: string, names: readonly string[]): void {
    const st = this.named(typeUrl);
    const removed = [...new Set(names)].filter((n) => st.names.has(n));
    if (removed.length === 0) return;
    for (const n of removed) {
      st.names.delete(n);
      st.held.delete(n);
    }
    this.sendSubscription(typeUrl, st, [], removed);
  }

  state(typeUrl: string): AdsTypeState {
    const st = this.types.get(typeUrl);
    if (!st) throw vmeshError(ErrorCode.Usage, `AdsClient: ${typeUrl} is not one of its types`);
    return { version: st.version, nonce: st.nonce, wildcard: st.wildcard, names: [...st.names], resources: [...st.held.keys()] };
  }

  private named(typeUrl: string): TypeState {
    const st = this.types.get(typeUrl);
    if (!st) throw vmeshError(ErrorCode.Usage, `AdsClient: ${typeUrl} is not one of its types`);
    if (st.wildcard) throw vmeshError(ErrorCode.Usage, `AdsClient: ${typeLabel(typeUrl)} is a wildcard subscription, it takes no names`);
    return st;
  }

  private async loop(): Promise<void> {
    let attempt = 0;
    while (!this.stopping) {
      const progressed = await this.runStream();
      if (this.stopping) break;
      if (progressed) attempt = 0;
      const delay = backoffDelay(attempt, this.opts.backoff ?? CONTROLLER_RETRY);
      attempt += 1;
      this.retrying = attempt > 1;
      // Retries come about every second while a controller is down: only the first one is worth a line.
      if (this.retrying) this.opts.logger.debug({ address: this.opts.address, delayMs: delay, attempt }, 'xds: reconnecting');
      else this.opts.logger.info({ address: this.opts.address, delayMs: delay }, 'xds: reconnecting');
      await sleep(delay, this.abort.signal);
    }
  }

  /** One stream, until it ends; true if the server answered at least once (the backoff then starts over). */
  private runStream(): Promise<boolean> {
    return new Promise((resolve) => {
      const m = adsServiceDefinition()[this.opts.mode === 'sotw' ? 'StreamAggregatedResources' : 'DeltaAggregatedResources'];
      const call = this.client.makeBidiStreamRequest<object, object>(
        m.path,
        m.requestSerialize as (v: object) => Buffer,
        m.responseDeserialize as (b: Buffer) => object,
      );
      this.call = call;
      this.nodeSent = false;
      let progressed = false;
      let finished = false;
      const finish = (s: { code: number; details: string }) => {
        if (finished) return;
        finished = true;
        if (this.call === call) this.call = undefined;
        if (!this.stopping) {
          const log = this.retrying && !progressed ? this.opts.logger.debug : this.opts.logger.warn;
          log.call(this.opts.logger, { address: this.opts.address, code: s.code, details: s.details }, 'xds: stream ended');
        }
        resolve(progressed);
      };
      call.on('data', (res: object) => {
        if (!progressed && this.retrying) this.opts.logger.info({ address: this.opts.address }, 'xds: connected again');
        progressed = true;
        this.retrying = false;
        if (finished || this.stopping) return;
        try {
          if (this.opts.mode === 'sotw') this.onSotw(res as DiscoveryResponseMsg);
          else this.onDelta(res as DeltaDiscoveryResponseMsg);
        } catch (e) {
          this.opts.logger.error({ err: e }, 'xds: response handling failed');
        }
      });
      call.on('error', (e: grpc.ServiceError) => finish({ code: e.code ?? grpc.status.UNKNOWN, details: e.details ?? e.message }));
      call.on('status', (s: grpc.StatusObject) => finish(s));
      call.on('end', () => call.end());
      for (const st of this.types.values()) {
        st.nonce = undefined;
        st.requested = false;
      }
      for (const t of this.opts.types) this.sendInitial(t, this.types.get(t) as TypeState);
    });
  }

  private write(msg: Record<string, unknown>): void {
    if (!this.call) return;
    if (!this.nodeSent) {
      const { id, cluster, metadata } = this.opts.node;
      msg.node = {
        id,
        cluster,
        user_agent_name: 'vmesh',
        client_features: CLIENT_FEATURES,
        metadata: metadata ? toStruct(metadata) : null,
      };
      this.nodeSent = true;
    }
    this.call.write(msg);
  }

  /** The first request of a type on a stream: current names and, so nothing is resent needlessly, versions held. */
  private sendInitial(typeUrl: string, st: TypeState): void {
    // A named type with no names yet stays silent: an empty first request would mean "*".
    if (!st.wildcard && st.names.size === 0) return;
    const names = st.wildcard ? [] : [...st.names];
    if (this.opts.mode === 'sotw') {
      this.write({ version_info: st.version ?? '', resource_names: names, type_url: typeUrl, response_nonce: '' });
    } else {
      const initial = Object.fromEntries([...st.held].filter(([n]) => st.wildcard || st.names.has(n)));
      this.write({ type_url: typeUrl, resource_names_subscribe: names, initial_resource_versions: initial });
    }
    st.requested = true;
  }

  private sendSubscription(typeUrl: string, st: TypeState, added: string[], removed: string[]): void {
    if (!this.call) return; // the next stream's first request carries the current names
    if (!st.requested) {
      this.sendInitial(typeUrl, st);
    } else if (this.opts.mode === 'sotw') {
      this.write({ version_info: st.version ?? '', resource_names: [...st.names], type_url: typeUrl, response_nonce: st.nonce ?? '' });
    } else {
      this.write({ type_url: typeUrl, resource_names_subscribe: added, resource_names_unsubscribe: removed });
    }
  }

  private onSotw(res: DiscoveryResponseMsg): void {
    const typeUrl = res.type_url ?? '';
    const st = this.types.get(typeUrl);
    if (!st) {
      this.opts.logger.warn({ type: typeUrl }, 'xds: response for a type not subscribed to, ignored');
      return;
    }
    st.nonce = res.nonce ?? '';
    const version = res.version_info ?? '';
    const decoded = decodeSotw(this.registry(), res, (n) => st.wildcard || st.names.has(n));
    const fullState = FULL_STATE_TYPES.has(typeUrl);
    const result = this.deliver(typeUrl, version, decoded, (d) =>
      fullState ? [...st.held.keys()].filter((n) => !d.resources.has(n)) : [],
    );
    if (result.ok && decoded.ok) {
      st.version = version;
      if (fullState) st.held = new Map(decoded.value.versions);
      else for (const n of decoded.value.resources.keys()) st.held.set(n, '');
    }
    this.write({
      version_info: st.version ?? '',
      resource_names: st.wildcard ? [] : [...st.names],
      type_url: typeUrl,
      response_nonce: st.nonce,
      ...(result.ok ? {} : { error_detail: { code: INVALID_ARGUMENT, message: result.error } }),
    });
  }

  private onDelta(res: DeltaDiscoveryResponseMsg): void {
    const typeUrl = res.type_url ?? '';
    const st = this.types.get(typeUrl);
    if (!st) {
      this.opts.logger.warn({ type: typeUrl }, 'xds: response for a type not subscribed to, ignored');
      return;
    }
    st.nonce = res.nonce ?? '';
    const version = res.system_version_info ?? '';
    const removed = deltaRemovals(res);
    const decoded = decodeDelta(this.registry(), res);
    const result = this.deliver(typeUrl, version, decoded, () => removed);
    if (result.ok && decoded.ok) {
      st.version = version;
      for (const [n, v] of decoded.value.versions) st.held.set(n, v);
      for (const n of removed) st.held.delete(n);
    }
    this.write({
      type_url: typeUrl,
      response_nonce: st.nonce,
      ...(result.ok ? {} : { error_detail: { code: INVALID_ARGUMENT, message: result.error } }),
    });
  }

  private deliver(
    typeUrl: string,
    version: string,
    decoded: Result<DecodedResources, string>,
    removedOf: (d: DecodedResources) => string[],
  ): Result<void, string> {
    let result: Result<void, string>;
    if (!decoded.ok) {
      result = decoded;
    } else {
      try {
        const d = decoded.value;
        result = this.opts.onUpdate(typeUrl, { version, resources: d.resources, wire: d.wire, removed: removedOf(d) });
      } catch (e) {
        result = err(formatError(e));
      }
    }
    if (!result.ok) this.opts.logger.warn({ type: typeLabel(typeUrl), version, error: result.error }, 'xds: update rejected (NACK)');
    else this.opts.logger.debug({ type: typeLabel(typeUrl), version }, 'xds: update applied (ACK)');
    return result;
  }

  private registry(): ProtoRegistry {
    return this.opts.protos ?? protos();
  }
}
