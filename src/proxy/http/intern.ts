/**
 * Strings for header names (and their recent values) without making a new string per field. A proxy sees the same
 * few dozen names, and mostly the same values, on every request: building each from the buffer costs a native
 * call, a lower-casing copy and, at its first Map or Set lookup, hashing it. Here the parser hashes a name while it
 * scans it and gets back one shared string; a value equal byte for byte to the last one seen under that name is
 * shared too. The tables are small and fixed in size: unusual names only replace entries, never grow them. Each
 * entry keeps its bytes beside the string: comparing typed arrays is about twice as fast as charCodeAt.
 */

/** ASCII lower-casing by byte (header names are tokens: no other bytes change). */
export const LOWER = (() => {
  const t = new Uint8Array(256);
  for (let c = 0; c < 256; c++) t[c] = c >= 0x41 && c <= 0x5a ? c + 0x20 : c;
  return t;
})();

const SLOTS = 1024;
const MASK = SLOTS - 1;
const names: Array<string | undefined> = new Array(SLOTS).fill(undefined);
const nameBytes: Array<Uint8Array | undefined> = new Array(SLOTS).fill(undefined);
const values: Array<string | undefined> = new Array(SLOTS).fill(undefined);
const valueBytes: Array<Uint8Array | undefined> = new Array(SLOTS).fill(undefined);
/** Values longer than this are never shared (they are rarely repeated, and comparing them costs more). */
const MAX_SHARED_VALUE = 128;
/** Nor are longer names: the tables stay small whatever clients send (at most ~1024 x (64 + 128) x 2 bytes). */
const MAX_SHARED_NAME = 64;

function slotOf(h: number): number {
  return (h ^ (h >>> 10)) & MASK;
}

function bytesOf(s: string): Uint8Array {
  const u = new Uint8Array(s.length);
  for (let k = 0; k < s.length; k++) u[k] = s.charCodeAt(k);
  return u;
}

function copyBytes(buf: Buffer, start: number, end: number): Uint8Array {
  const u = new Uint8Array(end - start);
  for (let k = start; k < end; k++) u[k - start] = buf[k] as number;
  return u;
}

/** The running hash callers compute over lower-cased name bytes (or exact bytes for internExact), from a seed. */
function hashString(s: string): number {
  let h = 0;
  for (let k = 0; k < s.length; k++) h = (Math.imul(h, 31) + s.charCodeAt(k)) | 0;
  return h;
}

// Common names start as the program's own literals, so comparisons with them are pointer checks.
for (const n of [
  'accept',
  'accept-encoding',
  'accept-language',
  'authorization',
  'cache-control',
  'connection',
  'content-encoding',
  'content-length',
  'content-type',
  'cookie',
  'date',
  'etag',
  'expect',
  'grpc-message',
  'grpc-status',
  'host',
  'keep-alive',
  'last-modified',
  'location',
  'proxy-connection',
  'server',
  'set-cookie',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'user-agent',
  'vary',
  'x-b3-parentspanid',
  'x-b3-sampled',
  'x-b3-spanid',
  'x-b3-traceid',
  'x-envoy-attempt-count',
  'x-forwarded-client-cert',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-request-id',
  'traceparent',
  'tracestate',
]) {
  const slot = slotOf(hashString(n));
  if (names[slot] === undefined) {
    names[slot] = n;
    nameBytes[slot] = bytesOf(n);
  }
}

/** The lower-cased name in buf[start, end), whose lower-cased bytes hash to `h`. */
export function internName(buf: Buffer, start: number, end: number, h: number): string {
  const slot = slotOf(h);
  const len = end - start;
  const b = nameBytes[slot];
  if (b !== undefined && b.length === len) {
    let k = 0;
    while (k < len && b[k] === LOWER[buf[start + k] as number]) k++;
    if (k === len) return names[slot] as string;
  }
  const made = buf.toString('latin1', start, end).toLowerCase();
  if (len > MAX_SHARED_NAME) return made;
  names[slot] = made;
  nameBytes[slot] = bytesOf(made);
  values[slot] = undefined;
  valueBytes[slot] = undefined;
  return made;
}

/**
 * The last value seen for a field whose name hashed to `h`, when buf[at, ...) holds exactly its bytes followed by
 * `next` (the CR ending the line). It was validated when it was first parsed, so equal bytes need no second check.
 */
export function knownValue(buf: Buffer, at: number, h: number, next: number): string | undefined {
  const slot = slotOf(h);
  const b = valueBytes[slot];
  if (b === undefined || buf[at + b.length] !== next) return undefined;
  const len = b.length;
  for (let k = 0; k < len; k++) if (b[k] !== buf[at + k]) return undefined;
  return values[slot];
}

/** Remembers a validated value (found in buf[start, end)) for knownValue. */
export function rememberValue(h: number, value: string, buf: Buffer, start: number, end: number): void {
  if (value.length > MAX_SHARED_VALUE) return;
  const slot = slotOf(h);
  values[slot] = value;
  valueBytes[slot] = copyBytes(buf, start, end);
}

const EXACT_SLOTS = 512;
const exact: Array<string | undefined> = new Array(EXACT_SLOTS).fill(undefined);
const exactBytes: Array<Uint8Array | undefined> = new Array(EXACT_SLOTS).fill(undefined);
const MAX_EXACT = 256;

/**
 * The string of buf[start, end) exactly (no case folding), shared with the last one whose bytes hashed to the same
 * slot: methods and request-targets, which the caller has validated and hashed (from its own seed).
 */
export function internExact(buf: Buffer, start: number, end: number, h: number): string {
  const len = end - start;
  if (len > MAX_EXACT) return buf.toString('latin1', start, end);
  const slot = (h ^ (h >>> 9)) & (EXACT_SLOTS - 1);
  const b = exactBytes[slot];
  if (b !== undefined && b.length === len) {
    let k = 0;
    while (k < len && b[k] === buf[start + k]) k++;
    if (k === len) return exact[slot] as string;
  }
  const made = buf.toString('latin1', start, end);
  exact[slot] = made;
  exactBytes[slot] = copyBytes(buf, start, end);
  return made;
}
