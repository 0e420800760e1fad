import type { OutlierDetection } from '../proxy-config.js';
import type { Outcome } from '../runtime-types.js';
import type { HostState } from './host.js';

/** Envoy's default cap on one ejection (max_ejection_time). */
const MAX_EJECTION_MS = 300_000;

/**
 * Outlier detection, Envoy's consecutive_5xx and consecutive_gateway_failure: a host that answers with
 * that many errors in a row is ejected for base_ejection_time × times ejected, unless that would eject
 * more than max_ejection_percent of the cluster (one host may always be ejected). Connect failures,
 * resets and timeouts count as gateway errors (and as 5xx), as Envoy does without split local-origin errors.
 */
export function recordOutcome(
  cfg: OutlierDetection | undefined,
  hosts: readonly HostState[],
  h: HostState,
  outcome: Outcome,
  onChange: () => void,
): void {
  if (!cfg || h.removed) return;
  let fivexx = false;
  let gateway = false;
  if (outcome.kind === 'error') {
    fivexx = gateway = true;
  } else if (outcome.status >= 500) {
    fivexx = true;
    gateway = outcome.status === 502 || outcome.status === 503 || outcome.status === 504;
  }
  if (!fivexx) {
    h.consecutive5xx = 0;
    h.consecutiveGatewayErrors = 0;
    return;
  }
  h.consecutive5xx++;
  if (gateway) h.consecutiveGatewayErrors++;
  else h.consecutiveGatewayErrors = 0;
  if (h.ejected) return;
  const tripped =
    (cfg.consecutive5xx > 0 && h.consecutive5xx >= cfg.consecutive5xx) ||
    (cfg.consecutiveGatewayErrors > 0 && h.consecutiveGatewayErrors >= cfg.consecutiveGatewayErrors);
  if (tripped) eject(cfg, hosts, h, onChange);
}

function eject(cfg: OutlierDetection, hosts: readonly HostState[], h: HostState, onChange: () => void): void {
  let ejected = 0;
  for (const x of hosts) if (x.ejected) ejected++;
  if (ejected > 0 && ((ejected + 1) / hosts.length) * 100 > cfg.maxEjectionPercent) return;
  h.ejected = true;
  h.timesEjected++;
  h.consecutive5xx = 0;
  h.consecutiveGatewayErrors = 0;
  const ms = Math.min(cfg.baseEjectionMs * h.timesEjected, Math.max(MAX_EJECTION_MS, cfg.baseEjectionMs));
  h.unejectTimer = setTimeout(() => {
    h.unejectTimer = undefined;
    h.ejected = false;
    onChange();
  }, ms);
  h.unejectTimer.unref();
  onChange();
}

/** Forget ejections (host removed, detection turned off, manager closed). */
export function clearEjection(h: HostState): void {
  if (h.unejectTimer) clearTimeout(h.unejectTimer);
  h.unejectTimer = undefined;
  h.ejected = false;
}
