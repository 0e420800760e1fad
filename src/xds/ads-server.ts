import * as grpc from '@grpc/grpc-js';
import { formatError } from '../lib/errors.js';
import { Limits } from '../lib/limits.js';
import type { Logger } from '../lib/logger.js';
import type { Result } from '../lib/result.js';
import { DeltaStream } from './delta-stream.js';
import type { NodeMsg } from './messages.js';
import { adsServiceDefinition } from './protos.js';
import { type AdsCall, type AdsStatusEvent, type AdsStream, SendGate, type StreamMetrics, type StreamStatus } from './server-stream.js';
import type { XdsResource } from './snapshot.js';
import type { SnapshotCache } from './snapshot-cache.js';
import { SotwStream } from './sotw-stream.js';
import { fromStruct, type JsonValue } from './struct.js';

export { type AdsStatusEvent, SendGate, type StreamStatus, type TypeStatus } from './server-stream.js';

/** The node as its first request describes it; metadata is the Struct turned into plain JSON. */
export interface AdsNode {
  readonly id: string;
  readonly cluster?: string;
  readonly metadata?: Record<string, JsonValue>;
}

export interface AdsServerOptions {
  /**
   * Decides who the stream belongs to, from the first request's node and the call (its TLS peer).
   * The controller checks that the mTLS peer's identity matches the node id.
   */
  authenticate(
    call: grpc.ServerDuplexStream<unknown, unknown>,
    node: AdsNode,
  ): Result<{ nodeId: string }, { code: grpc.status; message: string }>;
  logger: Logger;
  onStatus?(ev: AdsStatusEvent): void;
  /** The budget of response bytes in flight; by default one process-wide gate of 64 MiB shared by all servers. */
  sendGate?: SendGate;
  /** Counts pushes, their latency, ACKs and NACKs (XdsMetrics). */
  metrics?: StreamMetrics;
  /** A stand-in for a resource a SotW client names and its snapshot lacks (see StreamHost.absent). */
  absent?(typeUrl: string, name: string): XdsResource | undefined;
  /**
   * Refuses a stream as it opens, before it sends anything (the controller: no client certificate on 15012).
   * Unset: every stream may send its first request.
   */
  admit?(call: grpc.ServerDuplexStream<unknown, unknown>): { code: grpc.status; message: string } | undefined;
  /** Caps against idle or flooding peers (lib/limits.ts); each unset cap is off (the agent's local server). */
  limits?: AdsLimits;
  /** The last stream of `nodeId` closed (the plaintext port forgets such nodes: their ids prove nothing). */
  onNodeGone?(nodeId: string): void;
}

export interface AdsLimits {
  /** A stream whose first request has not arrived by then is closed with DEADLINE_EXCEEDED. */
  readonly firstRequestMs?: number;
  /** Streams one peer address may hold before their first request authenticates them. */
  readonly pendingPerPeer?: number;
  /** Streams one peer address may hold in all (for a server whose node ids prove nothing). */
  readonly streamsPerPeer?: number;
  /** Authenticated streams per node id. */
  readonly streamsPerNode?: number;
}

/** The address part of grpc's peer string (`1.2.3.4:5`, `[::1]:5`, `ipv4:…`): what per-peer caps count by. */
export function peerAddress(peer: string): string {
  return peer.replace(/^ipv[46]:/, '').replace(/:\d+$/, '');
}

/** A client's string in a one-line status: quoted (escapes newlines) and cut to 100 characters. */
export function shown(text: string): string {
  return JSON.stringify(text.length > 100 ? `${text.slice(0, 100)}…` : text);
}

/** Counts by key, forgetting keys that drop to zero. */
class Counter {
  private readonly n = new Map<string, number>();
  get(k: string): number {
    return this.n.get(k) ?? 0;
  }
  add(k: string, d: number): void {
    const v = this.get(k) + d;
    if (v > 0) this.n.set(k, v);
    else this.n.delete(k);
  }
}

/** Shared by every ADS server of the process, so the budget bounds the controller as a whole. */
const processGate = new SendGate(64 * 1024 * 1024);

export interface AdsServer {
  /** Add both to a grpc.Server: `server.addService(ads.service, ads.implementation)`. */
  readonly service: grpc.ServiceDefinition;
  readonly implementation: grpc.UntypedServiceImplementation;
  /** One entry per open, authenticated stream. */
  status(): StreamStatus[];
  /** Ends every stream of `nodeId` (e.g. a revoked host); returns how many were open. */
  disconnect(nodeId: string, opts?: { code?: grpc.status; message?: string }): number;
}

/** The Aggregated Discovery Service over `cache`: StreamAggregatedResources (SotW) and DeltaAggregatedResources. */
export function createAdsServer(cache: SnapshotCache, opts: AdsServerOptions): AdsServer {
  const streams = new Set<AdsStream>();
  const host = {
    cache,
    logger: opts.logger,
    onStatus: opts.onStatus ? (ev: AdsStatusEvent) => opts.onStatus?.(ev) : undefined,
    gate: opts.sendGate ?? processGate,
    ...(opts.metrics ? { metrics: opts.metrics } : {}),
    ...(opts.absent ? { absent: opts.absent } : {}),
  };

  const limits = opts.limits ?? {};
  const perPeer = new Counter();
  const pendingPerPeer = new Counter();
  const perNode = new Counter();

  const handler = (mode: 'sotw' | 'delta') => (call: AdsCall) => {
    const stream: AdsStream = mode === 'sotw' ? new SotwStream(host, call, mode) : new DeltaStream(host, call, mode);
    const peer = peerAddress(call.getPeer());
    streams.add(stream);
    perPeer.add(peer, 1);
    pendingPerPeer.add(peer, 1);
    let pending = true;
    let node: string | undefined;
    const settle = () => {
      if (pending) pendingPerPeer.add(peer, -1);
      pending = false;
    };
    let ended = false;
    const done = () => {
      if (ended) return;
      ended = true;
      clearTimeout(firstRequest);
      settle();
      perPeer.add(peer, -1);
      if (node !== undefined) {
        perNode.add(node, -1);
        if (perNode.get(node) === 0) opts.onNodeGone?.(node);
      }
      stream.close();
      streams.delete(stream);
      if (stream.nodeId) opts.logger.info({ nodeId: stream.nodeId, mode, peer: call.getPeer() }, 'xds: stream closed');
    };
    // A stream that says nothing is closed: 30k idle ones held 266 MiB, and none ever ended.
    const firstRequest =
      limits.firstRequestMs === undefined
        ? undefined
        : setTimeout(() => {
            if (stream.nodeId || stream.closed) return;
            refuse(grpc.status.DEADLINE_EXCEEDED, `no first DiscoveryRequest within ${limits.firstRequestMs} ms: stream closed`);
          }, limits.firstRequestMs);
    firstRequest?.unref();
    const refuse = (code: grpc.status, message: string) => {
      opts.logger.debug({ peer: call.getPeer(), mode, code }, `xds: stream refused: ${message}`);
      stream.fail(code, message);
      done();
    };
    const attached = (nodeId: string): boolean => {
      settle();
      clearTimeout(firstRequest);
      node = nodeId;
      perNode.add(nodeId, 1);
      if (limits.streamsPerNode !== undefined && perNode.get(nodeId) > limits.streamsPerNode) {
        refuse(grpc.status.RESOURCE_EXHAUSTED, `over ${limits.streamsPerNode} xDS streams for node ${nodeId}: stream refused`);
        return false;
      }
      return true;
    };
    call.on('data', (req: { node?: NodeMsg | null }) => {
      if (stream.closed) return;
      try {
        if (!stream.nodeId) {
          if (!accept(stream, call, req.node, mode) || !attached(stream.nodeId ?? '')) return;
        } else if (req.node?.id && req.node.id !== stream.nodeId) {
          stream.fail(grpc.status.INVALID_ARGUMENT, `node id changed on the stream from ${shown(stream.nodeId)} to ${shown(req.node.id)}`);
          return;
        }
        stream.handle(req);
      } catch (e) {
        opts.logger.error({ nodeId: stream.nodeId, err: e }, 'xds: request handling failed');
        stream.fail(grpc.status.INTERNAL, formatError(e));
      }
    });
    call.on('end', () => {
      done();
      call.end();
    });
    call.on('error', done);
    call.on('cancelled', done);
    call.on('close', done);
    // Admission after the listeners: refusing emits 'error' on the call.
    const denied = opts.admit?.(call);
    if (denied) refuse(denied.code, denied.message);
    else if (limits.streamsPerPeer !== undefined && perPeer.get(peer) > limits.streamsPerPeer) {
      refuse(grpc.status.RESOURCE_EXHAUSTED, `over ${limits.streamsPerPeer} xDS streams from ${peer}: stream refused`);
    } else if (limits.pendingPerPeer !== undefined && pendingPerPeer.get(peer) > limits.pendingPerPeer) {
      refuse(grpc.status.RESOURCE_EXHAUSTED, `over ${limits.pendingPerPeer} unauthenticated xDS streams from ${peer}: stream refused`);
    }
  };

  const accept = (stream: AdsStream, call: AdsCall, node: NodeMsg | null | undefined, mode: string): boolean => {
    if (!node?.id) {
      stream.fail(grpc.status.INVALID_ARGUMENT, 'the first request on an ADS stream must carry node.id');
      return false;
    }
    if (node.id.length > Limits.nodeIdChars) {
      stream.fail(grpc.status.INVALID_ARGUMENT, `node.id of ${node.id.length} characters: over the ${Limits.nodeIdChars}-character limit`);
      return false;
    }
    const info: AdsNode = { id: node.id, cluster: node.cluster || undefined, metadata: fromStruct(node.metadata) };
    const auth = opts.authenticate(call, info);
    if (!auth.ok) {
      opts.logger.warn({ nodeId: node.id, peer: call.getPeer(), reason: auth.error.message }, 'xds: stream refused');
      stream.fail(auth.error.code, auth.error.message);
      return false;
    }
    stream.attach(auth.value.nodeId);
    opts.logger.info({ nodeId: auth.value.nodeId, mode, peer: call.getPeer() }, 'xds: stream opened');
    return true;
  };

  return {
    service: adsServiceDefinition(),
    implementation: { StreamAggregatedResources: handler('sotw'), DeltaAggregatedResources: handler('delta') },
    status: () => [...streams].filter((s) => s.nodeId !== undefined).map((s) => s.statusView()),
    disconnect(nodeId, o = {}) {
      let n = 0;
      for (const s of [...streams]) {
        if (s.nodeId !== nodeId) continue;
        s.fail(o.code ?? grpc.status.UNAVAILABLE, o.message ?? 'disconnected by the controller');
        streams.delete(s);
        n += 1;
      }
      return n;
    },
  };
}
