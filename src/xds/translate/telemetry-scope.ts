import type { Resource } from '../../api/resource.js';
import type { TranslateInput } from './input.js';

type Telemetry = Resource<'Telemetry'>;

/** Who reports: the client side (outbound, gateways) or the server side (inbound) of a workload. */
export interface TelemetryScope {
  readonly mode: 'CLIENT' | 'SERVER';
  readonly namespace: string;
  readonly labels: Readonly<Record<string, string>>;
}

export function telemetryLabel(t: Telemetry): string {
  return `Telemetry ${t.metadata.namespace}/${t.metadata.name}`;
}

function byName(a: Telemetry, b: Telemetry): number {
  return a.metadata.name < b.metadata.name ? -1 : a.metadata.name > b.metadata.name ? 1 : 0;
}

/**
 * The Telemetry resources that set `field` for a scope, least specific first: the root namespace's, the
 * namespace's, then a workload-selecting one (each level the first by name), as Istio layers them.
 */
export function telemetryChain(input: TranslateInput, scope: TelemetryScope, field: 'accessLogging' | 'tracing' | 'metrics'): Telemetry[] {
  const withField = input.config.telemetries.filter((t) => t.spec[field] !== undefined);
  const hasSelector = (t: Telemetry) => Object.keys(t.spec.selector?.matchLabels ?? {}).length > 0;
  const nsWide = (ns: string) => withField.filter((t) => t.metadata.namespace === ns && !hasSelector(t)).sort(byName)[0];
  const selecting = withField
    .filter((t) => t.metadata.namespace === scope.namespace && hasSelector(t))
    .filter((t) => Object.entries(t.spec.selector?.matchLabels ?? {}).every(([k, v]) => scope.labels[k] === v))
    .sort(byName)[0];
  const root = nsWide(input.mesh.rootNamespace);
  const ns = scope.namespace === input.mesh.rootNamespace ? undefined : nsWide(scope.namespace);
  return [root, ns, selecting].filter((t): t is Telemetry => t !== undefined);
}
