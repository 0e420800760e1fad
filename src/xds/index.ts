// The xds layer's public surface; wiring (controller, agent) imports from here.
export { AdsClient, type AdsClientOptions, type AdsTypeState, type AdsUpdate } from './ads-client.js';
export {
  type AdsNode,
  type AdsServer,
  type AdsServerOptions,
  type AdsStatusEvent,
  createAdsServer,
  type StreamStatus,
  shown,
  type TypeStatus,
} from './ads-server.js';
export { type AppliedConfig, type UpdateValidator, XdsSync, type XdsSyncOptions } from './agent-sync.js';
export { LocalXdsServer, type LocalXdsServerOptions } from './local-server.js';
export {
  type AnyMessage,
  adsServiceDefinition,
  decodeAny,
  decodeMessage,
  encodeAny,
  encodeMessage,
  loadProtoRegistry,
  ProtoRegistry,
  protoIncludeDirs,
  protos,
  sdsServiceDefinition,
  XDS_PROTO_FILES,
} from './protos.js';
export { type PublisherOptions, SnapshotPublisher, type Translated } from './publisher.js';
export { type SecretInput, secretFromMessage, secretMessage } from './secrets.js';
export {
  checkConsistent,
  makeResource,
  makeSnapshot,
  type ResourceInput,
  type Snapshot,
  type SnapshotRefs,
  snapshotOf,
  snapshotRefs,
  type XdsResource,
} from './snapshot.js';
export { SnapshotCache, type SnapshotWatcher } from './snapshot-cache.js';
export { fromStruct, type JsonValue, toStruct } from './struct.js';
export { type ProxyStatusRow, proxyConfig, proxyStatus } from './sync-status.js';
export * from './type-urls.js';
export { XdsMetrics, xdsTypeLabel } from './xds-metrics.js';
