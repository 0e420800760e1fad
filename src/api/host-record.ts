import { ErrorCode, vmeshError } from '../lib/errors.js';

/** What an agent reports about its host when it joins: shown by the CLI/UI, never used for authorization. */
export interface HostFacts {
  readonly hostname: string;
  readonly osDistro: string;
  readonly osRelease: string;
  readonly kernel: string;
  readonly arch: string;
  readonly cpuBrand: string;
  readonly cpuCores: number;
  readonly memoryTotalBytes: number;
  /** Non-internal, non-link-local addresses. */
  readonly ipv4: readonly string[];
  readonly ipv6: readonly string[];
}

/** A joined host as the controller records it. Times are ISO-8601 strings (the record is stored and served as JSON). */
export interface HostRecord {
  readonly name: string;
  readonly facts: HostFacts;
  /** Serial of the newest host certificate: lower-case hex without leading zeros. */
  readonly certSerial: string;
  readonly certNotAfter: string;
  readonly joinedAt: string;
  readonly lastSeen?: string;
  readonly revoked: boolean;
  readonly revokedAt?: string;
}

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
