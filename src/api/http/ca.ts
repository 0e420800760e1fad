import { z } from 'zod';

// The REST API's CA answers (GET /v1/ca, POST /v1/ca/rotate-root): `vmesh ca status` and `vmesh ca rotate-root`.

const rootInfo = z.object({ caHash: z.string(), subject: z.string(), notBefore: z.string(), notAfter: z.string() });

export const caStatus = z.object({
  trustDomain: z.string(),
  trustBundleSha256: z.string(),
  rotation: z.object({
    /** none; staged (next root trusted, current signs); activated (next signs, previous still trusted). */
    phase: z.enum(['none', 'staged', 'activated']),
    rotatable: z.boolean(),
    current: rootInfo,
    next: rootInfo.optional(),
    previous: rootInfo.optional(),
    issuedSinceStart: z.number(),
  }),
  hosts: z.array(
    z.object({
      name: z.string(),
      live: z.boolean(),
      hostCertNotAfter: z.string().optional(),
      /** current: the host holds the bundle the controller serves; stale: another one; unknown: not reported. */
      bundle: z.enum(['current', 'stale', 'unknown']),
      workloads: z.array(z.object({ spiffeId: z.string(), notAfter: z.string() })),
    }),
  ),
});
export type CaStatusView = z.infer<typeof caStatus>;
