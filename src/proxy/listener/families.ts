import type { Server } from 'node:net';
import { networkInterfaces } from 'node:os';

/** A listener's sockets: the configured address, plus the IPv6 wildcard when that address is the IPv4 one. */
export interface ListenedFamilies {
  readonly servers: readonly Server[];
  readonly port: number;
  /** The listener also accepts IPv6 (a separate `::` socket). */
  readonly ipv6: boolean;
}

const IPV4_ANY = '0.0.0.0';

/**
 * Whether this host has IPv6 at all: any IPv6 address, `::1` included. With IPv6 disabled by sysctl the socket
 * family still exists and `[::]` binds fine, yet no IPv6 packet can arrive, so an address is the real test.
 */
export function hostHasIpv6(): boolean {
  return Object.values(networkInterfaces()).some((list) => (list ?? []).some((a) => a.family === 'IPv6'));
}

function listenOnce(server: Server, host: string, port: number, ipv6Only: boolean): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port, ...(ipv6Only ? { ipv6Only } : {}) }, () => {
      server.removeListener('error', reject);
      const a = server.address();
      resolve(a && typeof a !== 'string' ? a.port : port);
    });
  });
}

/**
 * Binds `host:port`; a wildcard IPv4 listener (xDS says `0.0.0.0`, as Istio's virtual listeners do) also gets
 * an `[::]` socket of its own, IPv6-only. Two sockets rather than one dual-stack `::`: nothing downstream ever
 * sees an IPv4-mapped address, and when `[::]` cannot be had (no IPv6 on the host, EAFNOSUPPORT, the port
 * taken) IPv4 is still served; `ipv6: false` then tells the agent not to redirect IPv6 to a port nobody
 * listens on. A listener stays as bound: IPv6 that appears later is served from its next rebind.
 */
export async function listenFamilies(
  make: () => Server,
  host: string,
  port: number,
  opts: { readonly ipv6: boolean; readonly onIpv6Error?: (e: NodeJS.ErrnoException) => void },
): Promise<ListenedFamilies> {
  const first = make();
  const bound = await listenOnce(first, host, port, false);
  if (host !== IPV4_ANY || !opts.ipv6) return { servers: [first], port: bound, ipv6: false };
  const second = make();
  try {
    await listenOnce(second, '::', bound, true);
    return { servers: [first, second], port: bound, ipv6: true };
  } catch (e) {
    second.close();
    opts.onIpv6Error?.(e as NodeJS.ErrnoException);
    return { servers: [first], port: bound, ipv6: false };
  }
}
