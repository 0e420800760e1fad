import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { protoDir } from '../api/proto-path.js';

/** Messages of vmesh.v1.Controller as @grpc/proto-loader delivers them (camelCase, int64 as strings, defaults filled). */
export interface HostFactsMessage {
  hostname: string;
  osDistro: string;
  osRelease: string;
  kernel: string;
  arch: string;
  cpuBrand: string;
  cpuCores: number;
  memoryTotalBytes: string | number;
  ipv4: string[];
  ipv6: string[];
}
export interface JoinRequest {
  token: string;
  hostName: string;
  csrPem: string;
  facts: HostFactsMessage | null;
}
export interface JoinResponse {
  hostCertPem: string;
  trustBundlePem: string;
  hostName: string;
  certNotAfter: string | number;
}
export interface RenewRequest {
  csrPem: string;
}
export interface RenewResponse {
  certPem: string;
  trustBundlePem: string;
  certNotAfter: string | number;
}

export interface WorkloadHealthMessage {
  namespace: string;
  name: string;
  healthy: boolean;
  detail: string;
}
/** uint64 fields arrive as strings (longs: String); numbers are accepted when sending. */
export interface EdgeStatsMessage {
  reporter: string;
  sourceWorkload: string;
  sourceNamespace: string;
  sourcePrincipal: string;
  destinationService: string;
  destinationWorkload: string;
  destinationNamespace: string;
  security: string;
  protocol: string;
  requests: string | number;
  errors: string | number;
  durationCounts: Array<string | number>;
  durationBounds: number[];
  tcpSentBytes: string | number;
  tcpReceivedBytes: string | number;
  tcpConnectionsOpened: string | number;
}
export interface HealthReport {
  workloads: WorkloadHealthMessage[];
  trustBundleSha256?: string;
  edges?: EdgeStatsMessage[];
  serving?: ServedIdentityMessage[];
}
export interface ServedIdentityMessage {
  spiffeId: string;
  uid: number;
  hasUid: boolean;
}
export interface LocalWorkloadMessage {
  namespace: string;
  name: string;
  address: string;
  ports: Record<string, number>;
  serviceAccount: string;
  uid: number;
  hasUid: boolean;
}
export interface HealthReportAck {
  nextReportMs: string | number;
  workloads: LocalWorkloadMessage[];
  trustBundleSha256: string;
}
export interface SignWorkloadRequest {
  namespace: string;
  serviceAccount: string;
  csrPem: string;
}
export interface SignWorkloadResponse {
  certChainPem: string;
  trustBundlePem: string;
  spiffeId: string;
  certNotAfter: string | number;
}

export const CONTROLLER_PROTO_FILE = 'vmesh/v1/controller.proto';

let loaded: grpc.ServiceClientConstructor | undefined;

/** The generic client constructor of vmesh.v1.Controller; its `.service` is the server-side definition. */
export function controllerServiceClient(): grpc.ServiceClientConstructor {
  if (loaded) return loaded;
  const def = protoLoader.loadSync(CONTROLLER_PROTO_FILE, {
    includeDirs: [protoDir()],
    keepCase: false,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { vmesh: { v1: { Controller: grpc.ServiceClientConstructor } } };
  loaded = pkg.vmesh.v1.Controller;
  return loaded;
}
