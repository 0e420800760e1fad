import type { TelemetrySpec } from '../../api/resources/telemetry.js';
import type { Any } from '../../generated/google/protobuf/Any.js';
import { toStruct } from '../struct.js';
import type { TranslateInput } from './input.js';
import { type TelemetryScope, telemetryChain } from './telemetry-scope.js';
import { typedConfig } from './typed-config.js';

/**
 * Metric overrides from Telemetry resources (`metrics[].overrides`), merged as Istio merges them, into the config
 * of Istio's stats filter (`istio.stats`, a `stats.PluginConfig`). That proto is not in Envoy's API set, so it
 * travels as an `xds.type.v3.TypedStruct` naming it, with the config as a JSON struct, as Istio's own stats plugin
 * config does. No overrides for a scope: no filter, and the proxy reports Istio's standard metrics as always.
 */

export const STATS_FILTER = 'istio.stats';
export const STATS_PLUGIN_CONFIG_URL = 'type.googleapis.com/stats.PluginConfig';

type Override = NonNullable<NonNullable<TelemetrySpec['metrics']>[number]['overrides']>[number];
type Metric = NonNullable<NonNullable<Override['match']>['metric']>;

/** Istio's metric enum names and the Prometheus names (after the `istio_` prefix) its stats filter reports. */
export const PROMETHEUS_METRIC: Readonly<Record<Exclude<Metric, 'ALL_METRICS'>, string>> = {
  REQUEST_COUNT: 'requests_total',
  REQUEST_DURATION: 'request_duration_milliseconds',
  REQUEST_SIZE: 'request_bytes',
  RESPONSE_SIZE: 'response_bytes',
  TCP_OPENED_CONNECTIONS: 'tcp_connections_opened_total',
  TCP_CLOSED_CONNECTIONS: 'tcp_connections_closed_total',
  TCP_SENT_BYTES: 'tcp_sent_bytes_total',
  TCP_RECEIVED_BYTES: 'tcp_received_bytes_total',
  GRPC_REQUEST_MESSAGES: 'request_messages_total',
  GRPC_RESPONSE_MESSAGES: 'response_messages_total',
};
const ALL = Object.keys(PROMETHEUS_METRIC).sort() as Array<keyof typeof PROMETHEUS_METRIC>;

interface MetricState {
  disabled?: boolean;
  /** Tag -> expression (UPSERT) or null (REMOVE); later overrides replace earlier ones tag by tag. */
  readonly tags: Map<string, string | null>;
}

/** One entry of stats.PluginConfig's `metrics`. */
export interface StatsMetricConfig {
  readonly name: string;
  readonly dimensions: Record<string, string>;
  readonly tags_to_remove?: string[];
  readonly drop?: boolean;
}

/**
 * Istio's mergeMetrics for one mode: root namespace, namespace, then workload Telemetry, their `metrics` entries
 * and overrides in order. `ALL_METRICS` (or no metric) disabled turns the mode's metrics off until a later override
 * for that mode touches any metric; otherwise each override updates the metrics it matches: `disabled` when set,
 * tags merged by name. A custom metric keeps its own name (validation warned it has no effect in vmesh).
 */
function mergedMetrics(input: TranslateInput, scope: TelemetryScope): { allDisabled: boolean; metrics: Map<string, MetricState> } {
  let allDisabled = false;
  const metrics = new Map<string, MetricState>();
  for (const t of telemetryChain(input, scope, 'metrics')) {
    for (const entry of t.spec.metrics ?? []) {
      for (const o of entry.overrides ?? []) {
        const mode = o.match?.mode ?? 'CLIENT_AND_SERVER';
        if (mode !== 'CLIENT_AND_SERVER' && mode !== scope.mode) continue;
        const custom = o.match?.customMetric;
        const metric = o.match?.metric ?? 'ALL_METRICS';
        if (custom === undefined && metric === 'ALL_METRICS' && o.disabled === true) {
          allDisabled = true;
          continue;
        }
        allDisabled = false;
        const names = custom !== undefined ? [custom] : metric === 'ALL_METRICS' ? ALL : [metric];
        for (const name of names) {
          let m = metrics.get(name);
          if (!m) {
            m = { tags: new Map() };
            metrics.set(name, m);
          }
          if (o.disabled !== undefined) m.disabled = o.disabled;
          for (const [tag, v] of Object.entries(o.tagOverrides ?? {})) m.tags.set(tag, v.operation === 'REMOVE' ? null : (v.value ?? ''));
        }
      }
    }
  }
  return { allDisabled, metrics };
}

const byString = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** stats.PluginConfig's `metrics` for a scope, sorted by name as Istio sorts them; undefined when nothing is overridden. */
export function statsMetricsFor(input: TranslateInput, scope: TelemetryScope): StatsMetricConfig[] | undefined {
  const { allDisabled, metrics } = mergedMetrics(input, scope);
  // Istio drops the stats filter, so nothing is reported; vmesh's proxy reports by default, so it is told to drop all.
  if (allDisabled) return ALL.map((m) => ({ name: PROMETHEUS_METRIC[m], dimensions: {}, drop: true }));
  if (metrics.size === 0) return undefined;
  const out: StatsMetricConfig[] = [];
  for (const [metric, m] of [...metrics.entries()].sort(([a], [b]) => byString(a, b))) {
    const dimensions: Record<string, string> = {};
    const remove: string[] = [];
    for (const [tag, value] of [...m.tags.entries()].sort(([a], [b]) => byString(a, b))) {
      if (value === null) remove.push(tag);
      else dimensions[tag] = value;
    }
    out.push({
      name: PROMETHEUS_METRIC[metric as keyof typeof PROMETHEUS_METRIC] ?? metric,
      dimensions,
      ...(remove.length ? { tags_to_remove: remove } : {}),
      ...(m.disabled ? { drop: true } : {}),
    });
  }
  return out;
}

/** The `istio.stats` filter's typed config for a scope, or undefined when the standard metrics apply unchanged. */
export function statsConfigFor(input: TranslateInput, scope: TelemetryScope): Any | undefined {
  const metrics = statsMetricsFor(input, scope);
  if (!metrics) return undefined;
  return typedConfig('typedStruct', {
    type_url: STATS_PLUGIN_CONFIG_URL,
    // Istio's: the server side and gateways do not take the destination service from the Host header.
    value: toStruct({ disable_host_header_fallback: scope.mode === 'SERVER', metrics }),
  });
}
