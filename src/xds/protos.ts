import type * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { ErrorCode, vmeshError } from '../lib/errors.js';
import { DECODE_OPTIONS, protos } from '../lib/proto-registry.js';
import { encodeDeltaResponse } from './wire-delta.js';

export {
  type AnyMessage,
  decodeAny,
  decodeMessage,
  encodeAny,
  encodeMessage,
  loadProtoRegistry,
  ProtoRegistry,
  protoIncludeDirs,
  protos,
  XDS_PROTO_FILES,
} from '../lib/proto-registry.js';

const ADS_PROTO = 'envoy/service/discovery/v3/ads.proto';
const ADS_SERVICE = 'envoy.service.discovery.v3.AggregatedDiscoveryService';

let adsService: grpc.ServiceDefinition | undefined;
let sdsService: grpc.ServiceDefinition | undefined;
const SDS_PROTO = 'envoy/service/secret/v3/sds.proto';
const SDS_SERVICE = 'envoy.service.secret.v3.SecretDiscoveryService';

/** `envoy.service.secret.v3.SecretDiscoveryService` (StreamSecrets, DeltaSecrets): what an Envoy's sds_config calls. */
export function sdsServiceDefinition(): grpc.ServiceDefinition {
  sdsService ??= serviceDefinition(SDS_PROTO, SDS_SERVICE);
  return sdsService;
}

/** `envoy.service.discovery.v3.AggregatedDiscoveryService` (ads.proto), defined once. */
export function adsServiceDefinition(): grpc.ServiceDefinition {
  adsService ??= serviceDefinition(ADS_PROTO, ADS_SERVICE);
  return adsService;
}

/**
 * A gRPC service over the shared registry's types, coded as @grpc/proto-loader codes it (fromObject/encode,
 * decode/toObject with the decode options). proto-loader itself would parse the service's files and their
 * imports a second time into a root of its own, and build descriptor protos of them all: ~1.5 MB of heap in every
 * process holding a stream (the agent, each proxy worker), for messages the registry already has.
 */
function serviceDefinition(file: string, name: string): grpc.ServiceDefinition {
  const root = protos().root;
  if (!(root.lookup(name) instanceof protobuf.Service)) {
    try {
      root.loadSync(file, { keepCase: true });
      root.resolveAll();
    } catch (e) {
      throw vmeshError(ErrorCode.Internal, `loading ${file} failed: ${(e as Error).message}`);
    }
  }
  const service = root.lookup(name);
  if (!(service instanceof protobuf.Service)) throw vmeshError(ErrorCode.Internal, `${file} does not define ${name}`);
  const general = (t: protobuf.Type) => (v: unknown) => Buffer.from(t.encode(t.fromObject(v as Record<string, unknown>)).finish());
  // Delta responses carry resources encoded once for every stream: written directly (wire-delta.ts).
  const serialize = (t: protobuf.Type) => {
    const slow = general(t);
    return t.fullName === '.envoy.service.discovery.v3.DeltaDiscoveryResponse' ? (v: unknown) => encodeDeltaResponse(v) ?? slow(v) : slow;
  };
  const deserialize = (t: protobuf.Type) => (b: Buffer) => t.toObject(t.decode(b), DECODE_OPTIONS);
  const def: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const m of service.methodsArray) {
    const req = m.resolvedRequestType;
    const res = m.resolvedResponseType;
    if (!req || !res) throw vmeshError(ErrorCode.Internal, `${name}.${m.name}: request or response type unresolved`);
    def[m.name] = {
      path: `/${name}/${m.name}`,
      requestStream: m.requestStream === true,
      responseStream: m.responseStream === true,
      requestSerialize: serialize(req),
      requestDeserialize: deserialize(req),
      responseSerialize: serialize(res),
      responseDeserialize: deserialize(res),
      originalName: m.name.charAt(0).toLowerCase() + m.name.slice(1),
    };
  }
  return def as grpc.ServiceDefinition;
}
