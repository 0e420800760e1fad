import { isIP } from 'node:net';
import type { MeshService } from '../../api/model.js';
import { normalizeIp } from '../../lib/addr.js';

/**
 * A service's IPv6 virtual addresses: the single IPv6 addresses among its ServiceEntry `addresses` (they land in
 * its aliases; a `/128` counts, wider CIDRs do not). Virtual IPs from 240.240.0.0/16 are IPv4 only, so these are
 * the only IPv6 addresses the DNS proxy answers for a mesh name, and each gets its own outbound listener.
 */
export function ipv6Vips(service: MeshService): string[] {
  const hosts = service.aliases.map((a) => a.replace(/\/128$/, '')).filter((a) => isIP(a) === 6);
  return [...new Set(hosts.map(normalizeIp))].sort();
}
