import { splitMeshHost } from '../../api/service-hosts.js';
import type { NameInfo as NameInfoMessage } from '../../generated/vmesh/v1/NameInfo.js';
import type { NameTable } from '../../generated/vmesh/v1/NameTable.js';
import type { EnvoyResource, TranslateInput } from './input.js';
import { ipv6Vips } from './service-addresses.js';

export const NAME_TABLE_RESOURCE = 'name-table';

type NameInfo = Required<Pick<NameInfoMessage, 'ips' | 'registry' | 'shortname' | 'namespace'>>;

/** Addresses and CIDRs (ServiceEntry `addresses` land in aliases) are not names the DNS proxy answers. */
function isName(s: string): boolean {
  return s !== '' && !s.includes('*') && !s.includes('/') && !s.includes(':') && !/^\d+(\.\d+){3}$/.test(s);
}

/**
 * The DNS proxy's table (vmesh.v1.NameTable, Istio's NDS): every visible service's hostname, its aliases,
 * `name.namespace`, and the bare name for services in the node's own namespace, each answering the service VIP
 * (A) and the ServiceEntry's IPv6 addresses (AAAA; none: NOERROR without records, so clients use A at once).
 * The first service to claim a name keeps it (services are taken in hostname order).
 */
export function buildNameTable(input: TranslateInput): EnvoyResource<NameTable>[] {
  const table = new Map<string, NameInfo>();
  const services = [...input.services].filter((s) => s.vip !== '').sort((a, b) => (a.hostname < b.hostname ? -1 : 1));
  for (const s of services) {
    const info = (): NameInfo => ({ ips: [s.vip, ...ipv6Vips(s)], registry: 'vmesh', shortname: s.name, namespace: s.namespace });
    const names = [s.hostname, ...s.aliases];
    if (splitMeshHost(s.hostname, input.mesh)) {
      names.push(`${s.name}.${s.namespace}`);
      if (s.namespace === input.node.namespace) names.push(s.name);
    }
    for (const n of names.map((x) => x.toLowerCase())) {
      if (isName(n) && !table.has(n)) table.set(n, info());
    }
  }
  const sorted = Object.fromEntries([...table.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  return [{ name: NAME_TABLE_RESOURCE, message: { table: sorted } }];
}
