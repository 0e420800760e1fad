/**
 * DeltaDiscoveryResponse written straight to protobuf wire format. An initial sync sends each agent thousands of
 * resources that are already encoded (`Any` bytes shared by every stream); going through protobufjs's fromObject
 * and encode re-copies each one and its name and version per stream, a quarter of the controller's CPU in the
 * xDS bench's initial sync. Here each resource's `Resource` submessage is encoded once and the response is the
 * concatenation. Only the fields vmesh's server sets are handled; anything else returns undefined and the
 * caller encodes it the general way.
 *
 * Field numbers (envoy.service.discovery.v3): DeltaDiscoveryResponse system_version_info 1, resources 2,
 * type_url 4, nonce 5, removed_resources 6; Resource version 1, resource 2, name 3; Any type_url 1, value 2.
 */

interface AnyLike {
  readonly type_url: string;
  readonly value: Uint8Array;
}

interface ResourceLike {
  readonly name: string;
  readonly version: string;
  readonly resource: AnyLike;
}

const RESPONSE_FIELDS = new Set(['system_version_info', 'type_url', 'resources', 'removed_resources', 'nonce']);
const RESOURCE_FIELDS = new Set(['name', 'version', 'resource']);

/** Encoded `Resource` submessages by the `Any` they carry (shared by every stream sending that resource). */
const encodedResources = new WeakMap<object, { readonly name: string; readonly version: string; readonly bytes: Buffer }>();

function varintLength(n: number): number {
  let len = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    len += 1;
  }
  return len;
}

class Writer {
  private readonly buf: Buffer;
  private pos = 0;

  constructor(size: number) {
    this.buf = Buffer.allocUnsafe(size);
  }

  varint(n: number): void {
    while (n >= 0x80) {
      this.buf[this.pos++] = (n & 0x7f) | 0x80;
      n = Math.floor(n / 128);
    }
    this.buf[this.pos++] = n;
  }

  /** The tag and length of a length-delimited field whose payload the caller writes next. */
  header(tag: number, length: number): void {
    this.buf[this.pos++] = tag;
    this.varint(length);
  }

  bytes(tag: number, b: Uint8Array): void {
    this.header(tag, b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  string(tag: number, s: string, byteLength: number): void {
    this.header(tag, byteLength);
    this.pos += this.buf.write(s, this.pos, 'utf8');
  }

  done(): Buffer {
    if (this.pos !== this.buf.length) throw new Error(`wire-delta: wrote ${this.pos} of ${this.buf.length} bytes`);
    return this.buf;
  }
}

/** Tag byte and length prefix plus the payload, for a length-delimited field numbered below 16. */
function fieldLength(payload: number): number {
  return 1 + varintLength(payload) + payload;
}

function isAnyLike(v: unknown): v is AnyLike {
  if (!v || typeof v !== 'object') return false;
  const a = v as Record<string, unknown>;
  return Object.keys(a).every((k) => k === 'type_url' || k === 'value') && typeof a.type_url === 'string' && a.value instanceof Uint8Array;
}

function isResourceLike(v: unknown): v is ResourceLike {
  if (!v || typeof v !== 'object') return false;
  const r = v as Record<string, unknown>;
  for (const k of Object.keys(r)) if (!RESOURCE_FIELDS.has(k)) return false;
  return typeof r.name === 'string' && typeof r.version === 'string' && isAnyLike(r.resource);
}

function encodeResource(r: ResourceLike): Buffer {
  const hit = encodedResources.get(r.resource);
  if (hit && hit.name === r.name && hit.version === r.version) return hit.bytes;
  const nameLen = Buffer.byteLength(r.name);
  const versionLen = Buffer.byteLength(r.version);
  const typeLen = Buffer.byteLength(r.resource.type_url);
  const anyLen = (typeLen > 0 ? fieldLength(typeLen) : 0) + (r.resource.value.length > 0 ? fieldLength(r.resource.value.length) : 0);
  const w = new Writer((nameLen > 0 ? fieldLength(nameLen) : 0) + (versionLen > 0 ? fieldLength(versionLen) : 0) + fieldLength(anyLen));
  if (nameLen > 0) w.string(0x1a, r.name, nameLen);
  if (versionLen > 0) w.string(0x0a, r.version, versionLen);
  w.header(0x12, anyLen);
  if (typeLen > 0) w.string(0x0a, r.resource.type_url, typeLen);
  if (r.resource.value.length > 0) w.bytes(0x12, r.resource.value);
  const bytes = w.done();
  encodedResources.set(r.resource, { name: r.name, version: r.version, bytes });
  return bytes;
}

/** The response's wire bytes, or undefined when it holds a field this encoder does not write. */
export function encodeDeltaResponse(v: unknown): Buffer | undefined {
  if (!v || typeof v !== 'object') return undefined;
  const res = v as Record<string, unknown>;
  for (const k of Object.keys(res)) if (res[k] !== undefined && !RESPONSE_FIELDS.has(k)) return undefined;
  const strings: [number, string][] = [];
  for (const [tag, key] of [
    [0x0a, 'system_version_info'],
    [0x22, 'type_url'],
    [0x2a, 'nonce'],
  ] as const) {
    const s = res[key];
    if (s === undefined || s === '') continue;
    if (typeof s !== 'string') return undefined;
    strings.push([tag, s]);
  }
  const resources = res.resources ?? [];
  const removed = res.removed_resources ?? [];
  if (!Array.isArray(resources) || !Array.isArray(removed)) return undefined;
  const parts: Buffer[] = [];
  for (const r of resources) {
    if (!isResourceLike(r)) return undefined;
    parts.push(encodeResource(r));
  }
  for (const n of removed) if (typeof n !== 'string') return undefined;
  let size = 0;
  const stringLens = strings.map(([, s]) => Buffer.byteLength(s));
  for (const l of stringLens) size += fieldLength(l);
  for (const p of parts) size += fieldLength(p.length);
  const removedLens = (removed as string[]).map((n) => Buffer.byteLength(n));
  for (const l of removedLens) size += fieldLength(l);
  const w = new Writer(size);
  strings.forEach(([tag, s], i) => {
    w.string(tag, s, stringLens[i] as number);
  });
  for (const p of parts) w.bytes(0x12, p);
  (removed as string[]).forEach((n, i) => {
    w.string(0x32, n, removedLens[i] as number);
  });
  return w.done();
}
