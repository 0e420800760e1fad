import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { protoDir } from './proto-path.js';

// Messages of vmesh.v1.Controller (proto/vmesh/v1/controller.proto) as @grpc/proto-loader delivers them: camelCase,
// int64 as strings, defaults filled. The types are generated (npm run generate). `X` is what a sender builds (fields
// optional, longs as number or string); `X__Output` is what a receiver gets (every field set, longs as strings).
export type { ControllerClient, ControllerHandlers } from '../generated/vmesh/v1/Controller.js';
export type { EdgeStats, EdgeStats__Output } from '../generated/vmesh/v1/EdgeStats.js';
export type { HealthReport, HealthReport__Output } from '../generated/vmesh/v1/HealthReport.js';
export type { HealthReportAck, HealthReportAck__Output } from '../generated/vmesh/v1/HealthReportAck.js';
export type { HostFacts as HostFactsMessage, HostFacts__Output as HostFactsMessage__Output } from '../generated/vmesh/v1/HostFacts.js';
export type { JoinRequest, JoinRequest__Output } from '../generated/vmesh/v1/JoinRequest.js';
export type { JoinResponse, JoinResponse__Output } from '../generated/vmesh/v1/JoinResponse.js';
export type { LocalWorkload, LocalWorkload__Output } from '../generated/vmesh/v1/LocalWorkload.js';
export type { RenewRequest, RenewRequest__Output } from '../generated/vmesh/v1/RenewRequest.js';
export type { RenewResponse, RenewResponse__Output } from '../generated/vmesh/v1/RenewResponse.js';
export type { ServedIdentity, ServedIdentity__Output } from '../generated/vmesh/v1/ServedIdentity.js';
export type { SignWorkloadRequest, SignWorkloadRequest__Output } from '../generated/vmesh/v1/SignWorkloadRequest.js';
export type { SignWorkloadResponse, SignWorkloadResponse__Output } from '../generated/vmesh/v1/SignWorkloadResponse.js';
export type { WorkloadHealth, WorkloadHealth__Output } from '../generated/vmesh/v1/WorkloadHealth.js';

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
