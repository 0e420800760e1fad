import { z } from 'zod';

// The REST API's config answers (/v1/config): what an apply did, and stored resources as applied.

/** POST /v1/config: per resource what the apply did (or would do, on a dry run), and warnings to show. */
export const applyResult = z.object({
  results: z.array(z.object({ key: z.string(), action: z.enum(['created', 'updated', 'unchanged']) })).readonly(),
  /** Accepted anyway: skipped documents, references not there (yet), where Istio warns; one line each. */
  warnings: z.array(z.string()).readonly(),
});
export type ApplyResultView = z.infer<typeof applyResult>;

/** GET /v1/config/:kind[/:namespace/:name]: a resource as stored, its version in `metadata.resourceVersion`. */
export const storedResource = z.looseObject({
  apiVersion: z.string(),
  kind: z.string(),
  metadata: z.looseObject({ name: z.string(), namespace: z.string(), resourceVersion: z.string().optional() }),
});
export type StoredResourceView = z.infer<typeof storedResource>;
export const storedResourceList = z.array(storedResource);

/** DELETE /v1/config/:kind/:namespace/:name. */
export const configDeleted = z.object({ deleted: z.string() });
export type ConfigDeleted = z.infer<typeof configDeleted>;
