import { status } from '@grpc/grpc-js';
import type { DiscoveryResponse } from '../generated/envoy/service/discovery/v3/DiscoveryResponse.js';
import type { DiscoveryRequestMsg } from './messages.js';
import { nackMessage } from './messages.js';
import { type AnyMessage, protos } from './protos.js';
import { AdsStream, NO_RESOURCES, responseBytes, type SendResult } from './server-stream.js';
import type { Snapshot, XdsResource } from './snapshot.js';
import { Subscription } from './subscription.js';
import { FULL_STATE_TYPES, NAME_FIELD, RESOURCE_WRAPPER_TYPE_URL, typeLabel } from './type-urls.js';

/** Unknown names per type and response that get the host's stand-in (see wanted). */
const MAX_STAND_INS = 16;

/** A SotW subscription and what the client holds of the type. */
class SotwType extends Subscription {
  /** The subscription changed: the next flush answers even if the content did not change. */
  mustReply = false;
  /**
   * The resources of the last response: what the client holds (or rejected). For a wildcard client that got a
   * whole per-type map this is that map itself, shared with the snapshot rather than copied per stream.
   */
  lastSent: ReadonlyMap<string, XdsResource> | undefined;
  /** The per-type map the last evaluation fully answered (nothing held back): the same map again owes nothing. */
  settled: ReadonlyMap<string, XdsResource> | undefined;
}

// Types without a name field travel wrapped in a Resource, so the client learns their names.
const wrapped = new WeakMap<XdsResource, AnyMessage>();

function sotwAny(r: XdsResource): AnyMessage {
  if (NAME_FIELD[r.typeUrl]) return r.any;
  let any = wrapped.get(r);
  if (!any) {
    any = protos().encodeAny(RESOURCE_WRAPPER_TYPE_URL, { name: r.name, version: r.version, resource: r.any });
    wrapped.set(r, any);
  }
  return any;
}

/** StreamAggregatedResources: state of the world, one version and nonce per type (xds_protocol). */
export class SotwStream extends AdsStream<SotwType> {
  /** This stream's stand-ins by `type name`: made once, not again on every push (at most a few per type). */
  private readonly standIns = new Map<string, XdsResource | undefined>();

  handle(raw: unknown): void {
    const req = raw as DiscoveryRequestMsg;
    const typeUrl = req.type_url ?? '';
    if (!typeUrl) {
      this.fail(status.INVALID_ARGUMENT, 'DiscoveryRequest without type_url: ADS needs it on every request');
      return;
    }
    const nonce = req.response_nonce ?? '';
    let st = this.subscriptions.get(typeUrl);
    // A request answering an older response is superseded by the client's answer to the newer one.
    if (nonce && nonce !== st?.nonce) {
      this.host.logger.debug({ nodeId: this.nodeId, type: typeLabel(typeUrl), nonce, current: st?.nonce }, 'xds: stale nonce ignored');
      return;
    }
    const first = !st;
    if (!st) {
      st = new SotwType();
      this.subscriptions.set(typeUrl, st);
      this.recordClientVersion(typeUrl, req.version_info ?? '');
    }
    if (st.answered(nonce)) {
      if (req.error_detail) this.recordNack(typeUrl, st.sentVersion ?? '', nonce, nackMessage(req.error_detail));
      else this.recordAck(typeUrl, req.version_info ?? '', nonce);
    }
    if (st.replace(req.resource_names ?? []) || first) {
      st.mustReply = true;
      st.settled = undefined;
    }
    this.flush();
  }

  protected clientHas(typeUrl: string): { has(name: string): boolean } | undefined {
    const st = this.subscriptions.get(typeUrl);
    return st ? (st.lastSent ?? NO_RESOURCES) : undefined;
  }

  protected trySend(typeUrl: string, s: Snapshot): SendResult {
    const st = this.subscriptions.get(typeUrl);
    if (!st) return 'idle';
    const all = s.resources.get(typeUrl) ?? NO_RESOURCES;
    // Same subscription, same map, nothing held back last time: the answer is the same as last time.
    if (!st.mustReply && st.settled === all) return 'idle';
    const { want, complete, standIns } = this.wanted(typeUrl, st, s);
    let needed = st.mustReply || !sameVersions(want, st.lastSent);
    // Named resources that do not exist (yet): nothing to say until they appear.
    if (needed && want.size === 0 && !st.wildcard && !FULL_STATE_TYPES.has(typeUrl) && !st.lastSent?.size) {
      st.mustReply = false;
      needed = false;
    }
    if (!needed) {
      st.settled = complete ? all : undefined;
      return 'idle';
    }
    if (st.outstanding) return 'blocked';
    const bytes = responseBytes(want.values());
    if (!this.admit(bytes)) return 'blocked';
    const nonce = this.nextNonce();
    const res: DiscoveryResponse = {
      version_info: s.version,
      resources: [...want.values()].map(sotwAny),
      type_url: typeUrl,
      nonce,
    };
    st.sent(nonce, s.version);
    st.mustReply = false;
    // `want` holds a subset of `all` (and maybe stand-ins for absent names): of the same size and without
    // stand-ins, it is `all`, which the stream keeps instead of a copy.
    st.lastSent = want.size === all.size && !standIns ? all : want;
    st.settled = complete ? all : undefined;
    this.write(res, bytes);
    this.recordSent(typeUrl, s.version, nonce, { resources: want.size });
    return 'sent';
  }

  /**
   * Every response carries all the resources the client subscribes to (complete for LDS/CDS, as SotW needs), and
   * the host's stand-ins for named ones the snapshot lacks.
   * `complete`: no subscribed resource was held back for its parent, so the answer depends on the map alone.
   */
  private wanted(typeUrl: string, st: SotwType, s: Snapshot): { want: Map<string, XdsResource>; complete: boolean; standIns: boolean } {
    const all = s.resources.get(typeUrl) ?? NO_RESOURCES;
    const out = new Map<string, XdsResource>();
    let complete = true;
    let standIns = false;
    const add = (n: string, r: XdsResource) => {
      if (this.eligible(typeUrl, n, s)) out.set(n, r);
      else complete = false;
    };
    if (st.wildcard) {
      for (const [n, r] of all) add(n, r);
    }
    // A real client names a handful of resources; names beyond this many unknown ones get no stand-in, so a peer
    // subscribing to thousands of made-up names cannot make every push build and encode thousands of them.
    let unknownLeft = MAX_STAND_INS;
    for (const n of st.names) {
      if (out.has(n)) continue;
      const r = all.get(n);
      if (r) add(n, r);
      else if (this.host.absent && unknownLeft-- > 0) {
        const key = `${typeUrl} ${n}`;
        let standIn = this.standIns.get(key);
        if (!this.standIns.has(key)) {
          if (this.standIns.size >= 4 * MAX_STAND_INS) this.standIns.clear();
          standIn = this.host.absent(typeUrl, n);
          this.standIns.set(key, standIn);
        }
        if (standIn) out.set(n, standIn);
        standIns ||= standIn !== undefined;
      }
    }
    return { want: out, complete, standIns };
  }
}

function sameVersions(want: ReadonlyMap<string, XdsResource>, sent: ReadonlyMap<string, XdsResource> | undefined): boolean {
  if (!sent || sent.size !== want.size) return false;
  for (const [n, r] of want) if (sent.get(n)?.version !== r.version) return false;
  return true;
}
