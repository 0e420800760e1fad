import { parseTagExpression, type TagExpression } from '../../api/tag-expression.js';
import type { TypedStruct__Output } from '../../generated/xds/type/v3/TypedStruct.js';
import type { Decoded } from '../../xds/envoy-types.js';
import { fromStruct, type JsonValue } from '../../xds/struct.js';
import type { MetricOverride, StatsConfig } from '../proxy-config.js';
import { fail, str } from './read.js';

/**
 * Istio's stats filter config (`istio.stats`: a TypedStruct carrying a stats.PluginConfig as JSON) as the proxy
 * applies it: per metric, drop it, remove labels, or set labels from tag expressions. The expressions are parsed
 * here, so a config the proxy could not evaluate is NACKed, never half-applied while counting.
 */

export const STATS_PLUGIN_CONFIG_URL = 'type.googleapis.com/stats.PluginConfig';

/** PluginConfig fields that change nothing in vmesh: it never takes the destination service from the Host header. */
const IGNORED = new Set(['disable_host_header_fallback']);
const METRIC_FIELDS = new Set(['name', 'dimensions', 'tags_to_remove', 'drop']);

function object(v: JsonValue | undefined, path: string): Record<string, JsonValue> {
  if (v === null || v === undefined) return {};
  if (typeof v !== 'object' || Array.isArray(v)) return fail(path, 'must be an object');
  return v;
}

/** Whether a TypedStruct carries Istio's stats plugin config. */
export function isStatsStruct(typed: unknown): boolean {
  return (typed as { type_url?: unknown } | null | undefined)?.type_url === STATS_PLUGIN_CONFIG_URL;
}

export function compileStats(typed: Decoded<TypedStruct__Output>, path: string): StatsConfig {
  const url = str(typed.type_url, `${path}.type_url`);
  if (url !== STATS_PLUGIN_CONFIG_URL) fail(`${path}.type_url`, `${url || 'no type'} is not supported (only ${STATS_PLUGIN_CONFIG_URL})`);
  const cfg = fromStruct(typed.value);
  for (const k of Object.keys(cfg)) {
    if (k !== 'metrics' && !IGNORED.has(k)) fail(`${path}.value.${k}`, 'is not supported');
  }
  const list = cfg.metrics ?? [];
  if (!Array.isArray(list)) return fail(`${path}.value.metrics`, 'must be a list');
  const expressions: TagExpression[] = [];
  const bySource = new Map<string, number>();
  const metrics = new Map<string, MetricOverride>();
  for (const [i, m] of list.entries()) {
    const p = `${path}.value.metrics[${i}]`;
    const o = object(m, p);
    for (const k of Object.keys(o)) if (!METRIC_FIELDS.has(k)) fail(`${p}.${k}`, 'is not supported');
    const name = o.name;
    if (typeof name !== 'string' || name === '') fail(`${p}.name`, 'must be a metric name');
    const drop = o.drop ?? false;
    if (typeof drop !== 'boolean') fail(`${p}.drop`, 'must be a boolean');
    const removeList = o.tags_to_remove ?? [];
    if (!Array.isArray(removeList) || removeList.some((t) => typeof t !== 'string'))
      fail(`${p}.tags_to_remove`, 'must be a list of tag names');
    const upsert: Array<readonly [string, number]> = [];
    for (const [tag, source] of Object.entries(object(o.dimensions, `${p}.dimensions`))) {
      const tp = `${p}.dimensions.${tag}`;
      if (typeof source !== 'string') fail(tp, 'must be an expression string');
      let at = bySource.get(source);
      if (at === undefined) {
        const r = parseTagExpression(source);
        if (!r.ok) fail(tp, `expression ${JSON.stringify(source.slice(0, 80))} is not supported: ${r.reason}`);
        at = expressions.push(r.expr) - 1;
        bySource.set(source, at);
      }
      upsert.push([tag, at]);
    }
    // A metric named twice: the later entry wins, as a later override does in Istio's merge.
    metrics.set(name, { drop, remove: removeList as string[], upsert });
  }
  return { expressions, metrics };
}
