import protobuf from 'protobufjs';
import { protos } from '../lib/proto-registry.js';

/**
 * Envoy config written as proto3 JSON (an EnvoyFilter's patch value: camelCase or snake_case names, "10s"
 * durations, bare wrapper values, Structs as plain JSON, Anys with `@type`) read into the form vmesh's encoder
 * takes: proto field names, Durations as {seconds, nanos}, wrappers as {value}, Anys inline as
 * `{ '@type': url, ...fields }`. Strict as istiod is when it validates a patch: an unknown field, type or enum
 * value is an error naming where it is. A TypedStruct whose type vmesh knows is read as that type (Envoy does
 * the same when it loads one), so the config it carries is checked and served as the real message.
 */

export type ProtoJsonResult =
  | { ok: true; value: Record<string, unknown> }
  | { ok: false; path: string; message: string /** an Any names a type vmesh has no proto for */; unknownType: boolean };

class Problem extends Error {
  constructor(
    readonly at: string,
    message: string,
    readonly unknownType = false,
  ) {
    super(message);
  }
}

const TYPED_STRUCTS = new Set(['udpa.type.v1.TypedStruct', 'xds.type.v3.TypedStruct']);
const XDS_TYPED_STRUCT_URL = 'type.googleapis.com/xds.type.v3.TypedStruct';
/** How deep a patch value may nest before it is refused: far beyond any real Envoy config, short of the stack. */
const MAX_DEPTH = 64;

export function readProtoJson(typeName: string, json: unknown): ProtoJsonResult {
  const t = lookupType(typeName);
  if (!t) return { ok: false, path: '', message: `unknown message type ${typeName}`, unknownType: true };
  try {
    return { ok: true, value: message(t, json, '', 0) };
  } catch (e) {
    if (e instanceof Problem) return { ok: false, path: e.at, message: e.message, unknownType: e.unknownType };
    throw e;
  }
}

function lookupType(name: string): protobuf.Type | undefined {
  try {
    const t = protos().root.lookup(name);
    return t instanceof protobuf.Type ? t : undefined;
  } catch {
    return undefined;
  }
}

function kindOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  return typeof v === 'object' ? 'an object' : typeof v === 'string' ? `"${v.length > 40 ? `${v.slice(0, 40)}...` : v}"` : String(v);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const DURATION = /^(-)?(\d+)(?:\.(\d{1,9}))?s$/;

function duration(v: unknown, at: string): Record<string, unknown> {
  if (isObject(v)) return { seconds: v.seconds ?? 0, nanos: v.nanos ?? 0 };
  const m = typeof v === 'string' ? DURATION.exec(v) : null;
  if (!m) throw new Problem(at, `expected a duration such as "10s" or "0.5s", got ${kindOf(v)}`);
  const sign = m[1] ? -1 : 1;
  return { seconds: sign * Number(m[2]), nanos: sign * Number((m[3] ?? '').padEnd(9, '0')) };
}

function structValue(v: unknown, at: string, depth: number): Record<string, unknown> {
  if (depth > MAX_DEPTH) throw new Problem(at, `nested deeper than ${MAX_DEPTH} levels`);
  if (v === null) return { null_value: 'NULL_VALUE' };
  if (typeof v === 'number') return { number_value: v };
  if (typeof v === 'string') return { string_value: v };
  if (typeof v === 'boolean') return { bool_value: v };
  if (Array.isArray(v)) return { list_value: { values: v.map((x, i) => structValue(x, `${at}[${i}]`, depth + 1)) } };
  if (isObject(v)) return { struct_value: struct(v, at, depth + 1) };
  throw new Problem(at, `not a JSON value: ${kindOf(v)}`);
}

function struct(v: unknown, at: string, depth: number): Record<string, unknown> {
  if (!isObject(v)) throw new Problem(at, `expected an object, got ${kindOf(v)}`);
  const fields: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) fields[k] = structValue(x, `${at}.${k}`, depth);
  return { fields };
}

/** An Any: `{ '@type': url, ...fields }`, read as the message it names. */
function any(v: unknown, at: string, depth: number): Record<string, unknown> {
  if (!isObject(v)) throw new Problem(at, `expected an object with "@type", got ${kindOf(v)}`);
  const url = v['@type'];
  if (typeof url !== 'string' || url === '') throw new Problem(`${at}.@type`, 'an Any needs "@type"');
  const name = url.slice(url.lastIndexOf('/') + 1);
  const { '@type': _t, ...rest } = v;
  if (TYPED_STRUCTS.has(name)) return typedStruct(rest, at, depth);
  const t = lookupType(name);
  if (!t) throw new Problem(`${at}.@type`, `${url} is not an Envoy extension vmesh's proxy runs`, true);
  // Well-known types carry their JSON form under "value" inside an Any.
  const inner = wellKnown(t) ? rest.value : rest;
  return { '@type': url, ...message(t, inner, at, depth + 1) };
}

function typedStruct(v: Record<string, unknown>, at: string, depth: number): Record<string, unknown> {
  const typeUrl = v.type_url ?? v.typeUrl;
  if (typeof typeUrl !== 'string' || typeUrl === '') throw new Problem(`${at}.type_url`, 'a TypedStruct needs type_url');
  for (const k of Object.keys(v)) {
    if (!['type_url', 'typeUrl', 'value'].includes(k)) throw new Problem(`${at}.${k}`, 'TypedStruct has no field of this name');
  }
  const t = lookupType(typeUrl.slice(typeUrl.lastIndexOf('/') + 1));
  if (t) return { '@type': typeUrl, ...message(t, v.value ?? {}, `${at}.value`, depth + 1) };
  // A type vmesh has no proto for (istio.stats, Wasm configs): kept as the TypedStruct it was.
  return { '@type': XDS_TYPED_STRUCT_URL, type_url: typeUrl, value: struct(v.value ?? {}, `${at}.value`, depth + 1) };
}

function wellKnown(t: protobuf.Type): boolean {
  return t.fullName.startsWith('.google.protobuf.');
}

function message(t: protobuf.Type, v: unknown, at: string, depth: number): Record<string, unknown> {
  if (depth > MAX_DEPTH) throw new Problem(at, `nested deeper than ${MAX_DEPTH} levels`);
  switch (t.fullName) {
    case '.google.protobuf.Duration':
      return duration(v, at);
    case '.google.protobuf.Struct':
      return struct(v, at, depth);
    case '.google.protobuf.Value':
      return structValue(v, at, depth);
    case '.google.protobuf.ListValue':
      if (!Array.isArray(v)) throw new Problem(at, `expected a list, got ${kindOf(v)}`);
      return { values: v.map((x, i) => structValue(x, `${at}[${i}]`, depth + 1)) };
    case '.google.protobuf.Any':
      return any(v, at, depth);
    default:
  }
  if (wellKnown(t) && t.name.endsWith('Value') && t.fields.value && !isObject(v)) {
    return { value: scalar(t.fields.value, v, `${at}`) };
  }
  if (!isObject(v)) throw new Problem(at, `expected a ${t.fullName.slice(1)} object, got ${kindOf(v)}`);
  const out: Record<string, unknown> = {};
  for (const [key, x] of Object.entries(v)) {
    const f = fieldOf(t, key);
    const p = `${at}.${key}`;
    if (!f) throw new Problem(p, `${t.fullName.slice(1)} has no field "${key}"`);
    if (x === null) continue;
    out[f.name] = fieldValue(f, x, p, depth);
  }
  for (const o of t.oneofsArray) {
    const set = o.oneof.filter((n) => out[n] !== undefined);
    if (set.length > 1) throw new Problem(at, `${set.join(' and ')} are exclusive (oneof ${o.name}), set only one`);
  }
  return out;
}

const jsonNames = new WeakMap<protobuf.Type, Map<string, protobuf.Field>>();

/** A field by its proto name or its lowerCamelCase JSON name, as protojson accepts both. */
function fieldOf(t: protobuf.Type, key: string): protobuf.Field | undefined {
  const direct = t.fields[key];
  if (direct) return direct;
  let m = jsonNames.get(t);
  if (!m) {
    m = new Map();
    for (const f of t.fieldsArray)
      m.set(
        f.name.replace(/_([a-z0-9])/g, (_s, c: string) => c.toUpperCase()),
        f,
      );
    jsonNames.set(t, m);
  }
  return m.get(key);
}

function fieldValue(f: protobuf.Field, v: unknown, at: string, depth: number): unknown {
  f.resolve();
  if (f.map) {
    if (!isObject(v)) throw new Problem(at, `expected a map, got ${kindOf(v)}`);
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = single(f, x, `${at}.${k}`, depth);
    return out;
  }
  if (f.repeated) {
    if (!Array.isArray(v)) throw new Problem(at, `expected a list, got ${kindOf(v)}`);
    return v.map((x, i) => single(f, x, `${at}[${i}]`, depth));
  }
  return single(f, v, at, depth);
}

function single(f: protobuf.Field, v: unknown, at: string, depth: number): unknown {
  const rt = f.resolvedType;
  if (rt instanceof protobuf.Type) return message(rt, v, at, depth + 1);
  return scalar(f, v, at);
}

const INTS = new Set(['int32', 'uint32', 'sint32', 'fixed32', 'sfixed32', 'int64', 'uint64', 'sint64', 'fixed64', 'sfixed64']);

function scalar(f: protobuf.Field, v: unknown, at: string): unknown {
  const rt = f.resolvedType;
  if (rt instanceof protobuf.Enum) {
    if (typeof v === 'string' && v in rt.values) return v;
    if (typeof v === 'number' && Number.isInteger(v)) return v;
    throw new Problem(at, `${kindOf(v)} is not a value of ${rt.fullName.slice(1)}`);
  }
  if (f.type === 'string') {
    if (typeof v !== 'string') throw new Problem(at, `expected a string, got ${kindOf(v)}`);
    return v;
  }
  if (f.type === 'bool') {
    if (typeof v !== 'boolean') throw new Problem(at, `expected true or false, got ${kindOf(v)}`);
    return v;
  }
  if (f.type === 'bytes') {
    if (typeof v !== 'string') throw new Problem(at, `expected base64 bytes, got ${kindOf(v)}`);
    return v;
  }
  if (INTS.has(f.type)) {
    const n = typeof v === 'string' && /^-?\d+$/.test(v) ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isInteger(n)) throw new Problem(at, `expected an integer, got ${kindOf(v)}`);
    if (f.type.startsWith('u') && n < 0) throw new Problem(at, `expected a non-negative integer, got ${n}`);
    return n;
  }
  const n = typeof v === 'string' && v !== '' && !Number.isNaN(Number(v)) ? Number(v) : v;
  if (typeof n !== 'number') throw new Problem(at, `expected a number, got ${kindOf(v)}`);
  return n;
}
