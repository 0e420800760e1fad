import { type Document, isMap, isScalar, Scalar, visit } from 'yaml';

/**
 * Reads `[1.2.3.4, 001:db8::]` as Kubernetes does: the second item is the string `001:db8::`.
 *
 * In a flow collection, YAML 1.2 (the yaml package) ends a plain scalar at a `:` followed by `,` or `]`, so the item
 * becomes the one-key mapping `{"001:db8:": null}`. go-yaml, which Kubernetes and istioctl read YAML with, ends a
 * plain scalar only at `:` plus a blank, so the colon is part of the string, and Istio's own test data relies on
 * it. Only that exact shape is rewritten: an item of a flow sequence that is a one-pair mapping whose key is a
 * one-line plain scalar, immediately followed by `:`, and immediately by `,` or `]` -- no value, no blank, nothing
 * else. `[a: ]`, `[a: b]`, `["a":]` and `[? a]` stay mappings, as they are in go-yaml.
 */
export function readColonEndedFlowItems(doc: Document.Parsed, text: string): void {
  visit(doc, {
    Seq(_, seq) {
      if (!seq.flow) return;
      seq.items = seq.items.map((item) => stringOf(item, text) ?? item);
    },
  });
}

function stringOf(item: unknown, text: string): Scalar | undefined {
  if (!isMap(item) || !item.flow || item.items.length !== 1 || !item.range) return undefined;
  const pair = item.items[0];
  const { key, value } = pair ?? {};
  if (!isScalar(key) || key.type !== Scalar.PLAIN || !key.range) return undefined;
  if (!isScalar(value) || value.value !== null || value.source !== '') return undefined;
  const [start, end] = key.range;
  const written = text.slice(start, end);
  if (written.length === 0 || /[\r\n]/.test(written)) return undefined;
  if (text[end] !== ':' || (text[end + 1] !== ',' && text[end + 1] !== ']')) return undefined;
  if (item.range[0] !== start || item.range[1] !== end + 1) return undefined;
  const s = new Scalar(`${written}:`);
  s.type = Scalar.PLAIN;
  s.range = [start, end + 1, end + 1];
  return s;
}
