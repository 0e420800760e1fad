import { z } from 'zod';
import { hostFacts, hostRecord } from '../host-record.js';

// The REST API's answers about joined hosts and their join tokens (/v1/hosts, /v1/tokens).

/** GET /v1/hosts: a joined host with its liveness; `facts` adds `os` and `addresses` for display. */
export const hostView = hostRecord.extend({
  live: z.boolean(),
  state: z.enum(['live', 'silent', 'unknown', 'removed']),
  facts: hostFacts.extend({ os: z.string(), addresses: z.array(z.string()) }),
});
export type HostView = z.infer<typeof hostView>;
export const hostList = z.array(hostView);

/** DELETE /v1/hosts/:name. */
export const hostRemoved = z.object({ removed: z.string() });
export type HostRemoved = z.infer<typeof hostRemoved>;

/** GET /v1/tokens: a join token without its secret. Times are ISO-8601. */
export const tokenView = z.object({
  id: z.string(),
  host: z.string(),
  createdAt: z.string(),
  expiresAt: z.string(),
  used: z.boolean(),
  usedAt: z.string().optional(),
});
export type TokenView = z.infer<typeof tokenView>;
export const tokenList = z.array(tokenView);

/** POST /v1/tokens: the only answer that carries the token itself. */
export const tokenCreated = z.object({ token: z.string(), id: z.string(), host: z.string(), expiresAt: z.string() });
export type TokenCreated = z.infer<typeof tokenCreated>;
