import { z } from 'zod';
import type { Checker } from './checker.js';
import { type DeepReadonly, duration, int, matchLabelsSelector, oneOf, strings, uint } from './schema-helpers.js';

/** Envoy's local rate limit refuses faster refills; vmesh keeps the same floor so configs stay portable. */
export const MIN_FILL_INTERVAL_MS = 50;

/**
 * `LocalRateLimit` (vmesh.io/v1alpha1): a token bucket on the inbound side of the selected workloads,
 * each instance counting on its own (Istio does this with an EnvoyFilter; vmesh makes it a kind).
 * Pick workloads with `selector` (labels) or `targetHosts` (every workload behind those services);
 * with neither, it applies to every workload in the namespace (in the root namespace: the mesh).
 */
export const localRateLimitSpec = z
  .strictObject({
    selector: matchLabelsSelector.optional(),
    targetHosts: strings.optional(),
    tokenBucket: z.strictObject({
      maxTokens: uint,
      tokensPerFill: uint.default(1),
      fillInterval: duration(),
    }),
    /** The status of refused requests (HTTP); TCP connections over the limit are closed. */
    statusCode: int.default(429),
  })
  .superRefine(oneOf(['selector', 'targetHosts'], { required: false }));

export type LocalRateLimitSpec = DeepReadonly<z.output<typeof localRateLimitSpec>>;

export function checkLocalRateLimit(spec: LocalRateLimitSpec, c: Checker): void {
  c.labels('spec.selector.matchLabels', spec.selector?.matchLabels);
  if (spec.targetHosts?.length === 0) c.report('spec.targetHosts', 'must list at least one host when set');
  spec.targetHosts?.forEach((h, i) => {
    c.host(`spec.targetHosts[${i}]`, h, { short: true });
  });
  const b = spec.tokenBucket;
  if (b.maxTokens < 1) c.report('spec.tokenBucket.maxTokens', 'must be at least 1');
  if (b.tokensPerFill < 1) c.report('spec.tokenBucket.tokensPerFill', 'must be at least 1');
  if (b.tokensPerFill > b.maxTokens)
    c.report('spec.tokenBucket.tokensPerFill', `${b.tokensPerFill} is more than maxTokens (${b.maxTokens})`);
  if (b.fillInterval < MIN_FILL_INTERVAL_MS) c.report('spec.tokenBucket.fillInterval', `must be at least ${MIN_FILL_INTERVAL_MS}ms`);
  if (spec.statusCode < 400 || spec.statusCode > 599)
    c.report('spec.statusCode', `${spec.statusCode} is not an HTTP error status (400..599)`);
}
