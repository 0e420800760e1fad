import type { MeshConfig } from '../api/mesh-config.js';
import {
  formatIssue,
  RESOURCE_KINDS,
  type Resource,
  type ResourceKind,
  resourceKey,
  type ValidationIssue,
  type ValidationWarning,
} from '../api/resource.js';
import { parseResourceObject } from '../api/resource-parse.js';
import { checkResources } from '../api/resource-validate.js';
import { skipForeign } from '../api/resources/foreign-kinds.js';
import { splitDocumentsOffThread } from '../api/yaml-thread.js';
import { ErrorCode, VmeshError, vmeshError } from '../lib/errors.js';
import type { Store, StoreOp, StoreValue } from '../lib/store.js';

const PREFIX = 'config/';
const VERSION_KEY = 'meta/configVersion';

export type ApplyAction = 'created' | 'updated' | 'unchanged';

export interface ApplyResult {
  readonly results: ReadonlyArray<{ key: string; action: ApplyAction }>;
  /** Accepted anyway: skipped documents, references not there (yet), where Istio warns; one line each. */
  readonly warnings: readonly string[];
}

interface Stored {
  /** The document as the user wrote it (namespace filled in), so `get` shows their YAML back. */
  readonly raw: Record<string, unknown>;
  readonly resourceVersion: string;
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

function warningLine(w: ValidationWarning): string {
  return `${w.code}: ${formatIssue(w)}`;
}

/** Maps a kind as users type it (`virtualservice`, `vs`, `VirtualServices`) to the kind. */
export function resolveKind(text: string): ResourceKind {
  const t = text.toLowerCase().replace(/ies$/, 'y').replace(/s$/, '');
  const short: Record<string, ResourceKind> = {
    vs: 'VirtualService',
    dr: 'DestinationRule',
    se: 'ServiceEntry',
    we: 'WorkloadEntry',
    wg: 'WorkloadGroup',
    gw: 'Gateway',
    pa: 'PeerAuthentication',
    ap: 'AuthorizationPolicy',
  };
  const k = short[text.toLowerCase()] ?? RESOURCE_KINDS.find((x) => x.toLowerCase() === t || x.toLowerCase() === text.toLowerCase());
  if (!k) throw vmeshError(ErrorCode.Usage, `unknown kind "${text}"; want one of ${RESOURCE_KINDS.join(', ')}`);
  return k;
}

/**
 * The config resources the controller holds: validated as a whole, applied all-or-nothing in one store
 * transaction, parsed once and kept typed in memory.
 */
export class ConfigStore {
  private typed = new Map<string, Resource>();
  private readonly listeners = new Set<() => void>();

  constructor(
    private readonly store: Store,
    private readonly mesh: MeshConfig,
  ) {
    for (const { key, value } of store.list(PREFIX)) {
      const s = value as unknown as Stored;
      const r = parseResourceObject(withVersion(s), { source: `stored ${key}` });
      // A stored resource was valid when applied; if a newer vmesh refuses it, refuse to start rather than serve part of the config.
      if (r.ok) this.typed.set(key.slice(PREFIX.length), r.value);
      else throw vmeshError(ErrorCode.InvalidConfig, `stored ${key} no longer validates: ${r.error.map(formatIssue).join('; ')}`);
    }
  }

  /**
   * Reads every resource from the store again: another controller sharing it applied or deleted config. A stored
   * resource this version refuses is left out (and said), since the others keep serving. True when anything changed.
   */
  resync(onInvalid: (key: string, why: string) => void): boolean {
    const next = new Map<string, Resource>();
    for (const { key, value } of this.store.list(PREFIX)) {
      const r = parseResourceObject(withVersion(value as unknown as Stored), { source: `stored ${key}` });
      if (r.ok) next.set(key.slice(PREFIX.length), r.value);
      else onInvalid(key, r.error.map(formatIssue).join('; '));
    }
    const same =
      next.size === this.typed.size &&
      [...next].every(([k, r]) => {
        const cur = this.typed.get(k);
        return (
          cur !== undefined && cur.metadata.resourceVersion === r.metadata.resourceVersion && JSON.stringify(cur) === JSON.stringify(r)
        );
      });
    if (same) return false;
    this.typed = next;
    this.changed();
    return true;
  }

  onChange(cb: () => void): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }

  private changed(): void {
    for (const cb of this.listeners) cb();
  }

  list(kind?: ResourceKind, namespace?: string): Resource[] {
    return [...this.typed.values()].filter(
      (r) => (kind === undefined || r.kind === kind) && (namespace === undefined || r.metadata.namespace === namespace),
    );
  }

  get(kind: ResourceKind, namespace: string, name: string): Resource | undefined {
    return this.typed.get(`${kind}/${namespace}/${name}`);
  }

  /** The stored document as the user wrote it, with its resourceVersion. */
  getRaw(kind: ResourceKind, namespace: string, name: string): Record<string, unknown> | undefined {
    const s = this.store.get(`${PREFIX}${kind}/${namespace}/${name}`) as unknown as Stored | undefined;
    return s ? withVersion(s) : undefined;
  }

  /** Parses and applies a YAML/JSON text batch. */
  async applyText(text: string, opts: { source: string; dryRun?: boolean; defaultNamespace?: string }): Promise<ApplyResult> {
    const { documents, issues } = await splitDocumentsOffThread(text, opts.source);
    if (issues.length > 0) throw new ValidationFailed(issues);
    const { kept, skipped } = skipForeign(documents);
    const r = await this.applyObjects(
      kept.map((d) => ({ label: d.label, value: d.value })),
      opts,
    );
    return { ...r, warnings: [...skipped.map(warningLine), ...r.warnings] };
  }

  /**
   * Applies resource-shaped objects as one batch: each is schema-checked, then the store's resources with
   * the batch in place are checked together; any issue about the batch refuses all of it.
   */
  async applyObjects(
    docs: ReadonlyArray<{ label: string; value: unknown }>,
    opts: { dryRun?: boolean; defaultNamespace?: string } = {},
  ): Promise<ApplyResult> {
    const issues: ValidationIssue[] = [];
    const batch: Array<{ r: Resource; raw: Record<string, unknown> }> = [];
    for (const d of docs) {
      const parsed = parseResourceObject(d.value, {
        source: d.label,
        ...(opts.defaultNamespace !== undefined ? { defaultNamespace: opts.defaultNamespace } : {}),
      });
      if (!parsed.ok) issues.push(...parsed.error);
      else batch.push({ r: parsed.value, raw: normalizeRaw(d.value as Record<string, unknown>, parsed.value) });
    }
    if (issues.length > 0) throw new ValidationFailed(issues);
    const keys = new Set(batch.map((b) => resourceKey(b.r)));
    if (keys.size !== batch.length) {
      const seen = new Set<string>();
      const dup = batch.find((b) => seen.size === seen.add(resourceKey(b.r)).size);
      throw vmeshError(ErrorCode.InvalidResource, `${dup ? resourceKey(dup.r) : 'a resource'} appears twice in one batch`);
    }
    const combined = [...[...this.typed.entries()].filter(([k]) => !keys.has(k)).map(([, r]) => r), ...batch.map((b) => b.r)];
    const checked = checkResources(combined, { mesh: this.mesh, only: keys });
    if (checked.errors.length > 0) throw new ValidationFailed(checked.errors);
    const warnings = checked.warnings.map(warningLine);

    const results = batch.map((b) => {
      const key = resourceKey(b.r);
      const before = this.getRaw(b.r.kind, b.r.metadata.namespace, b.r.metadata.name);
      const action: ApplyAction = !before ? 'created' : sameContent(before, b.raw) ? 'unchanged' : 'updated';
      return { key, action, raw: b.raw };
    });
    if (opts.dryRun || results.every((x) => x.action === 'unchanged'))
      return { results: results.map(({ key, action }) => ({ key, action })), warnings };

    await this.store.txn((s) => {
      let version = Number(s.get(VERSION_KEY) ?? 0);
      const ops: StoreOp[] = [];
      for (const x of results) {
        if (x.action === 'unchanged') continue;
        version++;
        ops.push({ op: 'put', key: PREFIX + x.key, value: { raw: x.raw, resourceVersion: String(version) } as unknown as StoreValue });
      }
      ops.push({ op: 'put', key: VERSION_KEY, value: version });
      return ops;
    });
    for (const b of batch) this.reload(resourceKey(b.r));
    this.changed();
    return { results: results.map(({ key, action }) => ({ key, action })), warnings };
  }

  async delete(kind: ResourceKind, namespace: string, name: string): Promise<void> {
    await this.deleteMany([{ kind, namespace, name }]);
  }

  /** Deletes several resources in one transaction; every one must exist. */
  async deleteMany(items: ReadonlyArray<{ kind: ResourceKind; namespace: string; name: string }>): Promise<void> {
    const keys = items.map((i) => `${i.kind}/${i.namespace}/${i.name}`);
    for (const k of keys) if (!this.typed.has(k)) throw vmeshError(ErrorCode.NotFound, `${k.split('/').join(' ')} not found`);
    if (keys.length === 0) return;
    await this.store.txn(keys.map((k) => ({ op: 'delete' as const, key: PREFIX + k })));
    for (const k of keys) this.typed.delete(k);
    this.changed();
  }

  private reload(key: string): void {
    const s = this.store.get(PREFIX + key) as unknown as Stored | undefined;
    if (!s) return;
    const r = parseResourceObject(withVersion(s), { source: key });
    if (r.ok) this.typed.set(key, r.value);
  }
}

function withVersion(s: Stored): Record<string, unknown> {
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
