import { z } from 'zod';
import type { Checker } from './checker.js';
import { quote } from './names.js';

/**
 * Istio's policy `targetRef(s)`: a policy attached to a service rather than to workload labels. vmesh has one
 * proxy per host in front of every workload, so a Service (or ServiceEntry) reference selects the workloads that
 * serve it (what a waypoint enforces for a service in Istio's ambient mode). Gateway API gateways do not exist in
 * vmesh: such references are refused by name.
 */
export const targetRef = z.strictObject({
  group: z.string().optional(),
  kind: z.string(),
  name: z.string(),
  namespace: z.string().optional(),
});

export type TargetRef = z.output<typeof targetRef>;

const GROUP = /^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const KIND = /^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$/;

/** The (group, kind) pairs vmesh attaches to: a service by its short name in the policy's namespace. */
export function isServiceRef(r: Pick<TargetRef, 'group' | 'kind'>): boolean {
  const g = r.group ?? '';
  return (g === '' && r.kind === 'Service') || (g === 'networking.istio.io' && r.kind === 'ServiceEntry');
}

interface WithTargets {
  readonly selector?: unknown;
  readonly targetRef?: Readonly<TargetRef> | undefined;
  readonly targetRefs?: readonly Readonly<TargetRef>[] | undefined;
}

/** The policy's target references, one list whichever field named them. */
export function targetRefsOf(spec: WithTargets): readonly Readonly<TargetRef>[] {
  return spec.targetRefs ?? (spec.targetRef ? [spec.targetRef] : []);
}

export function checkTargetRefs(spec: WithTargets, c: Checker): void {
  const set = (['selector', 'targetRef', 'targetRefs'] as const).filter((k) => spec[k] !== undefined);
  if (set.length > 1) c.report(`spec.${set[1]}`, `only one of targetRefs or selector can be set (found ${set.join(' and ')})`);
  const check = (path: string, r: Readonly<TargetRef>) => {
    if (!GROUP.test(r.group ?? '')) c.report(`${path}.group`, `${quote(r.group ?? '')} is not an API group name`);
    if (!KIND.test(r.kind)) c.report(`${path}.kind`, `${quote(r.kind)} is not a kind name`);
    if (r.name === '') c.report(`${path}.name`, 'must not be an empty string');
    if (r.namespace !== undefined && r.namespace !== c.namespace) {
      c.report(
        `${path}.namespace`,
        `cross namespace referencing is not currently supported (${quote(r.namespace)} is not ${quote(c.namespace)})`,
      );
    }
    if (GROUP.test(r.group ?? '') && KIND.test(r.kind) && !isServiceRef(r)) {
      c.unsupported(
        path,
        `a target of kind ${r.group ? `${r.group}/` : ''}${r.kind} is not implemented by vmesh (it has no Gateway API gateways or waypoints); target a Service or ServiceEntry, or use selector`,
      );
    }
  };
  if (spec.targetRef) check('spec.targetRef', spec.targetRef);
  spec.targetRefs?.forEach((r, i) => {
    check(`spec.targetRefs[${i}]`, r);
  });
}
