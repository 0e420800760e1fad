/**
 * Just enough DER to build certificates and read CSRs and certificates without a JavaScript ASN.1 object
 * model: signing throughput is bounded by that model, not by the signature (notes/lab-and-fleet.md).
 * The reader is strict (definite lengths, bounds-checked) because CSRs come from the network.
 */

export const Tag = {
  Boolean: 0x01,
  Integer: 0x02,
  BitString: 0x03,
  OctetString: 0x04,
  Null: 0x05,
  Oid: 0x06,
  Utf8String: 0x0c,
  PrintableString: 0x13,
  Ia5String: 0x16,
  UtcTime: 0x17,
  GeneralizedTime: 0x18,
  Sequence: 0x30,
  Set: 0x31,
} as const;

function lengthBytes(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

export function tlv(tag: number, content: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from([tag]), lengthBytes(content.length), content]);
}

export const seq = (...items: Uint8Array[]): Buffer => tlv(Tag.Sequence, Buffer.concat(items));
export const set = (...items: Uint8Array[]): Buffer => tlv(Tag.Set, Buffer.concat(items));
export const nullValue = (): Buffer => Buffer.from([Tag.Null, 0]);
export const bool = (v: boolean): Buffer => Buffer.from([Tag.Boolean, 1, v ? 0xff : 0]);
export const octetString = (b: Uint8Array): Buffer => tlv(Tag.OctetString, b);
export const utf8 = (s: string): Buffer => tlv(Tag.Utf8String, Buffer.from(s, 'utf8'));
export const ia5 = (s: string): Buffer => tlv(Tag.Ia5String, Buffer.from(s, 'ascii'));
/** A context-specific tag: `[n] IMPLICIT` for a primitive value, or a constructed wrapper (`[n] EXPLICIT`, `[n] SEQUENCE`). */
export const ctx = (n: number, content: Uint8Array, constructed: boolean): Buffer => tlv((constructed ? 0xa0 : 0x80) | n, content);

/** A non-negative INTEGER from its big-endian magnitude (leading zeros dropped, a 0x00 added when the top bit is set). */
export function uint(magnitude: Uint8Array): Buffer {
  let i = 0;
  while (i < magnitude.length - 1 && magnitude[i] === 0) i++;
  const m = Buffer.from(magnitude.subarray(i));
  const body = m.length === 0 ? Buffer.from([0]) : (m[0] ?? 0) & 0x80 ? Buffer.concat([Buffer.from([0]), m]) : m;
  return tlv(Tag.Integer, body);
}

export const smallInt = (n: number): Buffer => uint(Buffer.from([n]));

export function oid(dotted: string): Buffer {
  const parts = dotted.split('.').map(Number);
  const [a = 0, b = 0, ...rest] = parts;
  const out: number[] = [];
  for (const v of [a * 40 + b, ...rest]) {
    const chunk: number[] = [v & 0x7f];
    for (let x = Math.floor(v / 128); x > 0; x = Math.floor(x / 128)) chunk.unshift(0x80 | (x & 0x7f));
    out.push(...chunk);
  }
  return tlv(Tag.Oid, Buffer.from(out));
}

/** A named-bit BIT STRING (KeyUsage): trailing zero bits are dropped, as DER requires. */
export function namedBits(bits: readonly number[]): Buffer {
  const top = Math.max(...bits);
  const bytes = Buffer.alloc(Math.floor(top / 8) + 1);
  for (const b of bits) bytes[Math.floor(b / 8)] = (bytes[Math.floor(b / 8)] ?? 0) | (0x80 >> (b % 8));
  return tlv(Tag.BitString, Buffer.concat([Buffer.from([7 - (top % 8)]), bytes]));
}

export const bitString = (b: Uint8Array): Buffer => tlv(Tag.BitString, Buffer.concat([Buffer.from([0]), b]));

/** RFC 5280 4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050. */
export function time(d: Date): Buffer {
  const iso = d.toISOString(); // 2026-01-02T03:04:05.678Z
  const compact = `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}Z`;
  const year = d.getUTCFullYear();
  return year < 2050 ? tlv(Tag.UtcTime, Buffer.from(compact.slice(2), 'ascii')) : tlv(Tag.GeneralizedTime, Buffer.from(compact, 'ascii'));
}

// ---- reading ----

export interface Tlv {
  readonly tag: number;
  /** The whole element, header included (what a signature covers). */
  readonly raw: Buffer;
  readonly content: Buffer;
}

export class DerError extends Error {}

/** Reads the element at `offset`; throws DerError on anything malformed. */
export function readTlv(buf: Buffer, offset = 0): Tlv {
  if (offset + 2 > buf.length) throw new DerError('truncated header');
  const tag = buf[offset] ?? 0;
  if ((tag & 0x1f) === 0x1f) throw new DerError('multi-byte tags are not supported');
  const first = buf[offset + 1] ?? 0;
  let len = first;
  let header = 2;
  if (first & 0x80) {
    const n = first & 0x7f;
    if (n === 0 || n > 4) throw new DerError('indefinite or oversized length');
    if (offset + 2 + n > buf.length) throw new DerError('truncated length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + (buf[offset + 2 + i] ?? 0);
    header += n;
  }
  const end = offset + header + len;
  if (end > buf.length) throw new DerError('element runs past the end of its container');
  return { tag, raw: buf.subarray(offset, end), content: buf.subarray(offset + header, end) };
}

/** The elements inside a constructed value's content. */
export function children(content: Buffer): Tlv[] {
  const out: Tlv[] = [];
  for (let off = 0; off < content.length; ) {
    const t = readTlv(content, off);
    out.push(t);
    off += t.raw.length;
    if (out.length > 10_000) throw new DerError('too many elements');
  }
  return out;
}

/** Parses one whole DER value: trailing bytes are an error. */
export function readDer(buf: Buffer): Tlv {
  const t = readTlv(buf, 0);
  if (t.raw.length !== buf.length) throw new DerError('trailing bytes after the DER value');
  return t;
}

export function expect(t: Tlv | undefined, tag: number, what: string): Tlv {
  if (!t || t.tag !== tag) throw new DerError(`${what}: want tag 0x${tag.toString(16)}, got ${t ? `0x${t.tag.toString(16)}` : 'nothing'}`);
  return t;
}

export function readOid(t: Tlv): string {
  const b = t.content;
  const out: number[] = [];
  let v = 0;
  for (const byte of b) {
    v = v * 128 + (byte & 0x7f);
    if (!(byte & 0x80)) {
      if (out.length === 0) out.push(v < 80 ? Math.floor(v / 40) : 2, v < 80 ? v % 40 : v - 80);
      else out.push(v);
      v = 0;
    }
  }
  return out.join('.');
}

/** A BIT STRING's bytes (only whole-byte strings are meaningful for keys and signatures). */
export function readBitString(t: Tlv): Buffer {
  if (t.content.length < 1) throw new DerError('empty BIT STRING');
  return t.content.subarray(1);
}
