import assert from 'node:assert/strict';
import type { Any } from '../../src/generated/google/protobuf/Any.js';
import type { EnvoyMessage } from '../../src/xds/translate/input.js';

/** A translated message read as the plain JSON tree it is (proto field names), the way the tests walk it. */
export type Msg = Record<string, unknown>;

/** A resource's message as a tree: every EnvoyMessage is a plain object of proto fields. */
export function tree(m: EnvoyMessage): Msg {
  return m as Msg;
}

/**
 * A typed config as the translator writes it, `{ '@type', ...fields }`, read as a tree; fails on the packed
 * `{ type_url, value }` form, which the translator never writes.
 */
export function inlineAny(a: Any | null | undefined): Msg & { readonly '@type': string } {
  assert.ok(a && '@type' in a, `not an inline typed config: ${JSON.stringify(a)}`);
  return a as Msg & { readonly '@type': string };
}
