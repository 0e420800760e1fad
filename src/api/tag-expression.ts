/**
 * The part of CEL that Telemetry metric tag overrides are written in, parsed once (at validation and again when the
 * proxy compiles its stats config) and evaluated per request without any general interpreter: a value is a chain of
 * alternatives `a | b | 'default'` (Istio's "first one present" operator), each an attribute path from Istio's
 * attribute vocabulary, `request.headers['name']`, a string or integer literal, or true/false. Anything else is
 * refused by name before it reaches a proxy, so nothing fails while counting requests. Sizes are bounded up front:
 * a hostile expression costs one length check and a linear scan.
 */

/** Longest expression accepted; Istio's examples are a few dozen characters. */
export const MAX_TAG_EXPRESSION_LENGTH = 512;
/** Most alternatives in one `a | b | ...` chain. */
const MAX_ALTERNATIVES = 8;
/** Longest label value a series takes (cut, not refused): Prometheus keeps every distinct value as a series. */
export const MAX_TAG_VALUE_LENGTH = 256;

/** The attributes the proxy knows when it counts a request or a connection (Istio's attribute names). */
export const TAG_ATTRIBUTES = [
  'request.method',
  'request.host',
  'request.path',
  'request.url_path',
  'request.scheme',
  'request.protocol',
  'request.id',
  'request.useragent',
  'request.referer',
  'request.size',
  'response.code',
  'response.size',
  'source.address',
  'source.port',
  'destination.address',
  'destination.port',
  'connection.mtls',
  'connection.requested_server_name',
  'upstream.address',
  'upstream.port',
  'xds.cluster_name',
  'xds.route_name',
] as const;
export type TagAttribute = (typeof TAG_ATTRIBUTES)[number];
const ATTRIBUTES: ReadonlySet<string> = new Set(TAG_ATTRIBUTES);

export type TagTerm =
  | { readonly kind: 'literal'; readonly value: string }
  | { readonly kind: 'attribute'; readonly name: TagAttribute }
  | { readonly kind: 'header'; readonly name: string }
  /** A bare CEL identifier no attribute declares: it never has a value (Istio's proxy reports `unknown`). */
  | { readonly kind: 'undeclared'; readonly name: string };

/** The alternatives, in order: the first one present gives the value. */
export type TagExpression = readonly TagTerm[];

export type ParseResult = { readonly ok: true; readonly expr: TagExpression } | { readonly ok: false; readonly reason: string };

const fail = (reason: string): ParseResult => ({ ok: false, reason });

/** A quoted CEL string (single or double quotes, `\\` and quote escapes only) starting at `s[i]`. */
function quoted(s: string, i: number): { value: string; end: number } | undefined {
  const q = s[i];
  let out = '';
  for (let j = i + 1; j < s.length; j++) {
    const c = s[j];
    if (c === q) return { value: out, end: j + 1 };
    if (c === '\\') {
      const n = s[j + 1];
      if (n !== '\\' && n !== "'" && n !== '"') return undefined;
      out += n;
      j++;
    } else out += c;
  }
  return undefined;
}

function term(text: string): TagTerm | string {
  const t = text.trim();
  if (t === '') return 'an empty alternative';
  if (t === 'true' || t === 'false') return { kind: 'literal', value: t };
  if (/^-?\d{1,18}$/.test(t)) return { kind: 'literal', value: String(Number(t)) };
  if (t[0] === "'" || t[0] === '"') {
    const q = quoted(t, 0);
    return q && q.end === t.length ? { kind: 'literal', value: q.value } : `a malformed string literal ${t}`;
  }
  const h = /^request\.headers\s*\[\s*/.exec(t);
  if (h) {
    const q = quoted(t, h[0].length);
    if (!q || !/^\s*\]$/.test(t.slice(q.end))) return "request.headers takes one quoted header name, as in request.headers['x-name']";
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(q.value)) return `${JSON.stringify(q.value)} is not a header name`;
    return { kind: 'header', name: q.value.toLowerCase() };
  }
  if (ATTRIBUTES.has(t)) return { kind: 'attribute', name: t as TagAttribute };
  if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(t)) return { kind: 'undeclared', name: t };
  return /^[A-Za-z_][A-Za-z0-9_.]*$/.test(t)
    ? `attribute ${t} is not one vmesh's proxy knows`
    : `${t} is not an attribute, a literal or a | default`;
}

/** Splits on `|` outside quotes; the only operator the subset has. */
function alternatives(s: string): string[] | undefined {
  const parts: string[] = [];
  let start = 0;
  let q: string | undefined;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (q) {
      if (c === '\\') i++;
      else if (c === q) q = undefined;
    } else if (c === "'" || c === '"') q = c;
    else if (c === '|') {
      if (s[i + 1] === '|') return undefined;
      parts.push(s.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(s.slice(start));
  return parts;
}

export function parseTagExpression(source: string): ParseResult {
  if (source.length > MAX_TAG_EXPRESSION_LENGTH) return fail(`longer than ${MAX_TAG_EXPRESSION_LENGTH} characters`);
  if (source.trim() === '') return fail('empty');
  const parts = alternatives(source);
  if (!parts) return fail('|| (logical or) is not part of the subset; a | b takes b when a is absent');
  if (parts.length > MAX_ALTERNATIVES) return fail(`more than ${MAX_ALTERNATIVES} alternatives`);
  const expr: TagTerm[] = [];
  for (const p of parts) {
    const t = term(p);
    if (typeof t === 'string') return fail(t);
    expr.push(t);
  }
  return { ok: true, expr };
}

/** The attribute values one request or connection offers; undefined = absent (the next alternative is tried). */
export interface TagAttributes {
  attribute(name: TagAttribute): string | number | boolean | undefined;
  header(name: string): string | undefined;
}

/** Istio's stats filter reports an expression that yields nothing as `unknown`. */
export const UNKNOWN_TAG_VALUE = 'unknown';

export function evaluateTag(expr: TagExpression, attrs: TagAttributes): string {
  for (const t of expr) {
    const v =
      t.kind === 'literal'
        ? t.value
        : t.kind === 'header'
          ? attrs.header(t.name)
          : t.kind === 'attribute'
            ? attrs.attribute(t.name)
            : undefined;
    if (v === undefined) continue;
    const s = String(v);
    return s.length > MAX_TAG_VALUE_LENGTH ? s.slice(0, MAX_TAG_VALUE_LENGTH) : s;
  }
  return UNKNOWN_TAG_VALUE;
}
