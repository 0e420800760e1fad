import { status } from '@grpc/grpc-js';
import type { DeltaDiscoveryResponse } from '../generated/envoy/service/discovery/v3/DeltaDiscoveryResponse.js';
import type { DeltaDiscoveryRequestMsg } from './messages.js';
import { nackMessage } from './messages.js';
import { AdsStream, NO_RESOURCES, responseBytes, type SendResult } from './server-stream.js';
import { type Snapshot, typeDiff, type XdsResource } from './snapshot.js';
import { Subscription } from './subscription.js';
import { typeLabel } from './type-urls.js';

type TypeMap = ReadonlyMap<string, XdsResource>;

/**
 * What a client holds of one type, name -> version. A wildcard client usually holds exactly one snapshot's map:
 * that map is kept by reference (`base`) and only the names where the client differs are stored (`over`,
 * undefined = does not hold it), so thousands of streams do not each copy a thousand entries.
 */
class KnownVersions {
  private base: TypeMap | undefined;
  private readonly over = new Map<string, string | undefined>();

  get(n: string): string | undefined {
    return this.over.has(n) ? this.over.get(n) : this.base?.get(n)?.version;
  }

  has(n: string): boolean {
    return this.get(n) !== undefined;
  }

  set(n: string, v: string): void {
    if (this.base?.get(n)?.version === v) this.over.delete(n);
    else this.over.set(n, v);
  }

  delete(n: string): void {
    if (this.base?.has(n)) this.over.set(n, undefined);
    else this.over.delete(n);
  }

  *keys(): Iterable<string> {
    for (const n of this.base?.keys() ?? []) if (!this.over.has(n) || this.over.get(n) !== undefined) yield n;
    for (const [n, v] of this.over) if (v !== undefined && !this.base?.has(n)) yield n;
  }

  /** The names whose version may differ from `base` (candidates when comparing against another map). */
  overridden(): Iterable<string> {
    return this.over.keys();
  }

  baseMap(): TypeMap | undefined {
    return this.base;
  }

  /** Re-expresses the same content over `next`; `touched` holds every name where content and `next` may differ. */
  rebase(next: TypeMap, touched: Iterable<string>): void {
    if (next === this.base) return;
    const values = new Map<string, string | undefined>();
    for (const n of touched) values.set(n, this.get(n));
    this.base = next;
    this.over.clear();
    for (const [n, v] of values) if (next.get(n)?.version !== v) this.over.set(n, v);
  }

  /** Holds nothing: no base and no names of its own. */
  empty(): boolean {
    return this.base === undefined && this.over.size === 0;
  }

  /** Holds exactly `map` (a client sent every resource of it). */
  adopt(map: TypeMap): void {
    this.base = map;
    this.over.clear();
  }

  /** Keeps only `names` and drops the base (a client that names what it wants). */
  retain(names: ReadonlySet<string>): void {
    const kept = [...this.keys()].filter((n) => names.has(n)).map((n) => [n, this.get(n)] as const);
    this.base = undefined;
    this.over.clear();
    for (const [n, v] of kept) this.over.set(n, v);
  }
}

/** The client's state matched `map` apart from `held` (EDS/RDS held back for their parents): nothing else owed. */
interface Settled {
  readonly map: TypeMap;
  readonly held: ReadonlySet<string>;
}

/** A delta subscription and what the client holds of the type. */
class DeltaType extends Subscription {
  /** What the client holds: name -> version (seeded from initial_resource_versions on reconnect). */
  readonly known = new KnownVersions();
  /** Subscribed names already reported absent in removed_resources, so they are not reported again. */
  readonly toldAbsent = new Set<string>();
  /** Names unsubscribed while a wildcard is on: the client must hear whether the wildcard still covers them. */
  readonly recheck = new Set<string>();
  /** Unset by any subscription change: then the next evaluation scans every subscribed name. */
  settled: Settled | undefined;
}

/** DeltaAggregatedResources: incremental xDS, per-resource versions, removals in removed_resources. */
export class DeltaStream extends AdsStream<DeltaType> {
  handle(raw: unknown): void {
    const req = raw as DeltaDiscoveryRequestMsg;
    const typeUrl = req.type_url ?? '';
    if (!typeUrl) {
      this.fail(status.INVALID_ARGUMENT, 'DeltaDiscoveryRequest without type_url: ADS needs it on every request');
      return;
    }
    let st = this.subscriptions.get(typeUrl);
    const first = !st;
    if (!st) {
      st = new DeltaType();
      this.subscriptions.set(typeUrl, st);
    }
    const nonce = req.response_nonce ?? '';
    if (st.answered(nonce)) {
      if (req.error_detail) this.recordNack(typeUrl, st.sentVersion ?? '', nonce, nackMessage(req.error_detail));
      else this.recordAck(typeUrl, st.sentVersion ?? '', nonce);
    } else if (nonce) {
      // In delta the nonce only pairs ACKs with responses: subscription changes apply even when it is stale.
      this.host.logger.debug({ nodeId: this.nodeId, type: typeLabel(typeUrl), nonce, current: st.nonce }, 'xds: stale nonce');
    }
    this.subscribe(st, req, first);
    this.flush();
  }

  private subscribe(st: DeltaType, req: DeltaDiscoveryRequestMsg, first: boolean): void {
    const sub = req.resource_names_subscribe ?? [];
    const unsub = req.resource_names_unsubscribe ?? [];
    if (!first && sub.length === 0 && unsub.length === 0) return;
    st.settled = undefined;
    if (first) {
      for (const [n, v] of Object.entries(req.initial_resource_versions ?? {})) st.known.set(n, v);
      // Legacy wildcard: a first request that names nothing subscribes to "*".
      if (sub.length === 0 && unsub.length === 0) st.legacyWildcard();
    }
    for (const n of sub) {
      st.subscribe(n);
      if (n === '*') continue;
      st.toldAbsent.delete(n);
      // A client may have forgotten a resource it still subscribes to: names it asks for are sent again.
      if (!first) st.known.delete(n);
    }
    for (const n of unsub) {
      st.unsubscribe(n);
      if (n === '*') {
        st.known.retain(st.names);
        continue;
      }
      st.toldAbsent.delete(n);
      st.known.delete(n);
      if (st.wildcard) st.recheck.add(n);
    }
    if (first && !st.wildcard) st.known.retain(st.names);
  }

  protected clientHas(typeUrl: string): { has(name: string): boolean } | undefined {
    return this.subscriptions.get(typeUrl)?.known;
  }

  /**
   * Computes what the client is owed. With a settled state only the names that can differ are looked at: those
   * held back before and those that changed between the settled map and this one (one diff per pair of maps,
   * shared by every stream). In the common case, the same map and nothing held back, that is nothing at all.
   */
  protected trySend(typeUrl: string, s: Snapshot): SendResult {
    const st = this.subscriptions.get(typeUrl);
    if (!st) return 'idle';
    const all = s.resources.get(typeUrl) ?? NO_RESOURCES;
    const settled = st.settled;
    if (settled && settled.map === all && settled.held.size === 0) return 'idle';
    const upserts: XdsResource[] = [];
    const removed = new Set<string>();
    const held = new Set<string>();
    const consider = (n: string) => {
      const r = all.get(n);
      if (r) {
        if ((st.wildcard || st.names.has(n)) && st.known.get(n) !== r.version) {
          if (this.eligible(typeUrl, n, s)) upserts.push(r);
          else held.add(n);
        }
      } else if (st.known.has(n) || (st.names.has(n) && !st.toldAbsent.has(n))) {
        removed.add(n);
      }
    };
    let diffNames: readonly string[] = [];
    if (settled) {
      const d = typeDiff(settled.map, all);
      diffNames = d.changed.length === 0 ? d.removed : d.removed.length === 0 ? d.changed : [...d.changed, ...d.removed];
      for (const n of new Set([...settled.held, ...diffNames])) consider(n);
    } else {
      for (const n of st.wildcard ? all.keys() : st.names) {
        const r = all.get(n);
        if (!r || st.known.get(n) === r.version) continue;
        if (this.eligible(typeUrl, n, s)) upserts.push(r);
        else held.add(n);
      }
      for (const n of st.known.keys()) if (!all.has(n)) removed.add(n);
      for (const n of st.names) if (!all.has(n) && !st.toldAbsent.has(n)) removed.add(n);
      for (const n of st.recheck) if (!all.has(n)) removed.add(n);
    }
    if (upserts.length === 0 && removed.size === 0) {
      st.recheck.clear();
      st.settled = { map: all, held };
      // A client that resumed with initial_resource_versions matching the snapshot (a restarted controller
      // builds the same one) is owed nothing, and holds this version: without this it had no status at all.
      if (held.size === 0 && !st.outstanding) this.recordInSync(typeUrl, s.version);
      return 'idle';
    }
    if (st.outstanding) return 'blocked';
    const bytes = responseBytes(upserts);
    if (!this.admit(bytes)) return 'blocked';
    const nonce = this.nextNonce();
    const res: DeltaDiscoveryResponse = {
      system_version_info: s.version,
      type_url: typeUrl,
      resources: upserts.map((r) => ({ name: r.name, version: r.version, resource: r.any })),
      removed_resources: [...removed],
      nonce,
    };
    this.remember(st, all, upserts, removed, diffNames);
    st.recheck.clear();
    st.settled = { map: all, held };
    st.sent(nonce, s.version);
    this.write(res, bytes);
    this.recordSent(typeUrl, s.version, nonce, { resources: upserts.length, removed: removed.size });
    return 'sent';
  }

  /** Applies a response to what the client holds; a wildcard client's holdings are re-expressed over `all`. */
  private remember(st: DeltaType, all: TypeMap, upserts: readonly XdsResource[], removed: ReadonlySet<string>, diff: readonly string[]) {
    // An initial sync of a wildcard client: it now holds `all` itself, with nothing to note name by name.
    if (st.wildcard && removed.size === 0 && upserts.length === all.size && st.known.empty()) return st.known.adopt(all);
    for (const r of upserts) st.known.set(r.name, r.version);
    for (const n of removed) {
      st.known.delete(n);
      if (st.names.has(n)) st.toldAbsent.add(n);
    }
    if (!st.wildcard) return;
    const base = st.known.baseMap();
    // Where the content can differ from `all`: overridden names, and names that differ between the base and `all`.
    let touched: Iterable<string>;
    if (!base) touched = new Set([...st.known.keys(), ...all.keys()]);
    else if (base === all) return;
    else {
      const d = st.settled?.map === base ? diff : [...typeDiff(base, all).changed, ...typeDiff(base, all).removed];
      touched = new Set([...st.known.overridden(), ...d]);
    }
    st.known.rebase(all, touched);
  }
}
