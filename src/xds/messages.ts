import type { AnyMessage } from './protos.js';

/** The discovery messages as proto-loader hands them over (proto field names, defaults filled in). */
export interface NodeMsg {
  id?: string;
  cluster?: string;
  metadata?: unknown;
}

/** google.rpc.Status; its presence in a request is what makes it a NACK. */
export interface RpcStatusMsg {
  code?: number;
  message?: string;
}

export interface DiscoveryRequestMsg {
  version_info?: string;
  node?: NodeMsg | null;
  resource_names?: string[];
  type_url?: string;
  response_nonce?: string;
  error_detail?: RpcStatusMsg | null;
}

export interface DiscoveryResponseMsg {
  version_info?: string;
  resources?: AnyMessage[];
  type_url?: string;
  nonce?: string;
}

export interface DeltaDiscoveryRequestMsg {
  node?: NodeMsg | null;
  type_url?: string;
  resource_names_subscribe?: string[];
  resource_names_unsubscribe?: string[];
  initial_resource_versions?: Record<string, string>;
  response_nonce?: string;
  error_detail?: RpcStatusMsg | null;
}

export interface ResourceMsg {
  name?: string;
  version?: string;
  resource?: AnyMessage | null;
}

export interface DeltaDiscoveryResponseMsg {
  system_version_info?: string;
  resources?: ResourceMsg[];
  type_url?: string;
  removed_resources?: string[];
  removed_resource_names?: Array<{ name?: string }>;
  nonce?: string;
}

/** How a NACK explains itself: the error text, or the code when the client gave no text. */
export function nackMessage(s: RpcStatusMsg): string {
  return s.message || `rejected (code ${s.code ?? 'unknown'})`;
}
