import type { MeshConfig } from '../api/mesh-config.js';
import { formatIssue, RESOURCE_KINDS, type Resource, type ResourceKind, type ValidationIssue } from '../api/resource.js';
import { parseResourceObject } from '../api/resource-parse.js';
import { skipForeign } from '../api/resources/foreign-kinds.js';
import { splitDocumentsOffThread } from '../api/yaml-thread.js';
import { ErrorCode, vmeshError } from '../lib/errors.js';
import {
  type ApplyAction,
  type ApplyDoc,
  type ConfigChange,
  type ConfigView,
  nsOpt,
  type Planned,
  PREFIX,
  planChange,
  type ResourceRef,
  type Stored,
  ValidationFailed,
  warningLine,
  withVersion,
} from './config-plan.js';
import type { Store, StoreOp, StoreReader } from './store.js';

export { type ApplyAction, type ConfigChange, type ConfigView, type ResourceRef, ValidationFailed };

export interface ApplyResult {
  readonly results: ReadonlyArray<{ key: string; action: ApplyAction }>;
  /** Accepted anyway: skipped documents, references not there (yet), where Istio warns; one line each. */
  readonly warnings: readonly string[];
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
  applyObjects(
    docs: ReadonlyArray<{ label: string; value: unknown }>,
    opts: { dryRun?: boolean; defaultNamespace?: string } = {},
  ): Promise<ApplyResult> {
    // Schema errors need no store state: refused before queueing behind other writes, and parsed once.
    const issues: ValidationIssue[] = [];
    const parsed: ApplyDoc[] = docs.map((d) => {
      const r = parseResourceObject(d.value, { source: d.label, ...nsOpt(opts.defaultNamespace) });
      if (!r.ok) issues.push(...r.error);
      return r.ok ? { ...d, parsed: r.value } : d;
    });
    if (issues.length > 0) return Promise.reject(new ValidationFailed(issues));
    return this.update(() => ({ apply: parsed }), opts);
  }

  async delete(kind: ResourceKind, namespace: string, name: string): Promise<void> {
    await this.deleteMany([{ kind, namespace, name }]);
  }

  /** Deletes several resources in one transaction; every one must exist. */
  async deleteMany(items: readonly ResourceRef[]): Promise<void> {
    if (items.length === 0) return;
    await this.update(() => ({ delete: items }));
  }

  /**
   * One read-validate-write step: `plan` sees the resources as the store holds them at the moment of the write
   * (inside the store's transaction, so no other write slips between what it read and what it changes), and
   * says what to apply and delete; the result is validated against that same state. A shared store may run
   * `plan` more than once (after another controller's write): it must only decide, and note what it decided.
   */
  async update(plan: (view: ConfigView) => ConfigChange, opts: { dryRun?: boolean; defaultNamespace?: string } = {}): Promise<ApplyResult> {
    let out: Planned | undefined;
    const compute = (s: StoreReader): StoreOp[] => {
      out = planChange(this.snapshot(s), s, plan, { mesh: this.mesh, ...nsOpt(opts.defaultNamespace) });
      return opts.dryRun ? [] : out.ops;
    };
    // A dry run reads the committed state as it is: nothing to serialise with.
    if (opts.dryRun) compute(this.store);
    else await this.store.txn(compute);
    const done = out as Planned | undefined;
    if (!done) throw vmeshError(ErrorCode.Internal, 'config update: the store ran no transaction');
    if (!opts.dryRun && done.ops.length > 0) {
      for (const k of done.touched) this.reload(k);
      this.changed();
    }
    return { results: done.results, warnings: done.warnings };
  }

  /**
   * The store's resources as typed values: the parsed ones kept in memory where the stored version is the
   * same (resource versions are never reused), parsed again where another writer changed them.
   */
  private snapshot(s: StoreReader): Map<string, Resource> {
    const cur = new Map<string, Resource>();
    for (const { key, value } of s.list(PREFIX)) {
      const k = key.slice(PREFIX.length);
      const stored = value as unknown as Stored;
      const known = this.typed.get(k);
      if (known && known.metadata.resourceVersion === stored.resourceVersion) cur.set(k, known);
      else {
        const r = parseResourceObject(withVersion(stored), { source: `stored ${key}` });
        if (r.ok) cur.set(k, r.value);
      }
    }
    return cur;
  }

  /** Takes the stored resource into memory, or drops it when the store no longer holds it. */
  private reload(key: string): void {
    const s = this.store.get(PREFIX + key) as unknown as Stored | undefined;
    if (!s) {
      this.typed.delete(key);
      return;
    }
    const r = parseResourceObject(withVersion(s), { source: key });
    if (r.ok) this.typed.set(key, r.value);
  }
}
