import type { CaStatusView } from '../../api/http/ca.js';
import { type CertificateAuthority, type HostRegistry, type IssuedCertificates, trustBundleSha256 } from '../../ca/index.js';
import type { HealthTracker } from '../../discovery/health.js';
import { ErrorCode, vmeshError } from '../../lib/errors.js';

export interface CaDeps {
  readonly ca: CertificateAuthority;
  readonly hosts: HostRegistry;
  readonly health: HealthTracker;
  readonly issued: IssuedCertificates;
  /** The CA changed (a rotation step): the controller re-issues its own serving certificate. */
  readonly onChange: () => void;
}

export type CaStatus = CaStatusView;

/** `vmesh ca status`: the roots and the rotation phase, and per host its certificates and whether it holds the current bundle. */
export function caStatus(d: CaDeps): CaStatus {
  const current = trustBundleSha256(d.ca.trustBundlePem());
  const live = new Set(d.health.hosts().flatMap((h) => (h.live ? [h.name] : [])));
  return {
    trustDomain: d.ca.trustDomain,
    trustBundleSha256: current,
    rotation: d.ca.rotationState(),
    hosts: d.hosts
      .list()
      .filter((h) => !h.revoked)
      .map((h) => {
        const held = d.issued.bundleOf(h.name);
        return {
          name: h.name,
          live: live.has(h.name),
          ...(h.certNotAfter ? { hostCertNotAfter: new Date(h.certNotAfter).toISOString() } : {}),
          bundle: held === undefined ? 'unknown' : held === current ? 'current' : 'stale',
          workloads: d.issued.workloadsOf(h.name),
        };
      }),
  };
}

export type RotationStep = 'stage' | 'activate' | 'finish';

/**
 * `vmesh ca rotate-root`: stage (trust a new root beside the current one), activate (sign with it), finish
 * (stop trusting the old one). Activate and finish wait until every live host holds the current bundle, so no
 * host meets a certificate from a root it does not trust yet (or loses one it still needs); --force skips that.
 */
export async function rotateRoot(d: CaDeps, step: RotationStep, force: boolean): Promise<CaStatus> {
  if (step !== 'stage' && !force) {
    const behind = caStatus(d).hosts.filter((h) => h.live && h.bundle !== 'current');
    if (behind.length > 0) {
      throw vmeshError(
        ErrorCode.Conflict,
        `root rotation ${step}: hosts ${behind.map((h) => `${h.name} (${h.bundle})`).join(', ')} do not hold the current trust bundle yet; wait for their next report (or --force)`,
      );
    }
  }
  if (step === 'stage') await d.ca.stageRoot();
  else if (step === 'activate') await d.ca.activateRoot();
  else await d.ca.retirePreviousRoot();
  d.onChange();
  return caStatus(d);
}
