import { ErrorCode, vmeshError } from '../lib/errors.js';
import { execTool } from '../lib/exec.js';

/**
 * Istio's IPv6 inbound passthrough source, the twin of 127.0.0.6. Any 127/8 address is already local, but `::6`
 * is not: the proxy can only connect from it once it is assigned to lo (as istio-iptables does). Capture lets
 * local traffic from it through; without it, the proxy falls back to the kernel's choice of source.
 */
export const PASSTHROUGH_SOURCE_V6 = '::6';

export function passthroughSourceV6Args(): string[] {
  return ['-6', 'addr', 'replace', `${PASSTHROUGH_SOURCE_V6}/128`, 'dev', 'lo'];
}

export async function assignPassthroughSourceV6(): Promise<void> {
  const r = await execTool('ip', passthroughSourceV6Args(), { debianPackage: 'iproute2' });
  if (r.code !== 0) {
    throw vmeshError(ErrorCode.Unavailable, `cannot assign ${PASSTHROUGH_SOURCE_V6} to lo: ${r.stderr.trim() || `exit ${r.code}`}`);
  }
}
