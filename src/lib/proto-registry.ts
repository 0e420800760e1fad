import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';
// Loading proto-loader registers google/protobuf/descriptor.proto with protobufjs, which the Envoy protos
// import through their validate annotations.
import '@grpc/proto-loader';
import protobuf from 'protobufjs';
import { ErrorCode, vmeshError } from './errors.js';

/** google.protobuf.Any as the encoders and decoders see it. */
export interface AnyMessage {
  readonly type_url: string;
  readonly value: Buffer;
}

/** The files behind every resource type and typed config vmesh sends. Their imports come along. */
export const XDS_PROTO_FILES: readonly string[] = [
  'envoy/config/listener/v3/listener.proto',
  'envoy/config/route/v3/route.proto',
  'envoy/config/cluster/v3/cluster.proto',
  'envoy/config/endpoint/v3/endpoint.proto',
  'envoy/extensions/transport_sockets/raw_buffer/v3/raw_buffer.proto',
  'envoy/extensions/filters/http/cors/v3/cors.proto',
  'envoy/extensions/transport_sockets/tls/v3/tls.proto',
  'envoy/extensions/transport_sockets/tls/v3/secret.proto',
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.proto',
  'envoy/extensions/filters/network/rbac/v3/rbac.proto',
  'envoy/extensions/filters/network/local_ratelimit/v3/local_rate_limit.proto',
  'envoy/extensions/filters/http/router/v3/router.proto',
  'envoy/extensions/filters/http/rbac/v3/rbac.proto',
  'envoy/extensions/filters/http/fault/v3/fault.proto',
  'envoy/extensions/filters/http/local_ratelimit/v3/local_rate_limit.proto',
  'envoy/extensions/filters/http/jwt_authn/v3/config.proto',
  // Filters that call a service vmesh's proxy has no client for (EnvoyFilter may name them; see external-filters.ts).
  'envoy/extensions/filters/http/ext_proc/v3/ext_proc.proto',
  'envoy/extensions/filters/http/ext_authz/v3/ext_authz.proto',
  'envoy/extensions/filters/http/ratelimit/v3/rate_limit.proto',
  'envoy/extensions/filters/listener/tls_inspector/v3/tls_inspector.proto',
  'envoy/extensions/filters/listener/http_inspector/v3/http_inspector.proto',
  'envoy/extensions/filters/listener/original_dst/v3/original_dst.proto',
  'envoy/extensions/upstreams/http/v3/http_protocol_options.proto',
  'envoy/extensions/access_loggers/file/v3/file.proto',
  'envoy/extensions/access_loggers/stream/v3/stream.proto',
  'envoy/config/trace/v3/opentelemetry.proto',
  'envoy/extensions/request_id/uuid/v3/uuid.proto',
  'xds/type/v3/typed_struct.proto',
  'envoy/service/discovery/v3/discovery.proto',
  'vmesh/v1/name_table.proto',
  'vmesh/v1/host_workloads.proto',
];

// Enums as names and 64-bit integers as strings: decoded resources compare and print without surprises.
export const DECODE_OPTIONS: protobuf.IConversionOptions = { longs: String, enums: String, defaults: true, oneofs: true };

let includeDirs: readonly string[] | undefined;

/**
 * Where imports resolve: the Envoy, xds/udpa, googleapis and validate trees shipped in @grpc/grpc-js-xds's
 * deps/ folder, then vmesh's own protos. tsc does not copy .proto files, so those are found from the
 * package root whether this runs from src/ (tsx) or dist/src/.
 */
export function protoIncludeDirs(): readonly string[] {
  if (includeDirs) return includeDirs;
  const req = createRequire(import.meta.url);
  const deps = join(dirname(req.resolve('@grpc/grpc-js-xds/package.json')), 'deps');
  const dirs = ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) => join(deps, d));
  for (const d of dirs) {
    if (!existsSync(d)) throw vmeshError(ErrorCode.Internal, `xDS protos missing: ${d} (is @grpc/grpc-js-xds installed?)`);
  }
  includeDirs = Object.freeze([...dirs, vmeshProtoDir()]);
  return includeDirs;
}

function vmeshProtoDir(): string {
  const rel = join('src', 'xds', 'proto');
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json')) || !existsSync(join(dir, rel, 'vmesh', 'v1', 'name_table.proto'))) {
    const up = dirname(dir);
    if (up === dir) throw vmeshError(ErrorCode.Internal, `cannot find ${rel}/vmesh/v1/name_table.proto above the vmesh modules`);
    dir = up;
  }
  return join(dir, rel);
}

/** Encoders and decoders over one protobufjs root; field names keep their proto (snake_case) spelling. */
export class ProtoRegistry {
  private readonly types = new Map<string, protobuf.Type>();

  constructor(
    readonly root: protobuf.Root,
    readonly files: readonly string[],
  ) {}

  has(typeName: string): boolean {
    return this.root.lookup(typeName) instanceof protobuf.Type;
  }

  type(typeName: string): protobuf.Type {
    let t = this.types.get(typeName);
    if (!t) {
      const found = this.root.lookup(typeName);
      if (!(found instanceof protobuf.Type)) {
        throw vmeshError(
          ErrorCode.InvalidResource,
          `unknown message type ${typeName} (not in the loaded protos: ${this.files.join(', ')})`,
        );
      }
      t = found;
      this.types.set(typeName, t);
    }
    return t;
  }

  /** Refuses unknown fields, unknown enum names and doubly-set oneofs: protobufjs would drop them silently. */
  encodeMessage(typeName: string, obj: object): Buffer {
    const t = this.type(typeName);
    checkShape(t, obj, typeName);
    return Buffer.from(t.encode(t.fromObject(obj)).finish());
  }

  decodeMessage<T = Record<string, unknown>>(typeName: string, bytes: Uint8Array): T {
    const t = this.type(typeName);
    try {
      return t.toObject(t.decode(bytes), DECODE_OPTIONS) as T;
    } catch (e) {
      throw vmeshError(ErrorCode.InvalidResource, `cannot decode ${typeName}: ${(e as Error).message}`);
    }
  }

  encodeAny(typeUrl: string, obj: object): AnyMessage {
    return { type_url: typeUrl, value: this.encodeMessage(typeNameOf(typeUrl), obj) };
  }

  decodeAny<T = Record<string, unknown>>(any: { readonly type_url: string; readonly value: Uint8Array }): T {
    return this.decodeMessage<T>(typeNameOf(any.type_url), any.value);
  }
}

/** Loads only `files` (and their imports): the small-footprint variant for processes that decode a few types. */
export function loadProtoRegistry(files: readonly string[]): ProtoRegistry {
  const dirs = protoIncludeDirs();
  const root = new protobuf.Root();
  root.resolvePath = (origin, target) => {
    if (isAbsolute(target)) return target;
    for (const d of dirs) {
      const p = join(d, target);
      if (existsSync(p)) return p;
    }
    // google/protobuf/* come bundled with protobufjs; it recognises them by this path.
    return protobuf.util.path.resolve(origin, target);
  };
  try {
    root.loadSync([...files], { keepCase: true });
    root.resolveAll();
    addNewerEnumValues(root);
  } catch (e) {
    throw vmeshError(ErrorCode.Internal, `loading protos ${files.join(', ')} failed: ${(e as Error).message}`);
  }
  return new ProtoRegistry(root, files);
}

/**
 * Enum values Envoy added after the API snapshot in @grpc/grpc-js-xds's deps/ (Istio's samples use them), with
 * their numbers in Envoy's protos: the value is then read and encoded as Envoy would.
 */
const NEWER_ENUM_VALUES: readonly (readonly [enumName: string, value: string, id: number])[] = [
  ['envoy.extensions.filters.http.ext_proc.v3.ProcessingMode.BodySendMode', 'FULL_DUPLEX_STREAMED', 4],
  ['envoy.extensions.filters.http.ext_proc.v3.ProcessingMode.BodySendMode', 'GRPC', 5],
];

function addNewerEnumValues(root: protobuf.Root): void {
  for (const [name, value, id] of NEWER_ENUM_VALUES) {
    const e = root.lookup(name);
    if (e instanceof protobuf.Enum && !(value in e.values) && !Object.values(e.values).includes(id)) e.add(value, id);
  }
}

let full: ProtoRegistry | undefined;

/** Every resource type vmesh sends, loaded once on first use (about 100 ms and 10 MB). */
export function protos(): ProtoRegistry {
  full ??= loadProtoRegistry(XDS_PROTO_FILES);
  return full;
}

export function encodeMessage(typeName: string, obj: object): Buffer {
  return protos().encodeMessage(typeName, obj);
}

export function decodeMessage<T = Record<string, unknown>>(typeName: string, bytes: Uint8Array): T {
  return protos().decodeMessage<T>(typeName, bytes);
}

export function encodeAny(typeUrl: string, obj: object): AnyMessage {
  return protos().encodeAny(typeUrl, obj);
}

export function decodeAny<T = Record<string, unknown>>(any: { readonly type_url: string; readonly value: Uint8Array }): T {
  return protos().decodeAny<T>(any);
}

/** `type.googleapis.com/envoy.config.cluster.v3.Cluster` -> `envoy.config.cluster.v3.Cluster`. */
export function typeNameOf(typeUrl: string): string {
  return typeUrl.slice(typeUrl.lastIndexOf('/') + 1);
}

function checkShape(type: protobuf.Type, value: unknown, path: string): void {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Uint8Array) {
    throw vmeshError(ErrorCode.InvalidResource, `${path}: expected a ${type.fullName.slice(1)} object, got ${describe(value)}`);
  }
  const obj = value as Record<string, unknown>;
  // An Any written inline (`{ '@type': url, ...fields }`, as in Envoy's JSON/YAML config) is checked as the
  // message it names; protobufjs's Any wrapper encodes it the same way.
  if (type.fullName === '.google.protobuf.Any' && typeof obj['@type'] === 'string') {
    const url = obj['@type'];
    const inner = type.root.lookup(url.slice(url.lastIndexOf('/') + 1));
    if (!(inner instanceof protobuf.Type)) throw vmeshError(ErrorCode.InvalidResource, `${path}.@type: unknown message type "${url}"`);
    const { '@type': _t, ...rest } = obj;
    checkShape(inner, rest, `${path}<${inner.name}>`);
    return;
  }
  for (const [key, v] of Object.entries(obj)) {
    if (v === undefined || v === null) continue;
    const field = type.fields[key];
    if (field) {
      checkField(field, v, `${path}.${key}`);
      continue;
    }
    // Decoded objects name their set oneof member in a virtual field; encoding such an object again is fine.
    if (type.oneofs && key in type.oneofs && typeof v === 'string') continue;
    throw vmeshError(ErrorCode.InvalidResource, `${path}.${key}: ${type.fullName.slice(1)} has no field "${key}"`);
  }
  for (const oneof of type.oneofsArray) {
    const set = oneof.oneof.filter((n) => obj[n] !== undefined && obj[n] !== null);
    if (set.length > 1) {
      throw vmeshError(ErrorCode.InvalidResource, `${path}: ${set.join(' and ')} are exclusive (oneof ${oneof.name}), set only one`);
    }
  }
}

function checkField(field: protobuf.Field, v: unknown, path: string): void {
  field.resolve();
  const rt = field.resolvedType;
  if (field.map) {
    if (typeof v !== 'object' || Array.isArray(v))
      throw vmeshError(ErrorCode.InvalidResource, `${path}: expected a map, got ${describe(v)}`);
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) checkValue(rt, x, `${path}["${k}"]`);
  } else if (field.repeated) {
    if (!Array.isArray(v)) throw vmeshError(ErrorCode.InvalidResource, `${path}: expected a list, got ${describe(v)}`);
    for (const [i, x] of v.entries()) checkValue(rt, x, `${path}[${i}]`);
  } else {
    checkValue(rt, v, path);
  }
}

function checkValue(rt: protobuf.Type | protobuf.Enum | null, v: unknown, path: string): void {
  if (rt instanceof protobuf.Type) checkShape(rt, v, path);
  else if (rt instanceof protobuf.Enum && typeof v === 'string' && !(v in rt.values)) {
    throw vmeshError(ErrorCode.InvalidResource, `${path}: "${v}" is not a value of ${rt.fullName.slice(1)}`);
  }
}

function describe(v: unknown): string {
  if (Array.isArray(v)) return 'a list';
  if (v instanceof Uint8Array) return 'bytes';
  return typeof v === 'string' ? `"${v.length > 40 ? `${v.slice(0, 40)}...` : v}"` : typeof v;
}
