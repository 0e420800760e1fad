import { z } from 'zod';
import { ErrorCode } from '../lib/errors.js';
import { Limits } from '../lib/limits.js';
import { err, ok, type Result } from '../lib/result.js';
import { RESOURCE_KINDS, type Resource, type ResourceKind, type ValidationIssue, type ValidationWarning } from './resource.js';
import { GATEWAY_API_GROUP, skipForeign } from './resources/foreign-kinds.js';
import {
  closest,
  describeValue,
  isDns1123Label,
  isDns1123Subdomain,
  labelKeyProblem,
  labelValueProblem,
  quote,
} from './resources/names.js';
import { isKindName, KINDS, type KindName, UNIMPLEMENTED_ISTIO_KINDS } from './resources/registry.js';
import { deepFreeze, notImplemented, stringMap } from './resources/schema-helpers.js';
import { type FieldIssue, parseFields } from './resources/zod-issues.js';
import { parseYamlBounded } from './yaml-bounded.js';

export interface ParseOptions {
  /** Names the input in issues: a file name, `stdin`, `API request`. */
  readonly source: string;
  /** For resources without metadata.namespace; `default` when not given. */
  readonly defaultNamespace?: string;
  /** Receives a warning for each document skipped as not mesh config (Kubernetes kinds); dropped when not given. */
  readonly warnings?: ValidationWarning[];
}

/** One resource-shaped value found in the input, before any checking. */
export interface RawDocument {
  /** `document 2 of bookinfo.yaml` (`, item 3` inside a list). */
  readonly label: string;
  readonly value: unknown;
}

const DEFAULT_NAMESPACE = 'default';
const MAX_ALIASES = 100;
const TOP_LEVEL_FIELDS = new Set(['apiVersion', 'kind', 'metadata', 'spec', 'status']);

// Compile-time proof that the registry and ResourceKind list the same kinds.
type SameKinds = [KindName] extends [ResourceKind] ? ([ResourceKind] extends [KindName] ? true : false) : false;
const sameKinds: SameKinds = true;
void sameKinds;

const metadataSchema = z.strictObject({
  name: z.string(),
  namespace: z.string().optional(),
  labels: stringMap.optional(),
  annotations: stringMap.optional(),
  resourceVersion: z.string().optional(),
  // Written by a Kubernetes API server: accepted so `kubectl get -o yaml` output applies as is, then dropped.
  uid: z.unknown().optional(),
  creationTimestamp: z.unknown().optional(),
  generation: z.unknown().optional(),
  managedFields: z.unknown().optional(),
  selfLink: z.unknown().optional(),
  generateName: notImplemented('give the resource a name'),
  finalizers: notImplemented(),
  ownerReferences: notImplemented(),
  deletionTimestamp: notImplemented(),
  deletionGracePeriodSeconds: notImplemented(),
});

function issue(resource: string, path: string, message: string, unsupported = false): ValidationIssue {
  return { resource, path, message, code: unsupported ? ErrorCode.UnsupportedField : ErrorCode.InvalidResource };
}

function fromFields(resource: string, fields: readonly FieldIssue[]): ValidationIssue[] {
  return fields.map((f) => issue(resource, f.path, f.message, f.unsupported));
}

function isMapping(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Kubernetes reads `field: null` as "not set"; so does vmesh (YAML writes it as a bare `field:`). */
function dropNulls(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(dropNulls);
  if (!isMapping(v)) return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) if (x !== null) out[k] = dropNulls(x);
  return out;
}

export type SplitResult = { documents: RawDocument[]; issues: ValidationIssue[] };

/**
 * Splits YAML (or JSON) text into resource-shaped values. Empty documents are skipped; a top-level list
 * and a Kubernetes `kind: List` contribute their items. Syntax errors become issues naming the line.
 */
export function splitDocuments(text: string, source: string): SplitResult {
  const documents: RawDocument[] = [];
  const issues: ValidationIssue[] = [];
  const parsed = parseYamlBounded(text);
  if (!parsed.ok) {
    const what = parsed.limit === 'depth' ? `nesting deeper than ${parsed.max} levels` : `more than ${parsed.max} YAML documents`;
    issues.push({
      resource: source,
      path: `line ${parsed.line}`,
      message: `${what}: over the limit for one config input (not read further)`,
      code: ErrorCode.LimitExceeded,
    });
    return { documents, issues };
  }
  for (const [n, doc] of parsed.documents.entries()) {
    const label = `document ${n + 1} of ${source}`;
    if (doc.errors.length > 0) {
      for (const e of doc.errors) {
        if (issues.length >= Limits.configIssues) {
          // Garbage makes an error per token (1 MiB: 350k of them, 60 MB of answer); the first ones say enough.
          issues.push(issue(label, '', `more YAML errors not listed (only the first ${Limits.configIssues} are)`));
          return { documents, issues };
        }
        const pos = e.linePos?.[0] ?? parsed.lineCounter.linePos(e.pos[0]);
        const message = (e.message.split('\n')[0] ?? e.message).replace(/ at line \d+, column \d+:?$/, '');
        issues.push(issue(label, pos ? `line ${pos.line}, column ${pos.col}` : '', `YAML syntax error: ${message}`));
      }
      continue;
    }
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: MAX_ALIASES });
    } catch (e) {
      issues.push(issue(label, '', `YAML error: ${e instanceof Error ? e.message : String(e)}`));
      continue;
    }
    if (value === null || value === undefined) continue;
    const items = Array.isArray(value)
      ? value
      : isMapping(value) && value.kind === 'List' && Array.isArray(value.items)
        ? value.items
        : undefined;
    if (!items) documents.push({ label, value });
    else for (const [i, item] of items.entries()) documents.push({ label: `${label}, item ${i + 1}`, value: item });
  }
  return { documents, issues };
}

function checkKind(where: string, raw: unknown, issues: ValidationIssue[]): KindName | undefined {
  if (raw === undefined) issues.push(issue(where, 'kind', `is required; vmesh reads ${RESOURCE_KINDS.join(', ')}`));
  else if (typeof raw !== 'string') issues.push(issue(where, 'kind', `must be a string, got ${describeValue(raw)}`));
  else if (isKindName(raw)) return raw;
  else if (Object.hasOwn(UNIMPLEMENTED_ISTIO_KINDS, raw)) {
    issues.push(issue(where, 'kind', `kind ${raw} is not implemented by vmesh (${UNIMPLEMENTED_ISTIO_KINDS[raw]})`, true));
  } else {
    const hint = closest(raw, RESOURCE_KINDS);
    const known = hint ? `did you mean ${hint}?` : `vmesh reads ${RESOURCE_KINDS.join(', ')}`;
    issues.push(issue(where, 'kind', `unknown kind ${quote(raw)}; ${known}`));
  }
  return undefined;
}

function checkApiVersion(label: string, kind: KindName, raw: unknown, issues: ValidationIssue[]): string | undefined {
  const info = KINDS[kind];
  const served = info.versions.map((v) => `${info.group}/${v}`);
  const want = `use ${served.join(', ')}`;
  if (raw === undefined) issues.push(issue(label, 'apiVersion', `is required; ${want}`));
  else if (typeof raw !== 'string') issues.push(issue(label, 'apiVersion', `must be a string, got ${describeValue(raw)}`));
  else if (!served.includes(raw)) issues.push(issue(label, 'apiVersion', `unknown apiVersion ${quote(raw)} for ${kind}; ${want}`));
  else return raw;
  return undefined;
}

interface Meta {
  readonly name: string;
  readonly namespace: string;
  readonly labels: Record<string, string>;
  readonly annotations: Record<string, string>;
  readonly resourceVersion?: string;
}

function checkMetadata(
  where: string,
  kind: KindName | undefined,
  raw: unknown,
  defaultNs: string,
  issues: ValidationIssue[],
): Meta | undefined {
  if (raw === undefined) {
    issues.push(issue(where, 'metadata', 'is required (at least metadata.name)'));
    return undefined;
  }
  const parsed = parseFields(metadataSchema, raw, ['metadata']);
  if (!parsed.ok) {
    issues.push(...fromFields(where, parsed.issues));
    return undefined;
  }
  const m = parsed.value;
  let good = true;
  const bad = (path: string, message: string) => {
    issues.push(issue(where, path, message));
    good = false;
  };
  if (kind && KINDS[kind].nameIsLabel === true ? !isDns1123Label(m.name) : !isDns1123Subdomain(m.name)) {
    const what = kind && KINDS[kind].nameIsLabel === true ? 'DNS-1123 label: no dots' : 'DNS-1123: lowercase letters, digits, "-" and "."';
    bad('metadata.name', `${quote(m.name)} is not a valid ${kind ?? 'resource'} name (${what})`);
  }
  const namespace = m.namespace ?? defaultNs;
  if (!isDns1123Label(namespace)) bad('metadata.namespace', `${quote(namespace)} is not a valid namespace name (DNS-1123 label)`);
  for (const [k, v] of Object.entries(m.labels ?? {})) {
    const problem = labelKeyProblem(k) ?? labelValueProblem(k, v);
    if (problem) bad(`metadata.labels[${JSON.stringify(k)}]`, problem);
  }
  if (!good) return undefined;
  return {
    name: m.name,
    namespace,
    labels: m.labels ?? {},
    annotations: m.annotations ?? {},
    ...(m.resourceVersion !== undefined ? { resourceVersion: m.resourceVersion } : {}),
  };
}

/**
 * Checks one resource-shaped value (from YAML, JSON or the store) against its kind's schema and returns
 * the typed, deep-frozen resource. `source` names the value in issues until its kind and name are known.
 */
export function parseResourceObject(value: unknown, opts: ParseOptions): Result<Resource, ValidationIssue[]> {
  const where = opts.source;
  const issues: ValidationIssue[] = [];
  if (!isMapping(value)) {
    return err([issue(where, '', `must be a mapping with apiVersion, kind, metadata and spec, got ${describeValue(value)}`)]);
  }
  const doc = dropNulls(value) as Record<string, unknown>;
  if (typeof doc.apiVersion === 'string' && GATEWAY_API_GROUP.test(doc.apiVersion.split('/')[0] ?? '')) {
    const what = `${String(doc.kind)} ${doc.apiVersion}`;
    return err([
      issue(
        where,
        'kind',
        `the Kubernetes Gateway API is not implemented by vmesh (${what}); use networking.istio.io Gateway and VirtualService`,
        true,
      ),
    ]);
  }
  const kind = checkKind(where, doc.kind, issues);
  const meta = checkMetadata(where, kind, doc.metadata, opts.defaultNamespace ?? DEFAULT_NAMESPACE, issues);
  const label = kind && meta ? `${kind} ${meta.namespace}/${meta.name}` : where;
  for (const k of Object.keys(doc)) {
    if (!TOP_LEVEL_FIELDS.has(k))
      issues.push(issue(label, k, `field "${k}" is not supported by vmesh (a resource has apiVersion, kind, metadata and spec)`));
  }
  if (!kind) return err(issues);
  const apiVersion = checkApiVersion(label, kind, doc.apiVersion, issues);
  if (doc.spec === undefined && KINDS[kind].specRequired === true) {
    issues.push(issue(label, 'spec', 'is required'));
    return err(issues);
  }
  // As Istio's CRDs have it, other kinds' missing spec is an empty one: the kind's own rules say what it needs.
  const spec = parseFields(KINDS[kind].schema, doc.spec ?? {}, ['spec']);
  if (!spec.ok) issues.push(...fromFields(label, spec.issues));
  if (issues.length > 0 || !spec.ok || !meta || apiVersion === undefined) return err(issues);
  // `status` is written by Istio's controllers, never by users: read and dropped.
  return ok(deepFreeze({ apiVersion, kind, metadata: meta, spec: spec.value }) as Resource);
}

/**
 * Parses multi-document YAML (or JSON) into resources, checking each against its kind's schema. Returns every
 * issue found in every document, or the resources when there are none. Semantic checks across resources are
 * validateResources' job.
 */
export function parseResources(text: string, opts: ParseOptions): Result<Resource[], ValidationIssue[]> {
  const split = splitDocuments(text, opts.source);
  const issues = split.issues;
  const { kept: documents, skipped } = skipForeign(split.documents);
  opts.warnings?.push(...skipped);
  const resources: Resource[] = [];
  for (const d of documents) {
    const r = parseResourceObject(d.value, {
      source: d.label,
      ...(opts.defaultNamespace !== undefined ? { defaultNamespace: opts.defaultNamespace } : {}),
    });
    if (r.ok) resources.push(r.value);
    else issues.push(...r.error);
  }
  return issues.length > 0 ? err(issues) : ok(resources);
}
