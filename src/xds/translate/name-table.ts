import { splitMeshHost } from '../../api/service-hosts.js';
import type { NameInfo as NameInfoMessage } from '../../generated/vmesh/v1/NameInfo.js';
import type { NameTable } from '../../generated/vmesh/v1/NameTable.js';
import type { EnvoyResource, TranslateInput } from './input.js';
import { ipv6Vips } from './service-addresses.js';

/** NDS resource names: one shard per service, named so that their order is the services' hostname order. */
const NAME_TABLE_PREFIX = 'name-table|';

export function nameTableShardName(hostname: string): string {
  return `${NAME_TABLE_PREFIX}${hostname}`;
}

type NameInfo = Required<Pick<NameInfoMessage, 'ips' | 'registry' | 'shortname' | 'namespace'>>;

/** Addresses and CIDRs (ServiceEntry `addresses` land in aliases) are not names the DNS proxy answers. */
function isName(s: string): boolean {
  return s !== '' && !s.includes('*') && !s.includes('/') && !s.includes(':') && !/^\d+(\.\d+){3}$/.test(s);
}

/**
 * The DNS proxy's table (vmesh.v1.NameTable, Istio's NDS): every visible service's hostname, its aliases,
 * `name.namespace`, and the bare name for services in the node's own namespace, each answering the service VIP
 * (A) and the ServiceEntry's IPv6 addresses (AAAA; none: NOERROR without records, so clients use A at once).
 * The first service to claim a name keeps it (services are taken in hostname order). The table is sent in shards,
 * one per service holding the names it keeps, so that adding a service sends one small resource instead of
 * the whole table to every host; the DNS proxy answers from their union.
 */
export function buildNameTable(input: TranslateInput): EnvoyResource<NameTable>[] {
  const claimed = new Set<string>();
  const shards: EnvoyResource<NameTable>[] = [];
  const services = [...input.services].filter((s) => s.vip !== '').sort((a, b) => (a.hostname < b.hostname ? -1 : 1));
  for (const s of services) {
    const info: NameInfo = { ips: [s.vip, ...ipv6Vips(s)], registry: 'vmesh', shortname: s.name, namespace: s.namespace };
    const names = [s.hostname, ...s.aliases];
    if (splitMeshHost(s.hostname, input.mesh)) {
      names.push(`${s.name}.${s.namespace}`);
      if (s.namespace === input.node.namespace) names.push(s.name);
    }
    const table: Record<string, NameInfo> = {};
    for (const n of [...new Set(names.map((x) => x.toLowerCase()))].sort()) {
      if (!isName(n) || claimed.has(n)) continue;
      claimed.add(n);
      table[n] = info;
    }
    if (Object.keys(table).length > 0) shards.push({ name: nameTableShardName(s.hostname), message: { table } });
  }
  return shards;
}
