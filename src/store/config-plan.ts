import type { MeshConfig } from '../api/mesh-config.js';
import {
  formatIssue,
  type Resource,
  type ResourceKind,
  resourceKey,
  type ValidationIssue,
  type ValidationWarning,
} from '../api/resource.js';
import { parseResourceObject } from '../api/resource-parse.js';
import { checkResources } from '../api/resource-validate.js';
import { ErrorCode, VmeshError, vmeshError } from '../lib/errors.js';
import type { StoreOp, StoreReader, StoreValue } from './store.js';

export const PREFIX = 'config/';
const VERSION_KEY = 'meta/configVersion';

export type ApplyAction = 'created' | 'updated' | 'unchanged';

export interface ResourceRef {
  readonly kind: ResourceKind;
  readonly namespace: string;
  readonly name: string;
}

/** A document to apply; `parsed` is its parse when the caller already has it (a shared store may plan again). */
export interface ApplyDoc {
  readonly label: string;
  readonly value: unknown;
  readonly parsed?: Resource;
}

/** The resources as one transaction sees them. */
export interface ConfigView {
  get(kind: ResourceKind, namespace: string, name: string): Resource | undefined;
  list(kind?: ResourceKind, namespace?: string): Resource[];
}

/** What one transaction changes: documents to apply (validated with the rest) and resources to delete (each must exist). */
export interface ConfigChange {
  readonly apply?: readonly ApplyDoc[];
  readonly delete?: readonly ResourceRef[];
}

export interface Stored {
  /** The document as the user wrote it (namespace filled in), so `get` shows their YAML back. */
  readonly raw: Record<string, unknown>;
  readonly resourceVersion: string;
}

export interface Planned {
  readonly ops: StoreOp[];
  readonly results: Array<{ key: string; action: ApplyAction }>;
  readonly warnings: string[];
  /** Resource keys (without the prefix) the operations write or delete. */
  readonly touched: string[];
}

/** A rejected batch: every issue, each one line; the error's message is the first. */
export class ValidationFailed extends VmeshError {
  constructor(readonly issues: readonly ValidationIssue[]) {
    const first = issues[0];
    super(
      first?.code ?? ErrorCode.InvalidResource,
      first ? `${formatIssue(first)}${issues.length > 1 ? ` (and ${issues.length - 1} more)` : ''}` : 'invalid',
      { issues: issues.map((i) => `${i.code}: ${formatIssue(i)}`) },
    );
  }
}

export function warningLine(w: ValidationWarning): string {
  return `${w.code}: ${formatIssue(w)}`;
}

export const nsOpt = (ns: string | undefined) => (ns !== undefined ? { defaultNamespace: ns } : {});

/**
 * Decides a change against `current` (the resources of the state `s` holds) and validates it against that same
 * state: the store operations, the per-resource outcome, the warnings. Throws what refuses it.
 */
export function planChange(
  current: ReadonlyMap<string, Resource>,
  s: StoreReader,
  plan: (view: ConfigView) => ConfigChange,
  opts: { mesh: MeshConfig; defaultNamespace?: string },
): Planned {
  const change = plan(viewOf(current));
  const issues: ValidationIssue[] = [];
  const batch: Array<{ r: Resource; raw: Record<string, unknown> }> = [];
  for (const d of change.apply ?? []) {
    const parsed = d.parsed
      ? { ok: true as const, value: d.parsed }
      : parseResourceObject(d.value, { source: d.label, ...nsOpt(opts.defaultNamespace) });
    if (!parsed.ok) issues.push(...parsed.error);
    else batch.push({ r: parsed.value, raw: normalizeRaw(d.value as Record<string, unknown>, parsed.value) });
  }
  if (issues.length > 0) throw new ValidationFailed(issues);
  const keys = new Set<string>();
  for (const b of batch) {
    const k = resourceKey(b.r);
    if (keys.has(k)) throw vmeshError(ErrorCode.InvalidResource, `${k} appears twice in one batch`);
    keys.add(k);
  }
  const deletes = (change.delete ?? []).map((i) => `${i.kind}/${i.namespace}/${i.name}`);
  for (const k of deletes) {
    if (!current.has(k)) throw vmeshError(ErrorCode.NotFound, `${k.split('/').join(' ')} not found`);
    if (keys.has(k)) throw vmeshError(ErrorCode.InvalidResource, `${k} is both applied and deleted in one batch`);
  }
  let warnings: string[] = [];
  if (batch.length > 0) {
    const gone = new Set(deletes);
    const combined = [...[...current].filter(([k]) => !keys.has(k) && !gone.has(k)).map(([, r]) => r), ...batch.map((b) => b.r)];
    const checked = checkResources(combined, { mesh: opts.mesh, only: keys });
    if (checked.errors.length > 0) throw new ValidationFailed(checked.errors);
    warnings = checked.warnings.map(warningLine);
  }

  let version = Number(s.get(VERSION_KEY) ?? 0);
  const ops: StoreOp[] = [];
  const touched: string[] = [];
  const results = batch.map((b) => {
    const key = resourceKey(b.r);
    const before = s.get(PREFIX + key) as unknown as Stored | undefined;
    const action: ApplyAction = !before ? 'created' : sameContent(withVersion(before), b.raw) ? 'unchanged' : 'updated';
    if (action !== 'unchanged') {
      version++;
      ops.push({ op: 'put', key: PREFIX + key, value: { raw: b.raw, resourceVersion: String(version) } as unknown as StoreValue });
      touched.push(key);
    }
    return { key, action };
  });
  for (const k of deletes) {
    ops.push({ op: 'delete', key: PREFIX + k });
    touched.push(k);
  }
  if (ops.length > 0) ops.push({ op: 'put', key: VERSION_KEY, value: version });
  return { ops, results, warnings, touched };
}

function viewOf(current: ReadonlyMap<string, Resource>): ConfigView {
  return {
    get: (kind, namespace, name) => current.get(`${kind}/${namespace}/${name}`),
    list: (kind, namespace) =>
      [...current.values()].filter(
        (r) => (kind === undefined || r.kind === kind) && (namespace === undefined || r.metadata.namespace === namespace),
      ),
  };
}

export function withVersion(s: Stored): Record<string, unknown> {
  const meta = { ...((s.raw.metadata as Record<string, unknown>) ?? {}), resourceVersion: s.resourceVersion };
  return { ...s.raw, metadata: meta };
}

/** The user's document with the namespace decided and server-owned fields dropped. */
function normalizeRaw(raw: Record<string, unknown>, r: Resource): Record<string, unknown> {
  const meta: Record<string, unknown> = { name: r.metadata.name, namespace: r.metadata.namespace };
  if (Object.keys(r.metadata.labels).length > 0) meta.labels = r.metadata.labels;
  if (Object.keys(r.metadata.annotations).length > 0) meta.annotations = r.metadata.annotations;
  return JSON.parse(JSON.stringify({ apiVersion: raw.apiVersion, kind: raw.kind, metadata: meta, spec: raw.spec }));
}

function sameContent(a: Record<string, unknown>, b: Record<string, unknown>): boolean {
  const strip = (x: Record<string, unknown>) => {
    const { resourceVersion: _v, ...meta } = (x.metadata as Record<string, unknown>) ?? {};
    return JSON.stringify({ ...x, metadata: meta });
  };
  return strip(a) === strip(b);
}
