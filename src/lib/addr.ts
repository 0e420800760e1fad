import { isIP } from 'node:net';
import { ErrorCode, vmeshError } from './errors.js';

declare const brand: unique symbol;
type Brand<T, B extends string> = T & { readonly [brand]: B };

export type IpFamily = 'IPv4' | 'IPv6';

/** An endpoint; the brands keep a connection's original destination, local and remote ends apart. */
export interface SocketAddr {
  readonly address: string;
  readonly port: number;
  readonly family: IpFamily;
}

/** Where a captured connection was going before the nat redirect rewrote it. */
export type OrigDstAddr = Brand<SocketAddr, 'OrigDstAddr'>;
/** The local end of a socket (after redirect: the proxy's own listener). */
export type LocalAddr = Brand<SocketAddr, 'LocalAddr'>;
/** The peer of a socket. */
export type RemoteAddr = Brand<SocketAddr, 'RemoteAddr'>;

/** An IP network, e.g. `198.18.0.0/15` or `2001:2::/48` (see formatCidr). */
export interface Cidr {
  readonly family: IpFamily;
  readonly address: string;
  readonly prefix: number;
}

export function toOrigDst(a: SocketAddr): OrigDstAddr {
  return Object.freeze({ ...a }) as OrigDstAddr;
}
export function toLocal(a: SocketAddr): LocalAddr {
  return Object.freeze({ ...a }) as LocalAddr;
}
export function toRemote(a: SocketAddr): RemoteAddr {
  return Object.freeze({ ...a }) as RemoteAddr;
}

/** An endpoint from a socket's (or the kernel's) address and port, in normalizeIp's spelling. */
export function socketAddr(address: string, port: number): SocketAddr {
  const ip = normalizeIp(address);
  return { address: ip, port, family: ipFamily(ip) ?? (ip.includes(':') ? 'IPv6' : 'IPv4') };
}

/** `address:port`, as access logs and spans print a peer. */
export function formatSocketAddr(a: SocketAddr): string {
  return `${a.address}:${a.port}`;
}

export function sameSocketAddr(a: SocketAddr, b: SocketAddr): boolean {
  return a.port === b.port && normalizeIp(a.address) === normalizeIp(b.address);
}

/**
 * One spelling per address, so keys and comparisons agree whatever wrote them: IPv4-mapped IPv6 (a dual-stack
 * socket's `::ffff:1.2.3.4`, in dotted or hex form) as plain IPv4, other IPv6 in RFC 5952 form (`2001:2::3`, not
 * `2001:0002:0:0::3`). Anything else (names, zone ids) comes back lower-cased.
 */
export function normalizeIp(ip: string): string {
  const lower = ip.toLowerCase();
  if (!lower.includes(':')) return lower;
  const dotted = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(lower);
  if (dotted?.[1]) return dotted[1];
  if (isIP(lower) !== 6 || lower.includes('%')) return lower;
  // The WHATWG URL parser writes IPv6 hosts in RFC 5952's canonical form.
  const canonical = new URL(`http://[${lower}]/`).hostname.slice(1, -1);
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(canonical);
  if (!mapped?.[1] || !mapped[2]) return canonical;
  const hi = Number.parseInt(mapped[1], 16);
  const lo = Number.parseInt(mapped[2], 16);
  return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
}

export function ipFamily(ip: string): IpFamily | undefined {
  const v = isIP(ip);
  return v === 4 ? 'IPv4' : v === 6 ? 'IPv6' : undefined;
}

/**
 * Parses `addr` or `addr/prefix`; a bare address is a host route (/32 or /128).
 * `what` names the setting for the error message.
 */
export function parseCidr(text: string, what: string): Cidr {
  const [address = '', prefixText, extra] = text.trim().split('/');
  const family = ipFamily(address);
  if (!family || extra !== undefined) {
    throw vmeshError(ErrorCode.InvalidAddress, `${what}: "${text}" is not an IPv4/IPv6 address or CIDR`, { value: text });
  }
  const max = family === 'IPv4' ? 32 : 128;
  const prefix = prefixText === undefined ? max : Number(prefixText);
  if (!/^\d+$/.test(prefixText ?? String(max)) || prefix < 0 || prefix > max) {
    throw vmeshError(ErrorCode.InvalidAddress, `${what}: "${text}" has prefix length ${prefixText}, want 0-${max}`, {
      value: text,
    });
  }
  return Object.freeze({ family, address: address.toLowerCase(), prefix });
}

/** A network as text, `address/prefix`, for rules, config dumps and messages. */
export function formatCidr(c: Cidr): string {
  return `${c.address}/${c.prefix}`;
}

/** Ports are checked where they enter, so everything downstream can trust them. */
export function parsePort(value: unknown, what: string, opts: { allowZero?: boolean } = {}): number {
  const n = typeof value === 'number' ? value : typeof value === 'string' && /^\d+$/.test(value.trim()) ? Number(value) : NaN;
  const min = opts.allowZero ? 0 : 1;
  if (!Number.isInteger(n) || n < min || n > 65535) {
    throw vmeshError(ErrorCode.InvalidPort, `${what}: "${String(value)}" is not a port (${min}-65535)`, { value });
  }
  return n;
}
