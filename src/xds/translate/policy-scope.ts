import { isServiceRef, type TargetRef, targetRefsOf } from '../../api/resources/target-ref.js';
import type { TranslateInput } from './input.js';

/** What the security policies (AuthorizationPolicy, RequestAuthentication) share for choosing where they apply. */
export interface ScopedPolicy {
  readonly metadata: { readonly namespace: string; readonly name: string };
  readonly spec: {
    readonly selector?: { readonly matchLabels?: Readonly<Record<string, string>> } | undefined;
    readonly targetRef?: Readonly<TargetRef> | undefined;
    readonly targetRefs?: readonly Readonly<TargetRef>[] | undefined;
  };
}

/** What a policy is applied to: a workload (inbound), or a gateway node by its namespace and labels. */
export interface PolicySubject {
  readonly namespace: string;
  readonly labels: Readonly<Record<string, string>>;
  /** The workload's name; absent for a gateway, which no service targetRef selects. */
  readonly workload?: string;
}

/** A workload serves the named service of the policy's namespace (a targetRef of kind Service or ServiceEntry). */
function servesService(input: TranslateInput, namespace: string, name: string, subject: PolicySubject): boolean {
  if (subject.workload === undefined) return false;
  for (const s of input.model.services.values()) {
    if (s.namespace !== namespace || s.name !== name) continue;
    if (s.endpoints.some((e) => e.namespace === subject.namespace && e.workload === subject.workload)) return true;
  }
  return false;
}

/**
 * Istio's scoping: a policy in the root namespace without selector applies mesh-wide, one in another namespace
 * to that namespace; a selector narrows it to matching labels; target references attach it to the workloads
 * of the named services (in the policy's own namespace).
 */
export function policyApplies(input: TranslateInput, p: ScopedPolicy, workload: PolicySubject): boolean {
  const ns = p.metadata.namespace;
  if (ns !== workload.namespace && ns !== input.mesh.rootNamespace) return false;
  const refs = targetRefsOf(p.spec);
  if (refs.length > 0) return refs.some((r) => isServiceRef(r) && servesService(input, ns, r.name, workload));
  return Object.entries(p.spec.selector?.matchLabels ?? {}).every(([k, v]) => workload.labels[k] === v);
}

/** The policies of `all` that apply to a workload, sorted by namespace/name (Istio's order is by creation; names are stable). */
export function policiesApplying<P extends ScopedPolicy>(input: TranslateInput, all: readonly P[], workload: PolicySubject): P[] {
  const key = (p: P) => `${p.metadata.namespace}/${p.metadata.name}`;
  return all.filter((p) => policyApplies(input, p, workload)).sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}
