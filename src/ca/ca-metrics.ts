import type { MetricsRegistry } from '../lib/metrics-registry.js';

export type CertKind = 'host' | 'workload';

/**
 * The CA's counters under istiod's (Citadel's) names, which count every kind of certificate together, plus
 * vmesh_ca_signings_total split by kind (host: Join and Renew; workload: SignWorkload) and result.
 */
export class CaMetrics {
  private readonly csr;
  private readonly issued;
  private readonly signErr;
  private readonly authFail;
  private readonly signings;

  constructor(registry: MetricsRegistry, rootNotAfter: () => Date) {
    this.csr = registry.counter('citadel_server_csr_count', 'CSRs received from authenticated callers', []);
    this.issued = registry.counter('citadel_server_success_cert_issuance_count', 'Certificates issued', []);
    this.signErr = registry.counter('citadel_server_csr_sign_err_count', 'CSRs refused or failed to sign', []);
    this.authFail = registry.counter(
      'citadel_server_authentication_failure_count',
      'Signing requests whose caller did not authenticate',
      [],
    );
    this.signings = registry.counter('vmesh_ca_signings_total', 'Certificate signings by kind (host, workload) and result', [
      'kind',
      'result',
    ]);
    registry.gauge('citadel_server_root_cert_expiry_timestamp', 'Unix time (seconds) when the signing root expires', [], () => [
      [[], Math.floor(rootNotAfter().getTime() / 1000)],
    ]);
    // Label-less counters exist from the start, so a scrape shows 0 rather than nothing before the first CSR.
    for (const c of [this.csr, this.issued, this.signErr, this.authFail]) c.get([]);
  }

  /** Counts one CSR of `kind` around `sign`: success when it returns, failure when it throws. */
  sign<T>(kind: CertKind, sign: () => T): T {
    this.csr.get([]).value++;
    try {
      const out = sign();
      this.issued.get([]).value++;
      this.signings.get([kind, 'success']).value++;
      return out;
    } catch (e) {
      this.signErr.get([]).value++;
      this.signings.get([kind, 'failure']).value++;
      throw e;
    }
  }

  authenticationFailed(): void {
    this.authFail.get([]).value++;
  }
}

/** `sign()`, counted when there are metrics to count in. */
export function countedSigning<T>(metrics: CaMetrics | undefined, kind: CertKind, sign: () => T): T {
  return metrics ? metrics.sign(kind, sign) : sign();
}
