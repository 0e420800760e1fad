import * as grpc from '@grpc/grpc-js';
import { formatError } from '../lib/errors.js';
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
  /** An authenticated stream ended; `open` streams of the node remain. */
  onStreamClosed?(nodeId: string, open: number): void;
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

  const handler = (mode: 'sotw' | 'delta') => (call: AdsCall) => {
    const stream: AdsStream = mode === 'sotw' ? new SotwStream(host, call, mode) : new DeltaStream(host, call, mode);
    streams.add(stream);
    let ended = false;
    const done = () => {
      if (ended) return;
      ended = true;
      stream.close();
      streams.delete(stream);
      const nodeId = stream.nodeId;
      if (!nodeId) return;
      opts.logger.info({ nodeId, mode, peer: call.getPeer() }, 'xds: stream closed');
      if (opts.onStreamClosed) {
        let open = 0;
        for (const s of streams) if (s.nodeId === nodeId) open += 1;
        opts.onStreamClosed(nodeId, open);
      }
    };
    call.on('data', (req: { node?: NodeMsg | null }) => {
      if (stream.closed) return;
      try {
        if (!stream.nodeId) {
          if (!accept(stream, call, req.node, mode)) return;
        } else if (req.node?.id && req.node.id !== stream.nodeId) {
          stream.fail(grpc.status.INVALID_ARGUMENT, `node id changed on the stream from "${stream.nodeId}" to "${req.node.id}"`);
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
  };

  const accept = (stream: AdsStream, call: AdsCall, node: NodeMsg | null | undefined, mode: string): boolean => {
    if (!node?.id) {
      stream.fail(grpc.status.INVALID_ARGUMENT, 'the first request on an ADS stream must carry node.id');
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
