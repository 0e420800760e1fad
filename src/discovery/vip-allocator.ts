import { ErrorCode, vmeshError } from '../lib/errors.js';
import type { Store, StoreOp } from '../store/store.js';

/** Virtual IPs come from 240.240.0.0/16 (DESIGN.md); the agent routes this range to the capture. */
const BASE = ((240 << 24) | (240 << 16)) >>> 0;
const SIZE = 1 << 16;
const PREFIX = 'vips/';

function toIp(n: number): string {
  return [(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

function toIndex(ip: string): number {
  const p = ip.split('.').map(Number);
  return ((((p[0] ?? 0) << 24) | ((p[1] ?? 0) << 16) | ((p[2] ?? 0) << 8) | (p[3] ?? 0)) >>> 0) - BASE;
}

/**
 * One virtual IP per service hostname, persisted in the store so a service keeps its address across
 * controller restarts (clients and DNS caches hold it). Allocation takes the lowest free address.
 */
export class VipAllocator {
  constructor(private readonly store: Store) {}

  get(hostname: string): string | undefined {
    const v = this.store.get(PREFIX + hostname);
    return typeof v === 'string' ? v : undefined;
  }

  all(): Map<string, string> {
    return new Map(this.store.list(PREFIX).map((e) => [e.key.slice(PREFIX.length), String(e.value)]));
  }

  /**
   * Makes the allocation match `hostnames` exactly: new services get an address, removed ones free
   * theirs; existing ones keep what they had. One store transaction.
   */
  async sync(hostnames: Iterable<string>): Promise<Map<string, string>> {
    const want = new Set(hostnames);
    await this.store.txn((s) => {
      const current = new Map(s.list(PREFIX).map((e) => [e.key.slice(PREFIX.length), String(e.value)]));
      const ops: StoreOp[] = [];
      const used = new Set<number>();
      for (const [host, ip] of current) {
        if (want.has(host)) used.add(toIndex(ip));
        else ops.push({ op: 'delete', key: PREFIX + host });
      }
      // .0.0 is the network address; start at .0.1 and never hand out the broadcast address.
      let next = 1;
      for (const host of [...want].sort()) {
        if (current.has(host)) continue;
        while (used.has(next)) next++;
        if (next >= SIZE - 1) throw vmeshError(ErrorCode.Conflict, 'virtual IP range 240.240.0.0/16 is exhausted');
        used.add(next);
        ops.push({ op: 'put', key: PREFIX + host, value: toIp(BASE + next) });
      }
      return ops;
    });
    return this.all();
  }
}
