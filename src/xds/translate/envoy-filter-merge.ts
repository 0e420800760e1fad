import protobuf from 'protobufjs';
import { protos } from '../../lib/proto-registry.js';

/**
 * proto.Merge over the translator's message objects, as istiod merges an EnvoyFilter MERGE patch: set scalars
 * of the patch replace the target's (proto3 zero values are "not set" and leave it), messages merge field by
 * field, repeated fields append (MERGE_AND_REPLACE_LIST replaces them), map entries replace by key, setting one
 * member of a oneof clears the others, and an Any merges only into an Any of the same type (else it replaces).
 */

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function typeNamed(name: string): protobuf.Type {
  const t = protos().root.lookup(name);
  if (!(t instanceof protobuf.Type)) throw new Error(`merge: unknown message type ${name}`);
  return t;
}

/** A merged copy of `dst` with `src` merged in; neither argument is changed. */
export function mergeMessage(typeName: string, dst: Obj, src: Obj, replaceLists: boolean): Obj {
  return merge(typeNamed(typeName), dst, src, replaceLists);
}

/** Merges two typed configs (`{ '@type', ... }`) of the same type; undefined when their types differ. */
export function mergeTypedConfig(dst: Obj, src: Obj, replaceLists: boolean): Obj | undefined {
  if (dst['@type'] !== src['@type']) return undefined;
  return merge(typeNamed('google.protobuf.Any'), dst, src, replaceLists);
}

function populated(f: protobuf.Field, v: unknown): boolean {
  if (v === undefined || v === null) return false;
  if (f.repeated) return Array.isArray(v) && v.length > 0;
  if (f.map) return isObj(v) && Object.keys(v).length > 0;
  // Fields with presence (oneof members, `optional`, messages) are set whatever their value.
  if (f.partOf || f.options?.proto3_optional || f.resolvedType instanceof protobuf.Type) return true;
  if (f.resolvedType instanceof protobuf.Enum) return v !== 0 && f.resolvedType.values[String(v)] !== 0;
  return v !== 0 && v !== false && v !== '' && v !== '0';
}

function merge(t: protobuf.Type, dst: Obj, src: Obj, replaceLists: boolean): Obj {
  if (t.fullName === '.google.protobuf.Any') {
    const url = src['@type'];
    if (url !== dst['@type'] || typeof url !== 'string') return structuredClone(src);
    const inner = typeNamed(url.slice(url.lastIndexOf('/') + 1));
    const { '@type': _a, ...d } = dst;
    const { '@type': _b, ...s } = src;
    return { '@type': url, ...merge(inner, d, s, replaceLists) };
  }
  // Struct fields and list values are maps and lists of Values: the generic rules below hold for them too.
  const out: Obj = { ...dst };
  for (const [key, v] of Object.entries(src)) {
    const f = t.fields[key];
    if (!f) {
      out[key] = structuredClone(v);
      continue;
    }
    f.resolve();
    if (!populated(f, v)) continue;
    if (f.partOf) for (const other of f.partOf.oneof) if (other !== key) delete out[other];
    const rt = f.resolvedType;
    const cur = out[key];
    if (f.map) {
      out[key] = { ...(isObj(cur) ? cur : {}), ...structuredClone(v as Obj) };
    } else if (f.repeated) {
      out[key] = replaceLists || !Array.isArray(cur) ? structuredClone(v) : [...cur, ...structuredClone(v as unknown[])];
    } else if (rt instanceof protobuf.Type && isObj(cur) && isObj(v)) {
      out[key] = merge(rt, cur, v, replaceLists);
    } else {
      out[key] = structuredClone(v);
    }
  }
  return out;
}
