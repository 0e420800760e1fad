import type { ControllerHandlers } from '../../api/controller-proto.js';
import { toGrpcError } from '../../api/grpc-errors.js';
import { type CaMetrics, type CertificateAuthority, countedSigning, type PeerCall, workloadSpiffeId } from '../../ca/index.js';
import { ErrorCode, isVmeshError, type VmeshError, vmeshError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import { KeyedRateLimiter, type RateLimit, takeOrRefuse } from '../../lib/rate-limit.js';
import type { Result } from '../../lib/result.js';

export interface WorkloadCertServiceDeps {
  readonly ca: Pick<CertificateAuthority, 'trustDomain' | 'signCsr' | 'trustBundlePem' | 'chainPem'>;
  /** The calling host, from its mTLS certificate (ca's authenticatePeer). */
  readonly authenticate: (call: PeerCall) => Result<{ host: string }, VmeshError>;
  /** The identities (namespace, service account) of the workloads registered on a host. */
  readonly identitiesOn: (host: string) => ReadonlyArray<{ readonly namespace: string; readonly serviceAccount: string }>;
  readonly ttlSeconds: number;
  /** Signings per host identity. */
  readonly rateLimit: RateLimit;
  readonly logger: Logger;
  /** Counts and remembers issued workload certificates (for `vmesh ca status`). */
  readonly onIssued?: (host: string, spiffeId: string, notAfter: Date) => void;
  readonly metrics?: CaMetrics;
}

/**
 * vmesh.v1.Controller/SignWorkload: a host gets certificates only for identities of workloads registered on
 * it, so a compromised host cannot mint another host's workload identity. Refusals are logged with the host.
 */
export function signWorkloadHandler(deps: WorkloadCertServiceDeps): ControllerHandlers['SignWorkload'] {
  const signings = new KeyedRateLimiter(deps.rateLimit);
  return (call, cb) => {
    const who = deps.authenticate(call);
    if (!who.ok) {
      deps.metrics?.authenticationFailed();
      deps.logger.warn({ peer: call.getPeer(), code: who.error.code }, `SignWorkload refused: ${who.error.message}`);
      cb(toGrpcError(who.error));
      return;
    }
    const host = who.value.host;
    const { namespace, serviceAccount } = call.request;
    const sign = <T>(fn: () => T): T => countedSigning(deps.metrics, 'workload', fn);
    try {
      takeOrRefuse(signings, host, `SignWorkload for host "${host}"`);
      const { spiffeId, signed } = sign(() => {
        const local = deps.identitiesOn(host).some((w) => w.namespace === namespace && w.serviceAccount === serviceAccount);
        if (!local) {
          throw vmeshError(
            ErrorCode.Forbidden,
            `host "${host}" asked for identity ns/${namespace}/sa/${serviceAccount}, but no workload with it is registered on that host`,
          );
        }
        const id = workloadSpiffeId(deps.ca.trustDomain, namespace, serviceAccount);
        return {
          spiffeId: id,
          signed: deps.ca.signCsr(call.request.csrPem ?? '', { uris: [id], ttlSeconds: deps.ttlSeconds, usage: 'both' }),
        };
      });
      deps.onIssued?.(host, spiffeId, signed.notAfter);
      deps.logger.debug({ host, spiffeId, serial: signed.serial }, 'workload certificate signed');
      cb(null, {
        certChainPem: deps.ca.chainPem(signed.certPem),
        trustBundlePem: deps.ca.trustBundlePem(),
        spiffeId,
        certNotAfter: String(signed.notAfter.getTime()),
      });
    } catch (e) {
      const code = isVmeshError(e) ? e.code : ErrorCode.Internal;
      deps.logger.warn({ host, namespace, serviceAccount, code }, `SignWorkload refused: ${(e as Error).message}`);
      cb(toGrpcError(e));
    }
  };
}
