import * as grpc from '@grpc/grpc-js';
import { ErrorCode, isVmeshError, VmeshError } from '../lib/errors.js';

const STATUS: Partial<Record<ErrorCode, grpc.status>> = {
  [ErrorCode.TokenInvalid]: grpc.status.UNAUTHENTICATED,
  [ErrorCode.TokenExpired]: grpc.status.UNAUTHENTICATED,
  [ErrorCode.TokenUsed]: grpc.status.UNAUTHENTICATED,
  [ErrorCode.CaHashMismatch]: grpc.status.UNAUTHENTICATED,
  [ErrorCode.Unauthenticated]: grpc.status.UNAUTHENTICATED,
  [ErrorCode.HostRevoked]: grpc.status.PERMISSION_DENIED,
  [ErrorCode.Forbidden]: grpc.status.PERMISSION_DENIED,
  [ErrorCode.CsrInvalid]: grpc.status.INVALID_ARGUMENT,
  [ErrorCode.InvalidResource]: grpc.status.INVALID_ARGUMENT,
  [ErrorCode.InvalidAddress]: grpc.status.INVALID_ARGUMENT,
  [ErrorCode.Usage]: grpc.status.INVALID_ARGUMENT,
  [ErrorCode.LimitExceeded]: grpc.status.RESOURCE_EXHAUSTED,
  [ErrorCode.NoSpace]: grpc.status.RESOURCE_EXHAUSTED,
  [ErrorCode.RateLimited]: grpc.status.RESOURCE_EXHAUSTED,
  [ErrorCode.NotFound]: grpc.status.NOT_FOUND,
  [ErrorCode.Conflict]: grpc.status.ALREADY_EXISTS,
  [ErrorCode.Unavailable]: grpc.status.UNAVAILABLE,
  [ErrorCode.StoreFailed]: grpc.status.UNAVAILABLE,
};

/** A gRPC error whose details start with the stable VMESH_ERR code, so clients can map it back. */
export function toGrpcError(e: unknown): Partial<grpc.StatusObject> {
  if (isVmeshError(e)) return { code: STATUS[e.code] ?? grpc.status.INTERNAL, details: `${e.code}: ${e.message}` };
  return { code: grpc.status.INTERNAL, details: `${ErrorCode.Internal}: ${e instanceof Error ? e.message : String(e)}` };
}

const CODES = new Set<string>(Object.values(ErrorCode));

/** The VmeshError a failed call stands for: the server's code when it sent one, VMESH_ERR_UNAVAILABLE for transport failures. */
export function fromGrpcError(e: unknown, what: string): VmeshError {
  if (isVmeshError(e)) return e;
  const se = e as Partial<grpc.ServiceError>;
  const details = se.details ?? (e instanceof Error ? e.message : String(e));
  const m = /^(VMESH_ERR_[A-Z_]+): (.*)$/s.exec(details);
  if (m?.[1] && CODES.has(m[1])) return new VmeshError(m[1] as ErrorCode, m[2] ?? '', { grpcCode: se.code }, { cause: e });
  const transport = se.code === grpc.status.UNAVAILABLE || se.code === grpc.status.DEADLINE_EXCEEDED;
  return new VmeshError(
    transport ? ErrorCode.Unavailable : ErrorCode.Internal,
    `${what}: ${grpc.status[se.code ?? grpc.status.UNKNOWN] ?? se.code}: ${details}`,
    { grpcCode: se.code },
    { cause: e },
  );
}
