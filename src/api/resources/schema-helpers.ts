import { z } from 'zod';
import { parseDuration } from './duration.js';
import { describeValue } from './names.js';

/**
 * Building blocks shared by the resource schemas. Schemas check shape: types, required fields, enums,
 * "one of" groups, durations. Rules about values (host syntax, port ranges, regexes, cross-field and
 * cross-resource consistency) are the semantic checks in each kind's `check*` function.
 */

/** Marks a custom zod issue as "Istio has this, vmesh does not implement it" (VMESH_ERR_UNSUPPORTED_FIELD). */
export const UNSUPPORTED_PARAM = 'vmeshUnsupported';

export type DeepReadonly<T> = T extends (infer E)[]
  ? readonly DeepReadonly<E>[]
  : T extends object
    ? { readonly [K in keyof T]: DeepReadonly<T[K]> }
    : T;

/**
 * A field that exists in Istio's API but that vmesh does not implement: refused whenever present, so
 * a config never half-applies. The hint says what to use instead.
 */
export function notImplemented(hint?: string) {
  return (hint === undefined ? z.never() : z.never({ error: hint })).optional();
}

export function addUnsupported(ctx: z.RefinementCtx, message: string, path?: PropertyKey[]): void {
  ctx.addIssue({ code: 'custom', message, params: { [UNSUPPORTED_PARAM]: true }, ...(path ? { path } : {}) });
}

/** An enum whose listed values exist in Istio but are refused by vmesh as not implemented. */
export function enumOf<const T extends readonly [string, ...string[]]>(values: T, unimplemented: readonly T[number][] = [], hint = '') {
  return z.enum(values).superRefine((v, ctx) => {
    if (unimplemented.includes(v)) addUnsupported(ctx, `value ${v} is not implemented by vmesh${hint ? ` (${hint})` : ''}`);
  });
}

/**
 * Istio's "oneof" groups: at most one of `keys` may be set, and with `required` exactly one.
 * Use with `.superRefine(oneOf([...]))` on a strict object.
 */
export function oneOf<T extends object>(keys: readonly (keyof T & string)[], opts: { required: boolean }) {
  return (value: T, ctx: z.RefinementCtx): void => {
    const set = keys.filter((k) => value[k] !== undefined);
    if (set.length > 1) {
      ctx.addIssue({ code: 'custom', message: `set only one of ${keys.join(', ')} (found ${set.join(' and ')})` });
    } else if (opts.required && set.length === 0) {
      ctx.addIssue({ code: 'custom', message: `one of ${keys.join(', ')} is required` });
    }
  };
}

/**
 * A duration string as Istio writes it, converted to milliseconds. Like Istio, zero is refused
 * unless it has a meaning for the field (e.g. a route timeout of "0s" disables the timeout).
 */
export function duration(opts: { allowZero?: boolean } = {}) {
  const wrongType = (iss: { input?: unknown }) =>
    iss.input === undefined ? undefined : `must be a duration such as "1s" or "100ms", got ${describeValue(iss.input)}`;
  return z.string({ error: wrongType }).transform((text, ctx) => {
    const r = parseDuration(text);
    if (!r.ok) {
      ctx.addIssue({ code: 'custom', message: r.error });
      return z.NEVER;
    }
    if (r.value === 0 && !opts.allowZero) {
      ctx.addIssue({ code: 'custom', message: `${JSON.stringify(text)} is zero; the duration must be at least 1ms` });
      return z.NEVER;
    }
    return r.value;
  });
}

export const str = z.string();
export const bool = z.boolean();
export const int = z.number().int();
export const uint = z.number().int().min(0);
export const num = z.number();
export const strings = z.array(z.string());
export const stringMap = z.record(z.string(), z.string());

/** `selector: { matchLabels }` of security.istio.io, telemetry.istio.io and vmesh.io kinds. */
export const matchLabelsSelector = z.strictObject({ matchLabels: stringMap.optional() });

/** `workloadSelector: { labels }` of networking.istio.io kinds. */
export const labelsSelector = z.strictObject({ labels: stringMap.optional() });

/** Istio's `Percent`: a double in 0..100. */
export const percent = z.strictObject({ value: z.number() });

export const portSelector = z.strictObject({ number: int });

const matchShape = { exact: str.optional(), prefix: str.optional(), regex: str.optional() };

/** A StringMatch where a match type is required (uri, scheme, method, authority, CORS origins). */
export const stringMatch = z.strictObject(matchShape).superRefine(oneOf(['exact', 'prefix', 'regex'], { required: true }));

/** A StringMatch for headers and query parameters: `{}` tests presence. */
export const presenceMatch = z.strictObject(matchShape).superRefine(oneOf(['exact', 'prefix', 'regex'], { required: false }));

export type StringMatch = z.output<typeof presenceMatch>;

/** Freezes a plain JSON-like value in place, all the way down. */
export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
