import { STATUS_CODES } from 'node:http';
import type { HeaderOps } from '../proxy-config.js';

/**
 * Connection-specific fields (RFC 9110 7.6.1) a proxy never forwards, plus the framing fields it sets itself.
 * `te` is handled apart (only `trailers` survives), as are fields nominated by Connection.
 */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'te',
  'trailer',
  'content-length',
  'host',
  'expect',
  'http2-settings',
]);

export function isHopByHop(name: string): boolean {
  return HOP_BY_HOP.has(name);
}

/** Appends `name: value` pairs that survive forwarding from src into dst, dropping hop-by-hop and nominated ones. */
export function copyEndToEnd(
  srcNames: readonly string[],
  srcValues: readonly string[],
  nominated: readonly string[] | undefined,
  dstNames: string[],
  dstValues: string[],
  skip?: ReadonlySet<string>,
): void {
  for (let k = 0; k < srcNames.length; k++) {
    const n = srcNames[k] as string;
    if (HOP_BY_HOP.has(n) || n.charCodeAt(0) === 0x3a) continue;
    if (nominated?.includes(n) || skip?.has(n)) continue;
    dstNames.push(n);
    dstValues.push(srcValues[k] as string);
  }
}

export function removeHeader(names: string[], values: string[], name: string): void {
  let w = 0;
  for (let r = 0; r < names.length; r++) {
    if (names[r] === name) continue;
    names[w] = names[r] as string;
    values[w] = values[r] as string;
    w++;
  }
  names.length = w;
  values.length = w;
}

export function setHeader(names: string[], values: string[], name: string, value: string): void {
  const i = names.indexOf(name);
  if (i < 0) {
    names.push(name);
    values.push(value);
    return;
  }
  values[i] = value;
  if (names.indexOf(name, i + 1) >= 0) {
    removeHeader(names, values, name);
    names.push(name);
    values.push(value);
  }
}

export function getHeader(names: readonly string[], values: readonly string[], name: string): string | undefined {
  const i = names.indexOf(name);
  if (i < 0) return undefined;
  // Repeated fields read as one comma-joined value (RFC 9110 5.3), as Envoy's header matchers see them.
  if (names.indexOf(name, i + 1) < 0) return values[i];
  let v = values[i] as string;
  for (let k = i + 1; k < names.length; k++) if (names[k] === name) v += `,${values[k] as string}`;
  return v;
}

/** Envoy's order: removals first, then additions (append adds another field; otherwise it overwrites). */
export function applyHeaderOps(ops: HeaderOps, names: string[], values: string[]): void {
  for (const r of ops.remove) removeHeader(names, values, r);
  for (const a of ops.add) {
    if (a.append) {
      names.push(a.name);
      values.push(a.value);
    } else setHeader(names, values, a.name, a.value);
  }
}

export function hasOps(ops: HeaderOps | undefined): ops is HeaderOps {
  return ops !== undefined && (ops.add.length > 0 || ops.remove.length > 0);
}

const STATUS_LINES: string[] = [];
/** `HTTP/1.1 200 OK\r\n`, cached per status. */
export function statusLine(status: number): string {
  let s = STATUS_LINES[status];
  if (s === undefined) {
    s = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}\r\n`;
    STATUS_LINES[status] = s;
  }
  return s;
}

/** Envoy's HTTP to gRPC status mapping for local replies (Grpc::Utility::httpToGrpcStatus). */
export function grpcStatusFor(httpStatus: number): number {
  switch (httpStatus) {
    case 400:
      return 13;
    case 401:
      return 16;
    case 403:
      return 7;
    case 404:
      return 12;
    case 429:
    case 502:
    case 503:
    case 504:
      return 14;
    default:
      return 2;
  }
}

export function isGrpc(contentType: string | undefined): boolean {
  return contentType?.startsWith('application/grpc') === true;
}

/** `host-shadow` or `host-shadow:port`: where Envoy points mirrored requests. */
export function shadowAuthority(authority: string): string {
  const close = authority.lastIndexOf(']');
  const colon = authority.lastIndexOf(':');
  if (colon > close && colon > 0) return `${authority.slice(0, colon)}-shadow${authority.slice(colon)}`;
  return `${authority}-shadow`;
}

/** Drops hop-by-hop fields (and those the message's Connection nominated) in place. */
export function stripHopByHop(names: string[], values: string[], nominated?: readonly string[]): void {
  let w = 0;
  for (let r = 0; r < names.length; r++) {
    const n = names[r] as string;
    if (HOP_BY_HOP.has(n) || nominated?.includes(n)) continue;
    if (w !== r) {
      names[w] = n;
      values[w] = values[r] as string;
    }
    w++;
  }
  if (w !== names.length) {
    names.length = w;
    values.length = w;
  }
}
