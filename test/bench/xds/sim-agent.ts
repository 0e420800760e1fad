import * as grpc from '@grpc/grpc-js';
import type { DeltaDiscoveryRequest } from '../../../src/generated/envoy/service/discovery/v3/DeltaDiscoveryRequest.js';
import type { DeltaDiscoveryResponseMsg } from '../../../src/xds/messages.js';
import { adsServiceDefinition } from '../../../src/xds/protos.js';
import { AGENT_TYPES, type AgentCreds } from './agent-protocol.js';

/** Wall-clock ms with sub-ms precision, comparable between processes on one machine. */
export const now = (): number => performance.timeOrigin + performance.now();

export interface AgentEvents {
  /** A response arrived and its ACK was written at `at`. */
  response(agent: SimAgent, res: DeltaDiscoveryResponseMsg, bytes: number, at: number): void;
  failed(agent: SimAgent, message: string): void;
}

// Each agent its own channel and subchannel, as separate hosts would have: no HTTP/2 connection is shared.
const CHANNEL_OPTIONS: grpc.ChannelOptions = { 'grpc.use_local_subchannel_pool': 1 };

/**
 * One simulated agent: a delta ADS stream over mutual TLS with its own host certificate, wildcard on CDS, EDS,
 * LDS, RDS and NDS. It ACKs every response at once and never decodes the resources (only the outer message,
 * which grpc decodes anyway; each resource's Any stays bytes).
 */
export class SimAgent {
  readonly responses = new Array<number>(AGENT_TYPES.length).fill(0);
  readonly upserts = new Array<number>(AGENT_TYPES.length).fill(0);
  startedAt = 0;
  syncedAt = 0;
  bytes = 0;
  failure: string | undefined;
  private client: grpc.Client | undefined;
  private call: grpc.ClientDuplexStream<DeltaDiscoveryRequest, DeltaDiscoveryResponseMsg> | undefined;
  private closing = false;

  constructor(
    readonly index: number,
    readonly creds: AgentCreds,
  ) {}

  get synced(): boolean {
    return this.syncedAt > 0;
  }

  start(address: string, caPem: Buffer, events: AgentEvents): void {
    const m = adsServiceDefinition().DeltaAggregatedResources;
    if (!m) throw new Error('ads.proto defines no DeltaAggregatedResources');
    const credentials = grpc.credentials.createSsl(caPem, Buffer.from(this.creds.keyPem), Buffer.from(this.creds.certPem));
    this.client = new grpc.Client(address, credentials, CHANNEL_OPTIONS);
    const decode = m.responseDeserialize as (b: Buffer) => DeltaDiscoveryResponseMsg;
    let lastBytes = 0;
    const call = this.client.makeBidiStreamRequest<DeltaDiscoveryRequest, DeltaDiscoveryResponseMsg>(
      m.path,
      m.requestSerialize as (v: DeltaDiscoveryRequest) => Buffer,
      (b: Buffer) => {
        lastBytes = b.length;
        return decode(b);
      },
    );
    this.call = call;
    this.startedAt = now();
    call.on('data', (res: DeltaDiscoveryResponseMsg) => {
      const typeUrl = res.type_url ?? '';
      call.write({ type_url: typeUrl, response_nonce: res.nonce ?? '' });
      const at = now();
      const i = AGENT_TYPES.indexOf(typeUrl);
      this.bytes += lastBytes;
      if (i >= 0) {
        this.responses[i] = (this.responses[i] ?? 0) + 1;
        this.upserts[i] = (this.upserts[i] ?? 0) + (res.resources?.length ?? 0);
        if (!this.synced && this.responses.every((n) => n > 0)) this.syncedAt = at;
      }
      events.response(this, res, lastBytes, at);
    });
    const fail = (message: string) => {
      if (this.closing || this.failure !== undefined) return;
      this.failure = message;
      events.failed(this, message);
    };
    call.on('error', (e: grpc.ServiceError) => fail(`${grpc.status[e.code] ?? e.code}: ${e.details ?? e.message}`));
    call.on('status', (s: grpc.StatusObject) => fail(`stream ended: ${grpc.status[s.code] ?? s.code} ${s.details}`));
    // The first request names the node; the other types follow on the same stream. No names: wildcard.
    AGENT_TYPES.forEach((typeUrl, i) => {
      call.write({ ...(i === 0 ? { node: { id: this.creds.id, cluster: 'bench' } } : {}), type_url: typeUrl });
    });
  }

  close(): void {
    this.closing = true;
    this.call?.cancel();
    this.client?.close();
  }
}
