import { z } from 'zod';

// GET /v1/graph: the mesh graph the UI draws and `vmesh graph` prints.

const protocol = z.enum(['http', 'grpc', 'tcp']);

export const graphNode = z.object({
  id: z.string(),
  kind: z.enum(['workload', 'service', 'unknown']),
  name: z.string(),
  namespace: z.string(),
});
export type GraphNode = z.infer<typeof graphNode>;

export const graphEdge = z.object({
  id: z.string(),
  source: z.string(),
  target: z.string(),
  protocol,
  /** Requests per second (TCP: connections per second) over the last report interval. */
  rps: z.number(),
  /** Errors / requests over the last report interval, 0..1. */
  errorRate: z.number(),
  /** null when no request was timed in the window. */
  p99Ms: z.number().nullable(),
  mtls: z.boolean(),
  /** Totals since the reporting agents started. */
  requests: z.number(),
  errors: z.number(),
});
export type GraphEdge = z.infer<typeof graphEdge>;

export const meshGraph = z.object({ generatedAt: z.string(), nodes: z.array(graphNode), edges: z.array(graphEdge) });
export type MeshGraph = z.infer<typeof meshGraph>;
