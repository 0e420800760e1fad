import { status } from '@grpc/grpc-js';
import type { DeltaDiscoveryRequestMsg, DeltaDiscoveryResponseMsg } from './messages.js';
import { nackMessage } from './messages.js';
import { AdsStream, NO_RESOURCES, type SendResult } from './server-stream.js';
import type { Snapshot, XdsResource } from './snapshot.js';
import { typeLabel } from './type-urls.js';

interface TypeState {
  wildcard: boolean;
  names: Set<string>;
  /** What the client holds: name -> version (seeded from initial_resource_versions on reconnect). */
  known: Map<string, string>;
  /** Subscribed names already reported absent in removed_resources, so they are not reported again. */
  toldAbsent: Set<string>;
  /** Names unsubscribed while a wildcard is on: the client must hear whether the wildcard still covers them. */
  recheck: Set<string>;
  nonce?: string;
  outstanding: boolean;
  sentVersion?: string;
}

/** DeltaAggregatedResources: incremental xDS, per-resource versions, removals in removed_resources. */
export class DeltaStream extends AdsStream {
  private readonly state = new Map<string, TypeState>();

  handle(raw: unknown): void {
    const req = raw as DeltaDiscoveryRequestMsg;
    const typeUrl = req.type_url ?? '';
    if (!typeUrl) {
      this.fail(status.INVALID_ARGUMENT, 'DeltaDiscoveryRequest without type_url: ADS needs it on every request');
      return;
    }
    let st = this.state.get(typeUrl);
    const first = !st;
    if (!st) {
      st = { wildcard: false, names: new Set(), known: new Map(), toldAbsent: new Set(), recheck: new Set(), outstanding: false };
      this.state.set(typeUrl, st);
    }
    const nonce = req.response_nonce ?? '';
    if (nonce && st.outstanding && nonce === st.nonce) {
      st.outstanding = false;
      if (req.error_detail) this.recordNack(typeUrl, st.sentVersion ?? '', nonce, nackMessage(req.error_detail));
      else this.recordAck(typeUrl, st.sentVersion ?? '', nonce);
    } else if (nonce) {
      // In delta the nonce only pairs ACKs with responses: subscription changes apply even when it is stale.
      this.host.logger.debug({ nodeId: this.nodeId, type: typeLabel(typeUrl), nonce, current: st.nonce }, 'xds: stale nonce');
    }
    this.subscribe(st, req, first);
    this.flush();
  }

  private subscribe(st: TypeState, req: DeltaDiscoveryRequestMsg, first: boolean): void {
    const sub = req.resource_names_subscribe ?? [];
    const unsub = req.resource_names_unsubscribe ?? [];
    if (first) {
      for (const [n, v] of Object.entries(req.initial_resource_versions ?? {})) st.known.set(n, v);
      // Legacy wildcard: a first request that names nothing subscribes to "*".
      if (sub.length === 0 && unsub.length === 0) st.wildcard = true;
    }
    for (const n of sub) {
      if (n === '*') {
        st.wildcard = true;
        continue;
      }
      st.names.add(n);
      st.toldAbsent.delete(n);
      // A client may have forgotten a resource it still subscribes to: names it asks for are sent again.
      if (!first) st.known.delete(n);
    }
    for (const n of unsub) {
      if (n === '*') {
        st.wildcard = false;
        for (const k of [...st.known.keys()]) if (!st.names.has(k)) st.known.delete(k);
        continue;
      }
      st.names.delete(n);
      st.toldAbsent.delete(n);
      st.known.delete(n);
      if (st.wildcard) st.recheck.add(n);
    }
    if (first && !st.wildcard) {
      for (const k of [...st.known.keys()]) if (!st.names.has(k)) st.known.delete(k);
    }
  }

  protected requestedTypes(): Iterable<string> {
    return this.state.keys();
  }

  protected clientHas(typeUrl: string): { has(name: string): boolean } | undefined {
    return this.state.get(typeUrl)?.known;
  }

  protected outstanding(typeUrl: string): boolean {
    return this.state.get(typeUrl)?.outstanding ?? false;
  }

  protected subscribes(typeUrl: string, name: string): boolean {
    const st = this.state.get(typeUrl);
    return !!st && (st.wildcard || st.names.has(name));
  }

  protected trySend(typeUrl: string, s: Snapshot): SendResult {
    const st = this.state.get(typeUrl);
    if (!st) return 'idle';
    const all = s.resources.get(typeUrl) ?? NO_RESOURCES;
    const upserts: XdsResource[] = [];
    const removed = new Set<string>();
    for (const n of st.wildcard ? all.keys() : st.names) {
      const r = all.get(n);
      if (r && st.known.get(n) !== r.version && this.eligible(typeUrl, n, s)) upserts.push(r);
    }
    for (const n of st.known.keys()) if (!all.has(n)) removed.add(n);
    for (const n of st.names) if (!all.has(n) && !st.toldAbsent.has(n)) removed.add(n);
    for (const n of st.recheck) if (!all.has(n)) removed.add(n);
    if (upserts.length === 0 && removed.size === 0) {
      st.recheck.clear();
      return 'idle';
    }
    if (st.outstanding) return 'blocked';
    const nonce = this.nextNonce();
    const res: DeltaDiscoveryResponseMsg = {
      system_version_info: s.version,
      type_url: typeUrl,
      resources: upserts.map((r) => ({ name: r.name, version: r.version, resource: r.any })),
      removed_resources: [...removed],
      nonce,
    };
    this.call.write(res);
    for (const r of upserts) st.known.set(r.name, r.version);
    for (const n of removed) {
      st.known.delete(n);
      if (st.names.has(n)) st.toldAbsent.add(n);
    }
    st.recheck.clear();
    st.nonce = nonce;
    st.outstanding = true;
    st.sentVersion = s.version;
    this.recordSent(typeUrl, s.version, nonce, { resources: upserts.length, removed: removed.size });
    return 'sent';
  }
}
