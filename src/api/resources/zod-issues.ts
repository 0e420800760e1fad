import type { z } from 'zod';
import { ISTIO_FIELD_NAMES } from './istio-fields.js';
import { closest, describeValue } from './names.js';
import { UNSUPPORTED_PARAM } from './schema-helpers.js';

/** A schema problem at one field, in vmesh's words rather than zod's. */
export interface FieldIssue {
  readonly path: string;
  readonly message: string;
  /** The field or value exists in Istio but vmesh does not implement it. */
  readonly unsupported: boolean;
}

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** `spec.http[0].match[1].headers["x-user"]` */
export function formatPath(segments: readonly PropertyKey[]): string {
  let out = '';
  for (const s of segments) {
    if (typeof s === 'number') out += `[${s}]`;
    else if (typeof s === 'string' && IDENT.test(s)) out += out === '' ? s : `.${s}`;
    else out += `[${JSON.stringify(String(s))}]`;
  }
  return out;
}

const EXPECTED: Readonly<Record<string, string>> = {
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'true or false',
  object: 'a mapping',
  record: 'a mapping',
  array: 'a list',
};

function knownKeys(inst: unknown): string[] {
  const shape = (inst as { _zod?: { def?: { shape?: Record<string, unknown> } } } | undefined)?._zod?.def?.shape;
  return shape ? Object.keys(shape) : [];
}

function bound(kind: 'least' | 'most', origin: string, limit: unknown, inclusive: boolean | undefined): string {
  const n = Number(limit);
  if (origin === 'array' || origin === 'set') return `must have at ${kind} ${n} item${n === 1 ? '' : 's'}`;
  if (origin === 'string') return kind === 'least' && n === 1 ? 'must not be empty' : `must have at ${kind} ${n} characters`;
  if (inclusive === false) return kind === 'least' ? `must be greater than ${n}` : `must be less than ${n}`;
  return `must be at ${kind} ${n}`;
}

/** The per-parse error map: zod's raw issue, still holding the schema (`inst`), to one-line vmesh text. */
function messageOf(iss: z.core.$ZodRawIssue): string {
  switch (iss.code) {
    case 'invalid_type':
      // Unimplemented fields get their text once the field name is known (see toFieldIssues).
      if (iss.expected === 'never') return '';
      if (iss.input === undefined) return 'is required';
      return `must be ${EXPECTED[iss.expected] ?? iss.expected}, got ${describeValue(iss.input)}`;
    case 'too_small':
      return bound('least', iss.origin, iss.minimum, iss.inclusive);
    case 'too_big':
      return bound('most', iss.origin, iss.maximum, iss.inclusive);
    case 'invalid_value': {
      const values = iss.values.map(String);
      const hint = typeof iss.input === 'string' ? closest(iss.input, values) : undefined;
      return `${describeValue(iss.input)} is not one of ${values.join(', ')}${hint ? ` (did you mean ${hint}?)` : ''}`;
    }
    case 'unrecognized_keys': {
      // One issue names several keys; each gets its own line, split again in toFieldIssues.
      const known = knownKeys(iss.inst);
      return iss.keys
        .map((k) => {
          const hint = closest(k, known);
          // A name close to a field that belongs here is a typo; an Istio field name otherwise is a feature.
          if (!hint && ISTIO_FIELD_NAMES.has(k)) return `field "${k}" ${ISTIO_FIELD}${ISTIO_HINT}`;
          return `field "${k}" is not supported by vmesh${hint ? ` (did you mean "${hint}"?)` : ''}`;
        })
        .join('\n');
    }
    case 'invalid_format':
      return `is not a valid ${iss.format}`;
    case 'invalid_union':
      return 'does not match any of the allowed forms';
    default:
      return iss.message ?? 'is invalid';
  }
}

const ISTIO_FIELD = 'is an Istio field that vmesh does not implement here';
/** What to do about an Istio field vmesh does not implement. */
const ISTIO_HINT = ' (remove it, or see the README for what vmesh implements)';

function lastKey(path: readonly PropertyKey[]): string {
  for (let i = path.length - 1; i >= 0; i--) {
    const s = path[i];
    if (typeof s === 'string') return s;
  }
  return '';
}

function toFieldIssues(issues: readonly z.core.$ZodIssue[], prefix: readonly PropertyKey[]): FieldIssue[] {
  const out: FieldIssue[] = [];
  for (const i of issues) {
    const path = [...prefix, ...i.path];
    if (i.code === 'unrecognized_keys') {
      const lines = i.message.split('\n');
      i.keys.forEach((k, n) => {
        out.push({
          path: formatPath([...path, k]),
          message: lines[n] ?? `field "${k}" is not supported by vmesh`,
          unsupported: lines[n]?.includes(ISTIO_FIELD) === true,
        });
      });
    } else if (i.code === 'invalid_type' && i.expected === 'never') {
      const hint = i.message ? ` (${i.message})` : '';
      out.push({ path: formatPath(path), message: `field "${lastKey(path)}" is not implemented by vmesh${hint}`, unsupported: true });
    } else {
      const unsupported = i.code === 'custom' && i.params?.[UNSUPPORTED_PARAM] === true;
      out.push({ path: formatPath(path), message: i.message, unsupported });
    }
  }
  return out;
}

export type ParseFields<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly issues: readonly FieldIssue[] };

/** Parses `input` with `schema`, reporting problems with paths under `prefix` (e.g. `['spec']`). */
export function parseFields<S extends z.ZodType>(schema: S, input: unknown, prefix: readonly PropertyKey[]): ParseFields<z.output<S>> {
  const r = schema.safeParse(input, { error: messageOf, reportInput: true });
  if (r.success) return { ok: true, value: r.data };
  return { ok: false, issues: toFieldIssues(r.error.issues, prefix) };
}
