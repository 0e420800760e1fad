import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { Logger } from '../lib/logger.js';

export type Lookup = (host: string) => Promise<ReadonlyArray<{ address: string; family: number }>>;

const defaultLookup: Lookup = (host) => dnsLookup(host, { all: true });

function split(address: string): { host: string; port: string } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(address) ?? /^([^:[\]]+):(\d+)$/.exec(address);
  return { host: m?.[1] ?? address, port: m?.[2] ?? '15012' };
}

/**
 * The gRPC target for the agent's long-lived channels (xDS, health reports). One controller: its address as
 * given (grpc-js resolves a name again on every reconnect). Several: an `ipv4:` or `ipv6:` address list, which
 * grpc-js's pick_first tries in order, moving to the next when the connected controller goes away; names are
 * resolved here, once (grpc-js has no multi-name target). A list cannot mix families: the family most addresses
 * have is kept and the others are said. Join, renewal and signing try each configured address themselves.
 */
export async function controllerTarget(controllers: readonly string[], logger: Logger, lookup: Lookup = defaultLookup): Promise<string> {
  if (controllers.length <= 1) return controllers[0] ?? '';
  const v4: string[] = [];
  const v6: string[] = [];
  for (const c of controllers) {
    const { host, port } = split(c);
    let found: ReadonlyArray<{ address: string; family: number }>;
    if (isIP(host) !== 0) found = [{ address: host, family: isIP(host) }];
    else {
      try {
        found = await lookup(host);
      } catch (e) {
        logger.warn({ controller: c, err: (e as Error).message }, 'controller name does not resolve; left out of the xDS target');
        continue;
      }
    }
    for (const a of found) {
      const list = a.family === 6 ? v6 : v4;
      const entry = a.family === 6 ? `[${a.address}]:${port}` : `${a.address}:${port}`;
      if (!list.includes(entry)) list.push(entry);
    }
  }
  if (v4.length === 0 && v6.length === 0) return controllers[0] ?? '';
  const [scheme, list, dropped] = v4.length >= v6.length ? ['ipv4', v4, v6] : ['ipv6', v6, v4];
  if (dropped.length > 0) logger.warn({ kept: list, dropped }, 'controllers of both IP families: the xDS target keeps one family');
  return `${scheme}:${list.join(',')}`;
}
