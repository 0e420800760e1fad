/**
 * google.protobuf.Struct <-> plain JSON values, for Node.metadata. protobufjs bundles the well-known
 * types with camelCase field names (stringValue, not string_value) whatever keepCase says, and has no
 * Struct wrapper, so decoded Structs look like `{ fields: { k: { stringValue: 'v', kind: 'stringValue' } } }`.
 */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [k: string]: JsonValue };

interface StructMessage {
  fields: Record<string, ValueMessage>;
}
interface ValueMessage {
  nullValue?: 'NULL_VALUE' | 0;
  numberValue?: number;
  stringValue?: string;
  boolValue?: boolean;
  structValue?: StructMessage;
  listValue?: { values: ValueMessage[] };
}

export function toStruct(obj: Readonly<Record<string, unknown>>): StructMessage {
  const fields: Record<string, ValueMessage> = {};
  for (const [k, v] of Object.entries(obj)) {
    if (v !== undefined) fields[k] = toValue(v);
  }
  return { fields };
}

function toValue(v: unknown): ValueMessage {
  if (v === null || v === undefined) return { nullValue: 'NULL_VALUE' };
  if (typeof v === 'number') return { numberValue: v };
  if (typeof v === 'string') return { stringValue: v };
  if (typeof v === 'boolean') return { boolValue: v };
  if (Array.isArray(v)) return { listValue: { values: v.map(toValue) } };
  if (typeof v === 'object') return { structValue: toStruct(v as Record<string, unknown>) };
  return { stringValue: String(v) };
}

export function fromStruct(s: unknown): Record<string, JsonValue> {
  const out: Record<string, JsonValue> = {};
  const fields = (s as Partial<StructMessage> | null | undefined)?.fields;
  if (!fields || typeof fields !== 'object') return out;
  for (const [k, v] of Object.entries(fields)) out[k] = fromValue(v);
  return out;
}

function fromValue(v: ValueMessage | null | undefined): JsonValue {
  if (!v) return null;
  if (v.structValue != null) return fromStruct(v.structValue);
  if (v.listValue != null) return (v.listValue.values ?? []).map(fromValue);
  if (v.stringValue != null) return v.stringValue;
  if (v.numberValue != null) return v.numberValue;
  if (v.boolValue != null) return v.boolValue;
  return null;
}
