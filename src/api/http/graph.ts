import { z } from 'zod';

// GET /v1/graph: the mesh graph the UI draws and `vmesh graph` prints.

const protocol = z.enum(['http', 'grpc', 'tcp']);

export const meshGraph = z.object({
  generatedAt: z.string(),
  nodes: z.array(z.object({ id: z.string(), kind: z.enum(['workload', 'service', 'unknown']), name: z.string(), namespace: z.string() })),
  edges: z.array(
    z.object({
      id: z.string(),
      source: z.string(),
      target: z.string(),
      protocol,
      rps: z.number(),
      errorRate: z.number(),
      p99Ms: z.number().nullable(),
      mtls: z.boolean(),
      requests: z.number(),
      errors: z.number(),
    }),
  ),
});
export type MeshGraphView = z.infer<typeof meshGraph>;
