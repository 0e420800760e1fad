/**
 * Every error vmesh reports carries a stable code, so scripts and tests match codes, not message text.
 * Messages are one line: what is wrong, where (resource, field path, value) and, when known, what to do.
 */
export const ErrorCode = {
  Usage: 'VMESH_ERR_USAGE',
  InvalidConfig: 'VMESH_ERR_INVALID_CONFIG',
  InvalidAddress: 'VMESH_ERR_INVALID_ADDRESS',
  InvalidPort: 'VMESH_ERR_INVALID_PORT',
  NotPrivileged: 'VMESH_ERR_NOT_PRIVILEGED',
  MissingTool: 'VMESH_ERR_MISSING_TOOL',
  NativeUnavailable: 'VMESH_ERR_NATIVE_UNAVAILABLE',
  NftUnavailable: 'VMESH_ERR_NFT_UNAVAILABLE',
  NftFailed: 'VMESH_ERR_NFT',
  IptablesFailed: 'VMESH_ERR_IPTABLES',
  NotRedirected: 'VMESH_ERR_NOT_REDIRECTED',
  CaptureVerifyFailed: 'VMESH_ERR_CAPTURE_VERIFY',
  InvalidResource: 'VMESH_ERR_INVALID_RESOURCE',
  UnsupportedField: 'VMESH_ERR_UNSUPPORTED_FIELD',
  NotFound: 'VMESH_ERR_NOT_FOUND',
  Conflict: 'VMESH_ERR_CONFLICT',
  Unauthenticated: 'VMESH_ERR_UNAUTHENTICATED',
  Forbidden: 'VMESH_ERR_FORBIDDEN',
  TokenInvalid: 'VMESH_ERR_TOKEN_INVALID',
  TokenExpired: 'VMESH_ERR_TOKEN_EXPIRED',
  TokenUsed: 'VMESH_ERR_TOKEN_USED',
  CaHashMismatch: 'VMESH_ERR_CA_HASH_MISMATCH',
  HostRevoked: 'VMESH_ERR_HOST_REVOKED',
  CsrInvalid: 'VMESH_ERR_CSR_INVALID',
  ConsulUnavailable: 'VMESH_ERR_CONSUL_UNAVAILABLE',
  Unavailable: 'VMESH_ERR_UNAVAILABLE',
  /** A registration's host did not present the workload's identity in time (`workload register` waits for it). */
  IdentityNotServed: 'VMESH_ERR_IDENTITY_NOT_SERVED',
  StoreFailed: 'VMESH_ERR_STORE',
  /** A request over one of the caps in lib/limits.ts (size, depth, count). */
  LimitExceeded: 'VMESH_ERR_LIMIT_EXCEEDED',
  /** A host over its per-host rate (Renew, SignWorkload): retry after the time the message gives. */
  RateLimited: 'VMESH_ERR_RATE_LIMITED',
  /** The disk is full (ENOSPC): nothing was written; free space and retry. */
  NoSpace: 'VMESH_ERR_NO_SPACE',
  /** The controller answered, but not in the shape its API promises (a different vmesh version, or not the controller). */
  BadResponse: 'VMESH_ERR_BAD_RESPONSE',
  Internal: 'VMESH_ERR_INTERNAL',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export class VmeshError extends Error {
  readonly code: ErrorCode;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: ErrorCode, message: string, details: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    // Keep messages single-line: multi-line tool output goes into details, not the headline.
    super(message.replace(/\s*\n\s*/g, ' | '), options);
    this.name = 'VmeshError';
    this.code = code;
    this.details = Object.freeze({ ...details });
  }
}

export function vmeshError(code: ErrorCode, message: string, details?: Record<string, unknown>): VmeshError {
  return new VmeshError(code, message, details);
}

export function isVmeshError(e: unknown): e is VmeshError {
  return e instanceof VmeshError;
}

/** One line for an operator: `VMESH_ERR_X: message`. Unknown errors are reported as internal. */
export function formatError(e: unknown): string {
  if (isVmeshError(e)) return `${e.code}: ${e.message}`;
  const msg = e instanceof Error ? e.message : String(e);
  return `${ErrorCode.Internal}: ${msg.replace(/\s*\n\s*/g, ' | ')}`;
}
