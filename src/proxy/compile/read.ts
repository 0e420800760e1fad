import type { FractionalPercent__Output } from '../../generated/envoy/type/v3/FractionalPercent.js';
import type { Duration__Output } from '../../generated/google/protobuf/Duration.js';
import type { Struct__Output } from '../../generated/google/protobuf/Struct.js';
import type { Decoded, DecodedAny } from '../../xds/envoy-types.js';

/**
 * Readers for decoded Envoy messages, typed by src/xds/envoy-types.ts (`Decoded<Cluster__Output>`...). The agent's applied config is protobufjs output with defaults (absent
 * messages are `null`, scalars are zero values, 64-bit integers are strings, enums are names), but tests and
 * cached files may carry sparse JSON: every reader treats `null`, `undefined` and a missing key alike.
 * Compile errors are thrown as CompileError with the field path and caught once per resource in index.ts.
 */

export class CompileError extends Error {
  constructor(
    readonly path: string,
    readonly why: string,
  ) {
    super(`${path}: ${why}`);
    this.name = 'CompileError';
  }
}

export function fail(path: string, why: string): never {
  throw new CompileError(path, why);
}

export function isSet(v: unknown): boolean {
  return v !== null && v !== undefined;
}

/** A sub-message, or undefined when absent; still checked, since sparse JSON is typed only by trust. */
export function msg<T extends object>(v: T | null | undefined, path: string): T | undefined {
  if (v === null || v === undefined) return undefined;
  if (typeof v !== 'object' || Array.isArray(v)) fail(path, `expected a message, got ${JSON.stringify(v)}`);
  return v;
}

/** A sub-message whose absence means all its fields at their defaults (a list entry, a oneof's empty member). */
export function part<T extends object>(v: T | null | undefined, path: string): Partial<T> {
  return msg(v, path) ?? {};
}

export function list<T>(v: readonly T[] | null | undefined, path: string): readonly T[] {
  if (v === null || v === undefined) return [];
  if (!Array.isArray(v)) fail(path, 'expected a list');
  return v;
}

export function str(v: unknown, path: string, dflt = ''): string {
  if (v === null || v === undefined) return dflt;
  if (typeof v !== 'string') fail(path, `expected a string, got ${JSON.stringify(v)}`);
  return v;
}

/** A number from a number or a decimal string (protobufjs renders 64-bit integers as strings). */
export function num(v: unknown, path: string, dflt = 0): number {
  if (v === null || v === undefined) return dflt;
  const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : Number.NaN;
  if (!Number.isFinite(n)) fail(path, `expected a number, got ${JSON.stringify(v)}`);
  return n;
}

export function bool(v: unknown, path: string, dflt = false): boolean {
  if (v === null || v === undefined) return dflt;
  if (typeof v !== 'boolean') fail(path, `expected a boolean, got ${JSON.stringify(v)}`);
  return v;
}

/** A wrapper message (`{ value }`, e.g. UInt32Value), or a bare scalar; undefined when absent. */
/** A wrapper message (`{ value }`) as decoded, or the bare scalar hand-written JSON may carry. */
type Wrapper<T> = { readonly value?: T } | T;

export function wrapped(v: Wrapper<number | string> | null | undefined, path: string): number | undefined {
  if (v === null || v === undefined) return undefined;
  if (typeof v === 'object') return num(v.value, `${path}.value`);
  return num(v, path);
}

export function wrappedBool(v: Wrapper<boolean> | null | undefined, path: string): boolean | undefined {
  if (v === null || v === undefined) return undefined;
  if (typeof v === 'object') return bool(v.value, `${path}.value`);
  return bool(v, path);
}

/** google.protobuf.Duration (`{ seconds, nanos }`, or a `"1.5s"` string as in proto3 JSON) in milliseconds. */
export function durationMs(v: Decoded<Duration__Output> | string | null | undefined, path: string): number | undefined {
  if (v === null || v === undefined) return undefined;
  if (typeof v === 'string') {
    const m = /^(-?\d+(?:\.\d+)?)s$/.exec(v.trim());
    if (!m) fail(path, `"${v}" is not a duration`);
    return Math.round(Number(m[1]) * 1000);
  }
  const d: { readonly seconds?: unknown; readonly nanos?: unknown } = part(v, path);
  const ms = num(d.seconds, `${path}.seconds`) * 1000 + num(d.nanos, `${path}.nanos`) / 1e6;
  if (ms < 0) fail(path, 'negative duration');
  return Math.round(ms * 1000) / 1000;
}

const DENOMINATORS: Readonly<Record<string, number>> = { HUNDRED: 100, TEN_THOUSAND: 10_000, MILLION: 1_000_000 };

/** FractionalPercent as a fraction in [0, 1] (denominator HUNDRED when unset, numerator 0 when unset). */
export function fraction(v: Decoded<FractionalPercent__Output> | null | undefined, path: string): number {
  const p: { readonly numerator?: unknown; readonly denominator?: unknown } | undefined = msg(v, path);
  if (!p) return 0;
  const d = p.denominator;
  const den = d === null || d === undefined ? 100 : typeof d === 'number' ? [100, 10_000, 1_000_000][d] : DENOMINATORS[String(d)];
  if (den === undefined) fail(`${path}.denominator`, `unknown denominator ${JSON.stringify(d)}`);
  return Math.min(1, Math.max(0, num(p.numerator, `${path}.numerator`) / den));
}

/** The `@type` of an inline typed config, or the `type_url` of one that stayed an Any (its type was not loaded). */
export function typeUrlOf(typed: DecodedAny | null | undefined): string {
  if (!typed) return '';
  const t = '@type' in typed ? typed['@type'] : typed.type_url;
  return typeof t === 'string' ? t : '';
}

/**
 * A typed config as the message its `@type` names, after checking that names `typeUrl`'s message (any URL prefix,
 * as Envoy accepts). The decoder made it from that very type, so its fields are that message's.
 */
export function typedAs<T>(typed: DecodedAny | null | undefined, typeUrl: string, path: string): Decoded<T> {
  const url = typed && '@type' in typed ? typed['@type'] : undefined;
  if (typeof url !== 'string' || typeNameOfUrl(url) !== typeNameOfUrl(typeUrl)) {
    fail(path, `expected ${typeNameOfUrl(typeUrl)}, got ${typeUrlOf(typed) || 'nothing'}`);
  }
  return typed as unknown as Decoded<T>;
}

/** Whether a typed config names `typeUrl`'s message (any URL prefix). */
export function isTyped(typed: DecodedAny | null | undefined, typeUrl: string): boolean {
  return typeNameOfUrl(typeUrlOf(typed)) === typeNameOfUrl(typeUrl);
}

/** `type.googleapis.com/envoy.x.v3.Y` -> `envoy.x.v3.Y`. */
export function typeNameOfUrl(url: string): string {
  return url.slice(url.lastIndexOf('/') + 1);
}

/** Bytes as protobufjs (Buffer/Uint8Array), JSON.stringify (`{ type: 'Buffer', data }`) or proto3 JSON (base64) render them. */
export function bytesText(v: unknown): string {
  if (v === null || v === undefined) return '';
  if (v instanceof Uint8Array) return Buffer.from(v).toString('utf8');
  if (typeof v === 'string') return Buffer.from(v, 'base64').toString('utf8');
  if (typeof v === 'object') {
    const data = (v as { data?: unknown }).data;
    if (Array.isArray(data)) return Buffer.from(data as number[]).toString('utf8');
    const values: unknown[] = Object.values(v);
    if (values.every((x) => typeof x === 'number')) return Buffer.from(values as number[]).toString('utf8');
  }
  return '';
}

/** A Struct as protobufjs decodes it (`{ fields: { k: { string_value } } }`), or as plain JSON (hand-written configs). */
type StructLike = Decoded<Struct__Output> | { readonly [key: string]: unknown };

/** google.protobuf.Struct -> a string field. */
export function structString(s: StructLike | null | undefined, key: string): string | undefined {
  if (!s) return undefined;
  const fields = 'fields' in s ? s.fields : undefined;
  if (fields && typeof fields === 'object') {
    const v = (fields as { readonly [k: string]: { readonly stringValue?: unknown; readonly string_value?: unknown } | undefined })[key];
    const sv = v?.stringValue ?? v?.string_value;
    return typeof sv === 'string' ? sv : undefined;
  }
  const plain = (s as { readonly [key: string]: unknown })[key];
  return typeof plain === 'string' ? plain : undefined;
}

/** Fails when a field this proxy does not implement is set, naming it: Envoy semantics would silently differ. */
export function refuseSet<T extends object>(m: T, fields: readonly (keyof T & string)[], path: string): void {
  for (const f of fields) {
    const v: unknown = m[f];
    if (v === null || v === undefined || v === false || v === '' || v === 0) continue;
    if (Array.isArray(v) && v.length === 0) continue;
    if (typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length === 0) continue;
    fail(`${path}${path ? '.' : ''}${f}`, 'not supported by the vmesh proxy');
  }
}

export function enumName(v: unknown, path: string, names: readonly string[]): string {
  if (v === null || v === undefined) return names[0] ?? '';
  if (typeof v === 'number') {
    const n = names[v];
    if (n === undefined) fail(path, `unknown enum value ${v}`);
    return n;
  }
  if (typeof v !== 'string') fail(path, `expected an enum name, got ${JSON.stringify(v)}`);
  return v;
}

/** The oneof member that is set: protobufjs names it in the discriminator (`rule`, `identifier`), sparse JSON by its key. */
export function which<M extends object>(m: Partial<M>, discriminator: keyof M, members: readonly (keyof M & string)[]): string | undefined {
  const d: unknown = m[discriminator];
  if (typeof d === 'string') return d;
  return members.find((k) => m[k] !== undefined && m[k] !== null && m[k] !== false);
}
