import { z } from 'zod';
import type { Checker } from './checker.js';
import { quote } from './names.js';
import { type DeepReadonly, duration, int, oneOf, str, uint } from './schema-helpers.js';

/**
 * `HealthCheck` (vmesh.io/v1alpha1): active health checking of a service's endpoints by the proxies that
 * call it (Envoy's cluster health checks; Istio relies on Kubernetes probes instead). An endpoint leaves the
 * load-balancing set after `unhealthyThreshold` failed checks in a row and returns after `healthyThreshold` passes.
 */
export const healthCheckSpec = z
  .strictObject({
    /** The service, as in a VirtualService destination (short names resolve in this namespace). */
    host: str,
    /** The service port whose endpoints are checked (the check goes to each endpoint's matching target port). */
    port: int,
    http: z
      .strictObject({
        path: str.default('/'),
        /** Statuses that count as healthy; 200..399 when not given. */
        expectedStatuses: z.array(int).optional(),
      })
      .optional(),
    tcp: z.strictObject({}).optional(),
    interval: duration().default(10_000),
    timeout: duration().default(1_000),
    healthyThreshold: uint.default(2),
    unhealthyThreshold: uint.default(3),
  })
  .superRefine(oneOf(['http', 'tcp'], { required: true }));

export type HealthCheckSpec = DeepReadonly<z.output<typeof healthCheckSpec>>;

export function checkHealthCheck(spec: HealthCheckSpec, c: Checker): void {
  if (spec.host.includes('*')) c.report('spec.host', `${quote(spec.host)}: health checks need one service, not a wildcard`);
  else c.host('spec.host', spec.host, { short: true });
  c.port('spec.port', spec.port);
  if (spec.http) {
    if (!spec.http.path.startsWith('/')) c.report('spec.http.path', `${quote(spec.http.path)} must start with "/"`);
    if (spec.http.expectedStatuses?.length === 0) c.report('spec.http.expectedStatuses', 'must list at least one status when set');
    spec.http.expectedStatuses?.forEach((s, i) => {
      if (s < 100 || s > 599) c.report(`spec.http.expectedStatuses[${i}]`, `${s} is not an HTTP status (100..599)`);
    });
  }
  if (spec.timeout > spec.interval) c.report('spec.timeout', `timeout (${spec.timeout}ms) is longer than interval (${spec.interval}ms)`);
  if (spec.healthyThreshold < 1) c.report('spec.healthyThreshold', 'must be at least 1');
  if (spec.unhealthyThreshold < 1) c.report('spec.unhealthyThreshold', 'must be at least 1');
}
