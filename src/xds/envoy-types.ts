import type { Any__Output } from '../generated/google/protobuf/Any.js';

/**
 * Envoy and vmesh messages as vmesh's codec renders them, over the types `npm run generate` makes in src/generated
 * (proto-loader-gen-types, with the options of protos.ts's decoder: proto field names, 64-bit integers and enums as
 * strings, defaults filled in, the set oneof member named).
 *
 * Writing (the translator): the generated input types, e.g. `Cluster`; their `Any` already admits the inline
 * `{ '@type': url, ...fields }` form protobufjs encodes. Reading (the proxy's compile step): `Decoded<Cluster__Output>`,
 * the decoder's output after `expandAnys`, where every Any is inline, or kept as `{ type_url, value }` when its type
 * is not loaded. Hand-written or cached configs may be sparse: readers treat a missing field as its default.
 */

/** An Any written inline, as Envoy's JSON and vmesh's decoded configs carry it. */
export interface InlineAny {
  readonly '@type': string;
  readonly [field: string]: unknown;
}

/** What a decoded Any field holds: inline, or as it came when its type is not loaded. */
export type DecodedAny = InlineAny | Any__Output;

type IsAny<T> = [keyof T] extends ['type_url' | 'value'] ? (['type_url' | 'value'] extends [keyof T] ? true : false) : false;

/** A generated `__Output` type with its Any fields as `expandAnys` leaves them. */
export type Decoded<T> = T extends string | number | boolean | bigint | null | undefined | Uint8Array
  ? T
  : T extends readonly (infer U)[]
    ? readonly Decoded<U>[]
    : IsAny<T> extends true
      ? DecodedAny
      : { readonly [K in keyof T]: Decoded<T[K]> };
