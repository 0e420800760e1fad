import { z } from 'zod';

// The REST API's workload answers (POST/GET/DELETE /v1/workloads): the controller's registry produces them and
// the CLI checks every answer against them.

export const workloadView = z.object({
  name: z.string(),
  namespace: z.string(),
  service: z.string(),
  serviceAccount: z.string(),
  address: z.string(),
  ports: z.record(z.string(), z.number()),
  labels: z.record(z.string(), z.string()),
  host: z.string().optional(),
  uid: z.number().optional(),
  healthy: z.boolean().optional(),
  /** `client`: registered without ports, it only calls others (not an endpoint, not health-checked). */
  state: z.enum(['healthy', 'unhealthy', 'unknown', 'client']),
  /** Whether the live agent on its host presents the workload's identity (for its uid) now. */
  identityServed: z.boolean().optional(),
});
export type WorkloadView = z.infer<typeof workloadView>;

export const workloadList = z.array(workloadView);

/** POST /v1/workloads. */
export const workloadRegistered = z.object({ workload: workloadView, serviceEntryCreated: z.boolean() });
export type WorkloadRegistered = z.infer<typeof workloadRegistered>;

/** DELETE /v1/workloads/:namespace/:name. */
export const workloadDeregistered = z.object({ serviceEntryRemoved: z.boolean() });
export type WorkloadDeregistered = z.infer<typeof workloadDeregistered>;
