import { z } from 'zod';
import { ErrorCode, vmeshError } from '../lib/errors.js';

/** What an agent reports about its host when it joins: shown by the CLI/UI, never used for authorization. */
export const hostFacts = z.object({
  hostname: z.string(),
  osDistro: z.string(),
  osRelease: z.string(),
  kernel: z.string(),
  arch: z.string(),
  cpuBrand: z.string(),
  cpuCores: z.number(),
  memoryTotalBytes: z.number(),
  /** Non-internal, non-link-local addresses. */
  ipv4: z.array(z.string()).readonly(),
  ipv6: z.array(z.string()).readonly(),
});
export type HostFacts = z.infer<typeof hostFacts>;

/** A joined host as the controller records it. Times are ISO-8601 strings (the record is stored and served as JSON). */
export const hostRecord = z.object({
  name: z.string(),
  facts: hostFacts,
  /** Serial of the newest host certificate: lower-case hex without leading zeros. */
  certSerial: z.string(),
  certNotAfter: z.string(),
  joinedAt: z.string(),
  lastSeen: z.string().optional(),
  revoked: z.boolean(),
  revokedAt: z.string().optional(),
});
export type HostRecord = z.infer<typeof hostRecord>;

// DNS-label style, lower case: the name goes into a SPIFFE path, a store key and file names.
const HOST_NAME = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

export function isValidHostName(name: string): boolean {
  return HOST_NAME.test(name);
}

/** Throws VMESH_ERR_INVALID_RESOURCE naming `what` unless `name` is a valid host name. */
export function checkHostName(name: string, what: string): string {
  if (!isValidHostName(name)) {
    throw vmeshError(
      ErrorCode.InvalidResource,
      `${what}: "${name}" is not a valid host name (lower-case letters, digits, "-" and "."; at most 253 characters)`,
      { value: name },
    );
  }
  return name;
}
