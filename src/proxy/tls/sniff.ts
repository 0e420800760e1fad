import type { Socket } from 'node:net';

/**
 * Envoy's tls_inspector: peek at the first bytes of a connection, without consuming them, to tell TLS from
 * plaintext and read the ClientHello's SNI and ALPN for filter chain selection. Whatever was read is pushed
 * back with `unshift`, so the next reader (TLS termination, the HTTP parser, the TCP proxy) sees every byte.
 */

export interface SniffResult {
  readonly transport: 'tls' | 'raw_buffer';
  /** Lower-case server name from the SNI extension. */
  readonly sni?: string;
  /** Protocols the client offered (ALPN), in its order. */
  readonly alpn: readonly string[];
  /** The client closed (or failed) before a decision: nothing is left to serve. */
  readonly closed?: boolean;
}

export type ClientHelloParse = SniffResult | { readonly transport: 'incomplete' };

export interface SniffOptions {
  /** How long to wait for the first byte; server-first protocols send none, so they continue as raw_buffer. */
  readonly firstByteTimeoutMs?: number;
  /** How long a started ClientHello may take to arrive completely. */
  readonly helloTimeoutMs?: number;
  /** Larger ClientHellos are not parsed (treated as TLS without SNI/ALPN). */
  readonly maxBytes?: number;
}

const RECORD_HANDSHAKE = 0x16;
const HANDSHAKE_CLIENT_HELLO = 1;
const EXT_SERVER_NAME = 0;
const EXT_ALPN = 16;
const NO_ALPN: readonly string[] = Object.freeze([]);
const RAW: SniffResult = Object.freeze({ transport: 'raw_buffer', alpn: NO_ALPN });
const TLS_UNPARSED: SniffResult = Object.freeze({ transport: 'tls', alpn: NO_ALPN });
const INCOMPLETE = Object.freeze({ transport: 'incomplete' as const });

/**
 * Classifies the bytes a client sent first. A ClientHello may span several TLS records; their handshake
 * fragments are joined until the whole message is there (or `maxBytes` is reached).
 */
export function parseClientHello(buf: Buffer, maxBytes = 16 * 1024): ClientHelloParse {
  if (buf.length === 0) return INCOMPLETE;
  if (buf[0] !== RECORD_HANDSHAKE) return RAW;
  if (buf.length < 3) return INCOMPLETE;
  // TLS 1.0-1.3 records all say major version 3 (SSLv2 hellos are not supported, as in Envoy).
  if (buf[1] !== 3) return RAW;
  const fragments: Buffer[] = [];
  let have = 0;
  let need = -1;
  let off = 0;
  while (need < 0 || have < need) {
    if (off >= maxBytes) return TLS_UNPARSED;
    if (buf.length < off + 5) return INCOMPLETE;
    if (buf[off] !== RECORD_HANDSHAKE) return have === 0 ? RAW : TLS_UNPARSED;
    const len = buf.readUInt16BE(off + 3);
    if (buf.length < off + 5 + len) return off + 5 + len > maxBytes ? TLS_UNPARSED : INCOMPLETE;
    const fragment = buf.subarray(off + 5, off + 5 + len);
    fragments.push(fragment);
    have += fragment.length;
    off += 5 + len;
    if (need < 0 && have >= 4) {
      const head = fragments.length === 1 ? fragment : Buffer.concat(fragments);
      if (head[0] !== HANDSHAKE_CLIENT_HELLO) return RAW;
      need = 4 + head.readUIntBE(1, 3);
      if (need > maxBytes) return TLS_UNPARSED;
    }
  }
  const msg = fragments.length === 1 ? (fragments[0] as Buffer) : Buffer.concat(fragments);
  return readHelloBody(msg.subarray(4, need));
}

function readHelloBody(b: Buffer): SniffResult {
  try {
    let p = 2 + 32; // client_version, random
    p += 1 + b.readUInt8(p); // session_id
    p += 2 + b.readUInt16BE(p); // cipher_suites
    p += 1 + b.readUInt8(p); // compression_methods
    if (p + 2 > b.length) return TLS_UNPARSED;
    const end = Math.min(b.length, p + 2 + b.readUInt16BE(p));
    p += 2;
    let sni: string | undefined;
    let alpn: string[] | undefined;
    while (p + 4 <= end) {
      const type = b.readUInt16BE(p);
      const len = b.readUInt16BE(p + 2);
      const data = b.subarray(p + 4, p + 4 + len);
      p += 4 + len;
      if (type === EXT_SERVER_NAME) sni = readSni(data);
      else if (type === EXT_ALPN) alpn = readAlpn(data);
    }
    return sni === undefined ? { transport: 'tls', alpn: alpn ?? NO_ALPN } : { transport: 'tls', sni, alpn: alpn ?? NO_ALPN };
  } catch {
    // A truncated length field (RangeError): TLS all the same, but nothing usable to match on.
    return TLS_UNPARSED;
  }
}

function readSni(d: Buffer): string | undefined {
  const end = Math.min(d.length, 2 + d.readUInt16BE(0));
  let p = 2;
  while (p + 3 <= end) {
    const type = d.readUInt8(p);
    const len = d.readUInt16BE(p + 1);
    if (type === 0) return d.toString('latin1', p + 3, Math.min(end, p + 3 + len)).toLowerCase();
    p += 3 + len;
  }
  return undefined;
}

function readAlpn(d: Buffer): string[] {
  const out: string[] = [];
  const end = Math.min(d.length, 2 + d.readUInt16BE(0));
  let p = 2;
  while (p < end) {
    const len = d.readUInt8(p);
    if (len > 0 && p + 1 + len <= end) out.push(d.toString('latin1', p + 1, p + 1 + len));
    p += 1 + len;
  }
  return out;
}

/**
 * Waits for the client's first bytes (bounded in time and size), classifies them and pushes them back.
 * The socket is left paused: the next consumer resumes it (pipe, TLSSocket and http.Server all do).
 */
export function sniffTransport(socket: Socket, opts: SniffOptions = {}): Promise<SniffResult> {
  const firstByteMs = opts.firstByteTimeoutMs ?? 100;
  const helloMs = opts.helloTimeoutMs ?? 5000;
  const maxBytes = opts.maxBytes ?? 16 * 1024;
  return new Promise((resolve) => {
    let buf: Buffer = Buffer.alloc(0);
    let timer: NodeJS.Timeout | undefined;
    const finish = (r: SniffResult, pushBack: boolean) => {
      clearTimeout(timer);
      socket.removeListener('readable', onReadable);
      socket.removeListener('end', onGone);
      socket.removeListener('close', onGone);
      socket.removeListener('error', onGone);
      if (pushBack && buf.length > 0) socket.unshift(buf);
      resolve(r);
    };
    const onGone = () => finish({ ...RAW, closed: true }, false);
    const onTimeout = () => {
      // The hello is still incomplete: give up on inspecting it, the bytes are passed on untouched.
      finish(buf.length > 0 && buf[0] === RECORD_HANDSHAKE ? TLS_UNPARSED : RAW, true);
    };
    const onReadable = () => {
      // One read() per event: a second one at EOF would let 'end' fire, after which unshift is refused.
      const chunk = socket.read() as Buffer | null;
      if (chunk === null) return;
      const first = buf.length === 0;
      buf = first ? chunk : Buffer.concat([buf, chunk]);
      const r = parseClientHello(buf, maxBytes);
      if (r.transport !== 'incomplete') return finish(r, true);
      if (first) {
        clearTimeout(timer);
        timer = setTimeout(onTimeout, helloMs);
      }
    };
    timer = setTimeout(onTimeout, firstByteMs);
    socket.on('readable', onReadable);
    socket.once('end', onGone);
    socket.once('close', onGone);
    socket.once('error', onGone);
  });
}
