/** The controller's name table (vmesh.v1.NameTable over ADS): mesh host names to virtual IPs. */
export interface NameTableEntry {
  readonly ips: readonly string[];
  readonly registry?: string;
  readonly shortname?: string;
  readonly namespace?: string;
}

export type NameTable = ReadonlyMap<string, NameTableEntry>;

export type Lookup =
  | { readonly kind: 'answer'; readonly name: string; readonly ips: readonly string[] }
  /** A mesh name without addresses of the asked family: NOERROR with no answers, so clients try A. */
  | { readonly kind: 'nodata'; readonly name: string }
  | { readonly kind: 'forward' };

type WireTable = { table?: Record<string, { ips?: string[]; registry?: string; shortname?: string; namespace?: string }> };

/**
 * The table from the NDS resources held, taken in resource-name order (the controller sends one shard per
 * service, named in hostname order); a name in two shards keeps the first, as the controller decided.
 */
export function nameTableFrom(shards: Readonly<Record<string, unknown>> | readonly unknown[]): NameTable {
  const messages = Array.isArray(shards)
    ? shards
    : Object.entries(shards)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([, m]) => m);
  const out = new Map<string, NameTableEntry>();
  for (const message of messages) {
    for (const [name, e] of Object.entries((message as WireTable)?.table ?? {})) {
      const key = name.toLowerCase().replace(/\.$/, '');
      if (!out.has(key)) out.set(key, { ...e, ips: [...(e.ips ?? [])] });
    }
  }
  return out;
}

const isV4 = (ip: string) => /^\d+\.\d+\.\d+\.\d+$/.test(ip);

/**
 * Answers a query from the table. Resolvers append the host's search domains to short names
 * (`reviews.corp.example`); like Istio's DNS proxy, a name that is a table name plus one of those
 * suffixes answers as the table name, so `reviews` works whatever the host's search list says.
 */
export function lookup(table: NameTable, qname: string, qtype: 'A' | 'AAAA' | string, searchDomains: readonly string[]): Lookup {
  const name = qname.toLowerCase().replace(/\.$/, '');
  let entry = table.get(name);
  let matched = name;
  if (!entry) {
    for (const d of searchDomains) {
      const suffix = `.${d.toLowerCase().replace(/\.$/, '')}`;
      if (name.endsWith(suffix)) {
        const base = name.slice(0, -suffix.length);
        entry = table.get(base);
        if (entry) {
          matched = base;
          break;
        }
      }
    }
  }
  if (!entry) return { kind: 'forward' };
  const ips = entry.ips.filter((ip) => (qtype === 'A' ? isV4(ip) : qtype === 'AAAA' ? !isV4(ip) : false));
  return ips.length > 0 ? { kind: 'answer', name: matched, ips } : { kind: 'nodata', name: matched };
}
