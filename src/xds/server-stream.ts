import type * as grpc from '@grpc/grpc-js';
import type { Logger } from '../lib/logger.js';
import { type Snapshot, snapshotRefs, type XdsResource } from './snapshot.js';
import type { SnapshotCache } from './snapshot-cache.js';
import type { Subscription } from './subscription.js';
import { CDS, EDS, LDS, pushOrder, RDS, typeLabel } from './type-urls.js';

export interface TypeStatus {
  /** Version of the last response sent on this stream. */
  sent?: string;
  /** Last version the client applied: from an ACK, or reported in its first request. */
  acked?: string;
  /** The last rejection, until the client ACKs the latest version sent. */
  nacked?: { version: string; error: string };
}

export interface StreamStatus {
  nodeId: string;
  mode: 'sotw' | 'delta';
  peer: string;
  connectedSince: string;
  types: Record<string, TypeStatus>;
}

export interface AdsStatusEvent {
  nodeId: string;
  typeUrl: string;
  kind: 'ack' | 'nack' | 'sent';
  version: string;
  nonce: string;
  error?: string;
}

export interface StreamHost {
  readonly cache: SnapshotCache;
  readonly logger: Logger;
  readonly onStatus?: (ev: AdsStatusEvent) => void;
  /** Bounds the bytes written to all streams and not yet handed to their sockets; unset: unbounded. */
  readonly gate?: SendGate;
  readonly metrics?: StreamMetrics;
  /**
   * What to answer for a resource a client names and its snapshot lacks (SotW), instead of leaving it out;
   * undefined: leave it out. Proxyless gRPC clients wait 15 s on a missing listener before giving up.
   */
  readonly absent?: (typeUrl: string, name: string) => XdsResource | undefined;
}

/** What streams count (xds-metrics.ts): seconds are measured from the arrival of the snapshot a response came from. */
export interface StreamMetrics {
  sent(typeUrl: string, seconds: number): void;
  acked(typeUrl: string, seconds: number): void;
  nacked(typeUrl: string): void;
}

/**
 * A global budget of response bytes in flight (written to a call, its write callback not yet run). Without it a
 * push to thousands of streams serializes every response at once and buffers them all. A send that does not fit
 * waits its turn: streams queue in order and are woken as bytes complete. One response always fits when nothing is
 * in flight, so an oversized one cannot wait forever.
 */
export class SendGate {
  private inFlight = 0;
  private readonly waiting = new Set<() => void>();

  constructor(readonly maxBytes: number) {}

  bytesInFlight(): number {
    return this.inFlight;
  }

  /** Takes `bytes` of the budget; when they do not fit, queues `wake` (once) and returns false. */
  tryAcquire(bytes: number, wake: () => void): boolean {
    if (this.inFlight > 0 && this.inFlight + bytes > this.maxBytes) {
      this.waiting.add(wake);
      return false;
    }
    this.waiting.delete(wake);
    this.inFlight += bytes;
    return true;
  }

  release(bytes: number): void {
    this.inFlight -= bytes;
    // Wake waiters in arrival order while there is room; a waiter that still does not fit re-queues at the end.
    while (this.waiting.size > 0 && this.inFlight < this.maxBytes) {
      const [next] = this.waiting;
      if (!next) break;
      this.waiting.delete(next);
      const before = this.inFlight;
      next();
      if (this.inFlight === before && this.waiting.has(next)) break;
    }
  }

  /** A closed stream's wake-up must not be called. */
  forget(wake: () => void): void {
    this.waiting.delete(wake);
  }
}

/** What one response is expected to occupy once serialized: its resources' bytes and a little framing. */
export function responseBytes(resources: Iterable<XdsResource>): number {
  let n = 64;
  for (const r of resources) n += r.any.value.length + r.name.length + 48;
  return n;
}

export type AdsCall = grpc.ServerDuplexStream<unknown, unknown>;
export type SendResult = 'sent' | 'idle' | 'blocked';

export const NO_RESOURCES: ReadonlyMap<string, XdsResource> = new Map();

/**
 * What SotW and delta streams share: the node's snapshot and its watch, nonces, push order, the
 * make-before-break rule for endpoints and routes, and the status the controller reports.
 */
export abstract class AdsStream<S extends Subscription = Subscription> {
  /** Per type the client asked for: its subscription and what the protocol keeps beside it. */
  protected readonly subscriptions = new Map<string, S>();
  nodeId: string | undefined;
  closed = false;
  protected snapshot: Snapshot | undefined;
  private unwatch: (() => void) | undefined;
  private nonceSeq = 0;
  private readonly types: Record<string, TypeStatus> = {};
  private readonly since = new Date().toISOString();
  /** call.write() returned false: nothing more is written until 'drain'. */
  private draining = false;
  /** Gate bytes this stream holds, by write; released when the write completes or the stream closes. */
  private readonly held = new Set<{ bytes: number }>();
  private readonly wake = () => this.flush();
  /** When the current snapshot arrived, and per type when the snapshot of the last response sent had (ms). */
  private snapshotAt = Date.now();
  private readonly sentFrom = new Map<string, number>();

  constructor(
    protected readonly host: StreamHost,
    protected readonly call: AdsCall,
    readonly mode: 'sotw' | 'delta',
  ) {}

  abstract handle(req: unknown): void;
  /** Sends what `typeUrl` owes the client, unless a response of that type still awaits its ACK/NACK. */
  protected abstract trySend(typeUrl: string, s: Snapshot): SendResult;
  /** Names of `typeUrl` the client holds (sent on this stream), or undefined if it does not subscribe to the type. */
  protected abstract clientHas(typeUrl: string): { has(name: string): boolean } | undefined;

  /** Types the client has asked for on this stream. */
  protected requestedTypes(): Iterable<string> {
    return this.subscriptions.keys();
  }

  /** A response of `typeUrl` awaits its ACK/NACK. */
  protected outstanding(typeUrl: string): boolean {
    return this.subscriptions.get(typeUrl)?.outstanding ?? false;
  }

  /** The client's subscription to `typeUrl` covers `name` (by name or wildcard). */
  protected subscribes(typeUrl: string, name: string): boolean {
    return this.subscriptions.get(typeUrl)?.covers(name) ?? false;
  }

  /** The client subscribes to `typeUrl` by wildcard: every name is covered. */
  protected subscribesAll(typeUrl: string): boolean {
    return this.subscriptions.get(typeUrl)?.wildcard ?? false;
  }

  attach(nodeId: string): void {
    this.nodeId = nodeId;
    this.snapshot = this.host.cache.getSnapshot(nodeId);
    this.snapshotAt = Date.now();
    this.unwatch = this.host.cache.watch(nodeId, (s) => {
      this.snapshot = s;
      this.snapshotAt = Date.now();
      this.flush();
    });
  }

  close(): void {
    this.closed = true;
    this.unwatch?.();
    this.unwatch = undefined;
    const gate = this.host.gate;
    if (gate) {
      gate.forget(this.wake);
      const tickets = [...this.held];
      this.held.clear();
      for (const t of tickets) gate.release(t.bytes);
    }
  }

  /**
   * Whether a response of about `bytes` may be written now: not while the call's buffer waits for 'drain', nor
   * while the global budget is spent (the stream is woken when it frees). The caller answers 'blocked' otherwise.
   */
  protected admit(bytes: number): boolean {
    if (this.draining) return false;
    const gate = this.host.gate;
    return !gate || gate.tryAcquire(bytes, this.wake);
  }

  /** Writes a response admitted with `admit(bytes)`, and respects the call's backpressure from then on. */
  protected write(msg: unknown, bytes: number): void {
    const gate = this.host.gate;
    const ticket = { bytes };
    if (gate) this.held.add(ticket);
    const done = () => {
      if (gate && this.held.delete(ticket)) gate.release(bytes);
    };
    const more = this.call.write(msg, done);
    if (!more && !this.closed) {
      this.draining = true;
      this.call.once('drain', () => {
        this.draining = false;
        this.flush();
      });
    }
  }

  /** Ends the stream with a gRPC status (grpc-js turns an emitted error into the call's status). */
  fail(code: grpc.status, message: string): void {
    if (this.closed) return;
    this.close();
    this.call.emit('error', { code, details: message, message });
  }

  statusView(): StreamStatus {
    const types: Record<string, TypeStatus> = {};
    for (const [t, s] of Object.entries(this.types)) types[t] = { ...s, ...(s.nacked ? { nacked: { ...s.nacked } } : {}) };
    return { nodeId: this.nodeId ?? '', mode: this.mode, peer: this.call.getPeer(), connectedSince: this.since, types };
  }

  /**
   * Pushes in CDS, EDS, LDS, RDS, others order. A type that owes an update but still awaits the ACK of
   * its previous response holds back the types after it, so the order survives slow clients. So does an
   * EDS (RDS) subscription the client has yet to widen to the clusters (listeners) it was just sent.
   */
  protected flush(): void {
    const s = this.snapshot;
    if (this.closed || !s || this.draining) return;
    const types = new Set(this.requestedTypes());
    if (types.has(CDS)) types.add(EDS);
    if (types.has(LDS)) types.add(RDS);
    for (const t of pushOrder(types)) {
      if (this.awaitingSubscription(t, s) || this.trySend(t, s) === 'blocked') break;
    }
  }

  /**
   * True while the client holds a just-sent parent (CDS/LDS response not yet ACKed) whose children it does
   * not subscribe to yet. Envoy and AdsClient subscribe to the children before they ACK the parent, so
   * waiting for that ACK at most keeps listeners from arriving before the endpoints of new clusters.
   */
  private awaitingSubscription(typeUrl: string, s: Snapshot): boolean {
    const parent = typeUrl === EDS ? CDS : typeUrl === RDS ? LDS : undefined;
    if (!parent || !this.outstanding(parent) || this.subscribesAll(typeUrl)) return false;
    const held = this.clientHas(parent);
    if (!held) return false;
    const refs = snapshotRefs(s);
    const present = s.resources.get(typeUrl);
    for (const [child, parents] of typeUrl === EDS ? refs.edsParents : refs.rdsParents) {
      if (present?.has(child) && !this.subscribes(typeUrl, child) && parents.some((p) => held.has(p))) return true;
    }
    return false;
  }

  /**
   * A ClusterLoadAssignment needed by EDS clusters goes out only once the client holds one of those clusters,
   * and a RouteConfiguration loaded by listeners only once it holds one of those listeners. Resources no
   * parent references, and clients not subscribed to the parent type, are not held back.
   */
  protected eligible(typeUrl: string, name: string, s: Snapshot): boolean {
    if (typeUrl !== EDS && typeUrl !== RDS) return true;
    const refs = snapshotRefs(s);
    const parents = (typeUrl === EDS ? refs.edsParents : refs.rdsParents).get(name);
    if (!parents) return true;
    const held = this.clientHas(typeUrl === EDS ? CDS : LDS);
    return !held || parents.some((p) => held.has(p));
  }

  protected nextNonce(): string {
    this.nonceSeq += 1;
    return String(this.nonceSeq);
  }

  private typeStatus(typeUrl: string): TypeStatus {
    let st = this.types[typeUrl];
    if (!st) {
      st = {};
      this.types[typeUrl] = st;
    }
    return st;
  }

  protected recordSent(typeUrl: string, version: string, nonce: string, detail: Record<string, unknown>): void {
    this.typeStatus(typeUrl).sent = version;
    this.host.logger.debug({ nodeId: this.nodeId, type: typeLabel(typeUrl), version, nonce, ...detail }, 'xds: sent');
    this.sentFrom.set(typeUrl, this.snapshotAt);
    this.host.metrics?.sent(typeUrl, (Date.now() - this.snapshotAt) / 1000);
    this.emit({ typeUrl, kind: 'sent', version, nonce });
  }

  /** Nothing was sent on this stream for the type because the client already holds `version`. */
  protected recordInSync(typeUrl: string, version: string): void {
    const st = this.typeStatus(typeUrl);
    if (st.sent !== undefined) return;
    st.sent = version;
    st.acked = version;
  }

  /** The client reported the version it holds when it (re)connected. */
  protected recordClientVersion(typeUrl: string, version: string): void {
    if (version) this.typeStatus(typeUrl).acked = version;
  }

  protected recordAck(typeUrl: string, version: string, nonce: string): void {
    const st = this.typeStatus(typeUrl);
    st.acked = version;
    if (st.nacked && version === st.sent) delete st.nacked;
    this.host.logger.debug({ nodeId: this.nodeId, type: typeLabel(typeUrl), version, nonce }, 'xds: ACK');
    const from = this.sentFrom.get(typeUrl);
    if (from !== undefined) {
      this.sentFrom.delete(typeUrl);
      this.host.metrics?.acked(typeUrl, (Date.now() - from) / 1000);
    }
    this.emit({ typeUrl, kind: 'ack', version, nonce });
  }

  protected recordNack(typeUrl: string, version: string, nonce: string, error: string): void {
    this.typeStatus(typeUrl).nacked = { version, error };
    this.host.logger.warn(
      { nodeId: this.nodeId, type: typeLabel(typeUrl), version, nonce, error },
      `xds: ${this.nodeId} rejected ${typeLabel(typeUrl)} version ${version}: ${error}`,
    );
    this.sentFrom.delete(typeUrl);
    this.host.metrics?.nacked(typeUrl);
    this.emit({ typeUrl, kind: 'nack', version, nonce, error });
  }

  private emit(ev: Omit<AdsStatusEvent, 'nodeId'>): void {
    try {
      this.host.onStatus?.({ nodeId: this.nodeId ?? '', ...ev });
    } catch (e) {
      this.host.logger.error({ err: e }, 'xds: onStatus callback failed');
    }
  }
}
