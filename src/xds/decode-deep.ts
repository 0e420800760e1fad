import { decodeAny } from './protos.js';

function isAny(v: unknown): v is { type_url: string; value: Uint8Array } {
  return (
    !!v &&
    typeof v === 'object' &&
    typeof (v as { type_url?: unknown }).type_url === 'string' &&
    (v as { value?: unknown }).value instanceof Uint8Array
  );
}

/**
 * Decodes a resource and every Any nested in it (typed_config, transport sockets...) into the inline
 * `{ '@type': url, ...fields }` form Envoy's own config dumps use, so it reads and serialises as JSON.
 * An Any of a type that is not loaded is kept as it was.
 */
export function expandAnys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(expandAnys);
  if (isAny(value)) {
    try {
      const inner = decodeAny(value as { type_url: string; value: Uint8Array });
      return { '@type': value.type_url, ...(expandAnys(inner) as Record<string, unknown>) };
    } catch {
      return value;
    }
  }
  if (value && typeof value === 'object' && !(value instanceof Uint8Array)) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, expandAnys(v)]));
  }
  return value;
}

export function decodeAnyDeep(any: { type_url: string; value: Uint8Array }): Record<string, unknown> {
  return expandAnys(decodeAny(any)) as Record<string, unknown>;
}
