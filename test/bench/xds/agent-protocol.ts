/** Messages between the benchmark and its agent processes (IPC, structured clone). Times are ms since the epoch. */
import { CDS, EDS, LDS, NDS, RDS } from '../../../src/xds/type-urls.js';

/** The types every simulated agent subscribes to (wildcard), in the order it subscribes. */
export const AGENT_TYPES: readonly string[] = [CDS, EDS, LDS, RDS, NDS];

export interface AgentCreds {
  readonly id: string;
  readonly keyPem: string;
  readonly certPem: string;
}

/** A response of `typeUrl` naming `name` among its upserted resources; `*` matches any response of the type. */
export interface Marker {
  readonly typeUrl: string;
  readonly name: string;
}

export type ToAgents =
  | {
      readonly cmd: 'start';
      readonly addresses: readonly string[];
      readonly caPem: string;
      readonly agents: AgentCreds[];
      readonly concurrency: number;
    }
  | { readonly cmd: 'watch'; readonly watchId: number; readonly markers: Marker[] }
  | { readonly cmd: 'collect'; readonly watchId: number }
  | { readonly cmd: 'stop' };

/** Per agent: responses and bytes received, resources upserted, per type (AGENT_TYPES order). */
export interface SyncReport {
  readonly agents: number;
  readonly synced: number;
  readonly failed: number;
  /** First failures, as `agent: message`. */
  readonly errors: string[];
  /** When each synced agent got its last initial response (its initial sync done). */
  readonly syncedAt: number[];
  /** When each agent's stream was opened. */
  readonly startedAt: number[];
  readonly resourcesPerType: { min: number[]; max: number[] };
  readonly bytes: number;
  readonly responses: number;
}

export interface WatchResult {
  readonly watchId: number;
  /** Per agent, per marker: when the ACK of the first matching response was written (null: never). */
  readonly times: Array<Array<number | null>>;
  /** Arrival time of every response during the watch, by type URL. */
  readonly arrivals: Record<string, number[]>;
  readonly bytes: number;
  /** The agent process's event-loop utilisation (0..1) and CPU seconds between watch and collect. */
  readonly elu: number;
  readonly cpuSeconds: number;
  readonly failedStreams: number;
}

export type FromAgents =
  | { readonly ev: 'progress'; readonly synced: number; readonly failed: number; readonly open: number }
  | { readonly ev: 'synced'; readonly report: SyncReport }
  | { readonly ev: 'watching'; readonly watchId: number }
  | { readonly ev: 'watch-done'; readonly watchId: number }
  | { readonly ev: 'watch-result'; readonly result: WatchResult }
  | { readonly ev: 'fatal'; readonly message: string };
