import type { CidrMatcher } from '../proxy-config.js';

/**
 * IP networks for RBAC and filter-chain matching (lib/addr.ts formats them). Parsing happens at compile time; `cidrContains` runs per
 * connection/request, so it parses the candidate address without allocating for IPv4 and reuses one scratch
 * buffer for IPv6.
 */

const scratch = new Uint8Array(16);

/** A dotted quad as an unsigned 32-bit number, or -1. */
function parseV4(ip: string, start: number, end: number): number {
  let value = 0;
  let octet = -1;
  let dots = 0;
  for (let i = start; i < end; i++) {
    const c = ip.charCodeAt(i);
    if (c === 46) {
      if (octet < 0 || dots === 3) return -1;
      value = value * 256 + octet;
      octet = -1;
      dots++;
    } else if (c >= 48 && c <= 57) {
      octet = octet < 0 ? c - 48 : octet * 10 + (c - 48);
      if (octet > 255) return -1;
    } else return -1;
  }
  if (octet < 0 || dots !== 3) return -1;
  return value * 256 + octet;
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/** Fills `out` with the 16 bytes of an IPv6 address (embedded IPv4 tail and zone id allowed); false if it is not one. */
function parseV6Into(ip: string, out: Uint8Array): boolean {
  let end = ip.indexOf('%');
  if (end < 0) end = ip.length;
  if (end === 0) return false;
  const groups: number[] = [];
  let gap = -1;
  let i = 0;
  if (ip.charCodeAt(0) === 58) {
    if (ip.charCodeAt(1) !== 58) return false;
    gap = 0;
    i = 2;
  }
  while (i < end) {
    let j = i;
    let value = 0;
    while (j < end && j - i < 5) {
      const h = hexValue(ip.charCodeAt(j));
      if (h < 0) break;
      value = value * 16 + h;
      j++;
    }
    const next = j < end ? ip.charCodeAt(j) : -1;
    if (next === 46) {
      // IPv4 tail: the last 32 bits.
      const v4 = parseV4(ip, i, end);
      if (v4 < 0) return false;
      groups.push(Math.floor(v4 / 65536), v4 % 65536);
      i = end;
      break;
    }
    if (j === i || j - i > 4) return false;
    groups.push(value);
    if (j === end) {
      i = end;
      break;
    }
    if (next !== 58) return false;
    if (ip.charCodeAt(j + 1) === 58) {
      if (gap >= 0) return false;
      gap = groups.length;
      i = j + 2;
    } else {
      i = j + 1;
      if (i === end) return false;
    }
  }
  if (groups.length > 8 || (gap < 0 && groups.length !== 8) || (gap >= 0 && groups.length === 8)) return false;
  const zeros = gap < 0 ? 0 : 8 - groups.length;
  let k = 0;
  for (let g = 0; g < 8; g++) {
    let v = 0;
    if (gap >= 0 && g >= gap && g < gap + zeros) v = 0;
    else v = groups[k++] ?? 0;
    out[g * 2] = v >> 8;
    out[g * 2 + 1] = v & 0xff;
  }
  return true;
}

function isV4Mapped(b: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return false;
  return b[10] === 0xff && b[11] === 0xff;
}

function mask(bytes: Uint8Array, prefix: number): Uint8Array {
  const out = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) {
    const bits = Math.max(0, Math.min(8, prefix - i * 8));
    out[i] = (bytes[i] ?? 0) & (bits === 0 ? 0 : (0xff << (8 - bits)) & 0xff);
  }
  return out;
}

/** IPv6 bytes in RFC 5952 text (the WHATWG URL parser writes IPv6 hosts that way). */
function v6Text(b: Uint8Array): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((((b[i] ?? 0) << 8) | (b[i + 1] ?? 0)).toString(16));
  return new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1);
}

/** An address and prefix as a network (host bits cleared, as Envoy's CidrRange does); undefined if invalid. */
export function makeCidr(address: string, prefix: number): CidrMatcher | undefined {
  const v4 = parseV4(address, 0, address.length);
  if (v4 >= 0) {
    if (!Number.isInteger(prefix) || prefix < 0 || prefix > 32) return undefined;
    const bytes = mask(new Uint8Array([v4 >>> 24, (v4 >>> 16) & 0xff, (v4 >>> 8) & 0xff, v4 & 0xff]), prefix);
    return Object.freeze({ family: 'IPv4', address: bytes.join('.'), prefix, bytes });
  }
  const b = new Uint8Array(16);
  if (!parseV6Into(address, b) || !Number.isInteger(prefix) || prefix < 0 || prefix > 128) return undefined;
  const bytes = mask(b, prefix);
  return Object.freeze({ family: 'IPv6', address: v6Text(bytes), prefix, bytes });
}

/** `10.0.0.0/8`, `2001:db8::/32`, or a bare address (a host network). */
export function parseCidrText(text: string): CidrMatcher | undefined {
  const t = text.trim();
  const slash = t.indexOf('/');
  if (slash < 0) {
    const v4 = parseV4(t, 0, t.length) >= 0;
    return makeCidr(t, v4 ? 32 : 128);
  }
  const p = t.slice(slash + 1);
  if (!/^\d{1,3}$/.test(p)) return undefined;
  return makeCidr(t.slice(0, slash), Number(p));
}

/** Envoy's CidrRange `{ address_prefix, prefix_len }` (prefix_len a UInt32Value or number; absent = host network). */
export function cidrFromRange(r: { readonly address_prefix?: unknown; readonly prefix_len?: unknown }): CidrMatcher | undefined {
  const address = typeof r.address_prefix === 'string' ? r.address_prefix : '';
  const raw = r.prefix_len;
  const len =
    raw === null || raw === undefined ? undefined : typeof raw === 'object' ? Number((raw as { value?: unknown }).value ?? 0) : Number(raw);
  if (len === undefined) return makeCidr(address, parseV4(address, 0, address.length) >= 0 ? 32 : 128);
  return makeCidr(address, len);
}

function prefixEqual(a: Uint8Array, aOffset: number, net: Uint8Array, prefix: number): boolean {
  const full = prefix >> 3;
  for (let i = 0; i < full; i++) if (a[aOffset + i] !== net[i]) return false;
  const rest = prefix & 7;
  if (rest === 0) return true;
  const m = (0xff << (8 - rest)) & 0xff;
  return ((a[aOffset + full] ?? 0) & m) === net[full];
}

/**
 * Whether `ip` is inside `c`. IPv4-mapped IPv6 (`::ffff:1.2.3.4`) matches IPv4 networks, and IPv4 addresses
 * match `::ffff:0:0/96` networks, as the kernel hands either form to a dual-stack socket.
 */
export function cidrContains(c: CidrMatcher, ip: string): boolean {
  const v4 = parseV4(ip, 0, ip.length);
  if (c.family === 'IPv4') {
    let value = v4;
    if (value < 0) {
      if (!parseV6Into(ip, scratch) || !isV4Mapped(scratch)) return false;
      value = (((scratch[12] ?? 0) << 24) >>> 0) + ((scratch[13] ?? 0) << 16) + ((scratch[14] ?? 0) << 8) + (scratch[15] ?? 0);
    }
    if (c.prefix === 0) return true;
    const b = c.bytes;
    const net = (((b[0] ?? 0) << 24) >>> 0) + ((b[1] ?? 0) << 16) + ((b[2] ?? 0) << 8) + (b[3] ?? 0);
    const shift = 32 - c.prefix;
    return Math.floor(value / 2 ** shift) === Math.floor(net / 2 ** shift);
  }
  if (v4 >= 0) {
    scratch.fill(0, 0, 10);
    scratch[10] = 0xff;
    scratch[11] = 0xff;
    scratch[12] = v4 >>> 24;
    scratch[13] = (v4 >>> 16) & 0xff;
    scratch[14] = (v4 >>> 8) & 0xff;
    scratch[15] = v4 & 0xff;
  } else if (!parseV6Into(ip, scratch)) return false;
  return prefixEqual(scratch, 0, c.bytes, c.prefix);
}
