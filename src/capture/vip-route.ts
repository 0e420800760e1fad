import { ErrorCode, vmeshError } from '../lib/errors.js';
import { execTool } from '../lib/exec.js';

export const VIP_RANGE = '240.240.0.0/16';

/**
 * Virtual IPs are made local addresses of the host (a `local` route on lo). Captured, a connection to one
 * is redirected to the proxy with its original destination intact; not captured (agent stopped, capture
 * removed), it is refused at once by the host's own stack instead of leaving through the default route
 * and hanging. The route stays when the agent stops: that is the fail-safe.
 */
export function vipRouteArgs(cidr = VIP_RANGE): string[] {
  return ['route', 'replace', 'local', cidr, 'dev', 'lo', 'table', 'local'];
}

export async function routeVipRange(cidr = VIP_RANGE): Promise<void> {
  const r = await execTool('ip', vipRouteArgs(cidr), { debianPackage: 'iproute2' });
  if (r.code !== 0)
    throw vmeshError(ErrorCode.Unavailable, `cannot route the virtual IP range ${cidr}: ${r.stderr.trim() || `exit ${r.code}`}`);
}
