/**
 * Strings for header names (and their recent values) without making a new string per field. A proxy sees the same
 * few dozen names, and mostly the same values, on every request: building each from the buffer costs a native
 * call, a lower-casing copy and, at its first Map or Set lookup, hashing it. Here the parser hashes a name while it
 * scans it and gets back one shared string; a value equal byte for byte to the last one seen under that name is
 * shared too. Both tables are small and fixed in size: unusual names only replace entries, never grow them.
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
const values: Array<string | undefined> = new Array(SLOTS).fill(undefined);
/** Values longer than this are never shared (they are rarely repeated, and comparing them costs more). */
const MAX_SHARED_VALUE = 128;

/** The running hash a caller computes over a name's lower-cased bytes: h = hashStep(h, LOWER[byte]), from 0. */
export function hashStep(h: number, lowerByte: number): number {
  return (Math.imul(h, 31) + lowerByte) | 0;
}

function slotOf(h: number): number {
  return (h ^ (h >>> 10)) & MASK;
}

function hashString(s: string): number {
  let h = 0;
  for (let k = 0; k < s.length; k++) h = hashStep(h, s.charCodeAt(k));
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
  names[slotOf(hashString(n))] ??= n;
}

/** The lower-cased name in buf[start, end), whose bytes hash to `h`. */
export function internName(buf: Buffer, start: number, end: number, h: number): string {
  const slot = slotOf(h);
  const cached = names[slot];
  const len = end - start;
  if (cached !== undefined && cached.length === len) {
    let k = 0;
    while (k < len && cached.charCodeAt(k) === LOWER[buf[start + k] as number]) k++;
    if (k === len) return cached;
  }
  const made = buf.toString('latin1', start, end).toLowerCase();
  names[slot] = made;
  values[slot] = undefined;
  return made;
}

/**
 * The last value seen for a field whose name hashed to `h`: when the next bytes of a field line are exactly it
 * (followed by CR) the parser takes it as is. It was validated when it was first parsed, so equal bytes need no
 * second check.
 */
export function lastValue(h: number): string | undefined {
  return values[slotOf(h)];
}

const EXACT_SLOTS = 512;
const exact: Array<string | undefined> = new Array(EXACT_SLOTS).fill(undefined);
const MAX_EXACT = 256;

/**
 * The string of buf[start, end) exactly (no case folding), shared with the last one whose bytes hashed to the same
 * slot: methods and request-targets, which the caller has validated and hashed with hashStep (from its own seed).
 */
export function internExact(buf: Buffer, start: number, end: number, h: number): string {
  const len = end - start;
  if (len > MAX_EXACT) return buf.toString('latin1', start, end);
  const slot = (h ^ (h >>> 9)) & (EXACT_SLOTS - 1);
  const cached = exact[slot];
  if (cached !== undefined && cached.length === len) {
    let k = 0;
    while (k < len && cached.charCodeAt(k) === buf[start + k]) k++;
    if (k === len) return cached;
  }
  const made = buf.toString('latin1', start, end);
  exact[slot] = made;
  return made;
}

/** Remembers a validated value for sharedValue. */
export function rememberValue(h: number, value: string): void {
  if (value.length <= MAX_SHARED_VALUE) values[slotOf(h)] = value;
}
