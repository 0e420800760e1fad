import { z } from 'zod';

// The REST API's xDS answers: `vmesh proxy status` (GET /v1/xds/status) and `vmesh proxy config` (GET
// /v1/xds/config/:node/:kind).

/** istioctl proxy-status: per node its stream and, per type, whether it acked what was sent. */
export const proxyStatusRow = z.object({
  node: z.string(),
  connected: z.boolean(),
  mode: z.enum(['sotw', 'delta']).optional(),
  peer: z.string().optional(),
  connectedSince: z.string().optional(),
  /** The snapshot version the controller holds for the node. */
  snapshot: z.string().optional(),
  lastPush: z.string().optional(),
  /** Per type (CDS, EDS, LDS, RDS, NDS, WDS): SYNCED (acked what was sent), STALE (sent, not acked yet), NACKED (with error). */
  types: z.record(
    z.string(),
    z.object({
      state: z.enum(['SYNCED', 'STALE', 'NACKED', 'NOT SENT']),
      sent: z.string().optional(),
      acked: z.string().optional(),
      error: z.string().optional(),
    }),
  ),
});
export type ProxyStatusView = z.infer<typeof proxyStatusRow>;
export const proxyStatusList = z.array(proxyStatusRow);

/** One resource of a node's snapshot, decoded to JSON. */
export const proxyConfigItem = z.object({ name: z.string(), version: z.string(), resource: z.unknown() });
export const proxyConfigList = z.array(proxyConfigItem);
