import type { Node__Output } from '../generated/envoy/config/core/v3/Node.js';
import type { DeltaDiscoveryRequest__Output } from '../generated/envoy/service/discovery/v3/DeltaDiscoveryRequest.js';
import type { DeltaDiscoveryResponse__Output } from '../generated/envoy/service/discovery/v3/DeltaDiscoveryResponse.js';
import type { DiscoveryRequest__Output } from '../generated/envoy/service/discovery/v3/DiscoveryRequest.js';
import type { DiscoveryResponse__Output } from '../generated/envoy/service/discovery/v3/DiscoveryResponse.js';
import type { Resource__Output } from '../generated/envoy/service/discovery/v3/Resource.js';
import type { Status__Output } from '../generated/google/rpc/Status.js';

/**
 * The discovery messages as proto-loader hands them over (proto field names, defaults filled in): the generated
 * __Output types. What vmesh writes is typed with the generated input types (DiscoveryResponse...) where it is built.
 */
export type NodeMsg = Node__Output;

/** google.rpc.Status; its presence in a request is what makes it a NACK. */
export type RpcStatusMsg = Pick<Status__Output, 'code' | 'message'>;

export type DiscoveryRequestMsg = DiscoveryRequest__Output;
export type DiscoveryResponseMsg = DiscoveryResponse__Output;
export type DeltaDiscoveryRequestMsg = DeltaDiscoveryRequest__Output;
export type ResourceMsg = Resource__Output;
export type DeltaDiscoveryResponseMsg = DeltaDiscoveryResponse__Output;

/** How a NACK explains itself: the error text, or the code when the client gave no text. */
export function nackMessage(s: RpcStatusMsg): string {
  return s.message || `rejected (code ${s.code ?? 'unknown'})`;
}
