import { METHODS } from 'node:http';
import { AUTHORITY, COLON, CR, FIELD_VALUE, HTAB, LF, SP, TARGET, TCHAR } from './chars.js';
import { internExact, internName, knownValue, LOWER, rememberValue } from './intern.js';

/**
 * A strict HTTP/1.1 head parser (RFC 9112). Anything a lenient peer could read differently is refused:
 * bare LF or CR, obs-fold, whitespace before the colon, CTLs in values, CL with TE, repeated or malformed
 * Content-Length, any Transfer-Encoding but a single `chunked`, repeated Host, odd request-targets.
 * Heads are parsed as a whole once their terminating CRLFCRLF arrived; bodies are framed elsewhere.
 */

export const MAX_HEAD_BYTES = 64 * 1024;

/**
 * Registered methods only, case-sensitive (llhttp's list, which Node exports; Envoy too refuses custom methods by
 * default). PRI belongs to the HTTP/2 preface, never to an HTTP/1.1 request.
 */
const KNOWN_METHODS: ReadonlySet<string> = new Set(METHODS.filter((m) => m !== 'PRI'));

export function validMethod(m: string): boolean {
  return KNOWN_METHODS.has(m);
}
export const MAX_HEADERS = 100;

export interface HeadError {
  readonly status: 400 | 417 | 431 | 505 | 502;
  readonly reason: string;
}

export interface Fields {
  /** Lower-case names, in arrival order. */
  readonly names: string[];
  readonly values: string[];
}

export interface RequestHead extends Fields {
  readonly method: string;
  /** Origin-form path with query (absolute-form targets are reduced to it); `*` for OPTIONS *. */
  readonly path: string;
  /** From an absolute-form target, else the Host header ('' when HTTP/1.0 sent none). */
  readonly authority: string;
  /** 0 for HTTP/1.0, 1 for HTTP/1.1. */
  readonly minor: 0 | 1;
  /** -1 when absent. */
  readonly contentLength: number;
  readonly chunked: boolean;
  /** Connection: close, or HTTP/1.0 without keep-alive. */
  readonly close: boolean;
  readonly upgrade: string | undefined;
  readonly expectContinue: boolean;
  /** Headers named by Connection (hop-by-hop for this message), lower case; undefined when none. */
  readonly nominated: string[] | undefined;
}

export interface ResponseHead extends Fields {
  readonly status: number;
  readonly minor: 0 | 1;
  readonly contentLength: number;
  readonly chunked: boolean;
  /** Transfer-Encoding present without chunked last: the body runs to connection close. */
  readonly closeDelimited: boolean;
  readonly close: boolean;
  readonly nominated: string[] | undefined;
}

const BAD_LF: HeadError = { status: 400, reason: 'bare LF in head' };

/**
 * Finds the end of a head in buf[start, end): the index just past CRLFCRLF, -1 when incomplete, or an error
 * for a bare LF. `from` lets a caller resume a search over bytes it already scanned (>= start).
 */
export function findHeadEnd(buf: Buffer, start: number, from: number, end: number): number | HeadError {
  let i = from < start + 1 ? start : from - 1;
  for (;;) {
    const lf = buf.indexOf(LF, i);
    if (lf < 0 || lf >= end) return -1;
    if (lf === start || buf[lf - 1] !== CR) return BAD_LF;
    if (lf - start >= 3 && buf[lf - 2] === LF && buf[lf - 3] === CR) return lf + 1;
    i = lf + 1;
  }
}

function fail(reason: string, status: HeadError['status'] = 400): HeadError {
  return { status, reason };
}

/**
 * Header field lines in buf[pos, end) (end = index of the blank line's CR). Appends to names/values;
 * returns an error or undefined. `pos` must be the start of a line.
 */
export function parseFieldLines(buf: Buffer, pos: number, end: number, out: Fields, limit: number): HeadError | undefined {
  const names = out.names;
  const values = out.values;
  // Locals: V8 re-loads (and hole-checks) imported bindings on every use inside loops.
  const tchar = TCHAR;
  const lower = LOWER;
  const fieldValue = FIELD_VALUE;
  let i = pos;
  while (i < end) {
    const nameStart = i;
    let c = buf[i] as number;
    if (c === SP || c === HTAB) return fail('obs-fold or whitespace at line start');
    // The name's hash (see intern.ts) is computed on the way: names and repeated values are shared strings.
    let h = 0;
    while (i < end) {
      c = buf[i] as number;
      if (tchar[c] !== 1) break;
      h = (Math.imul(h, 31) + (lower[c] as number)) | 0;
      i++;
    }
    if (i === nameStart || c !== COLON) return fail(c === SP || c === HTAB ? 'whitespace before colon' : 'invalid header name');
    const name = internName(buf, nameStart, i, h);
    i++;
    while (i < end) {
      c = buf[i] as number;
      if (c !== SP && c !== HTAB) break;
      i++;
    }
    const valueStart = i;
    let valueEnd = i;
    let value = knownValue(buf, valueStart, h, CR);
    if (value !== undefined) {
      // The value this name had last time, byte for byte (already validated then).
      i = valueEnd = valueStart + value.length;
    } else {
      for (;;) {
        c = buf[i] as number;
        if (c === CR) break;
        if (fieldValue[c] !== 1) return fail('invalid character in header value');
        i++;
        if (c !== SP && c !== HTAB) valueEnd = i;
      }
      value = '';
      if (valueStart !== valueEnd) {
        value = buf.toString('latin1', valueStart, valueEnd);
        rememberValue(h, value, buf, valueStart, valueEnd);
      }
    }
    if (buf[i + 1] !== LF) return fail('bare CR in head');
    // A framing value ending in HTAB is read as a different coding by llhttp: refuse it rather than guess.
    if (valueEnd !== i && buf[i - 1] === HTAB && (name === 'transfer-encoding' || name === 'content-length')) {
      return fail('whitespace after a framing value');
    }
    if (names.length >= limit) return fail('too many headers', 431);
    names.push(name);
    values.push(value);
    i += 2;
  }
  return undefined;
}

/** Comma-separated tokens of a list header, lower case, empty elements dropped (RFC 9110 5.6.1). */
export function listTokens(value: string): string[] {
  const out: string[] = [];
  for (const part of value.split(',')) {
    const t = part.trim().toLowerCase();
    if (t !== '') out.push(t);
  }
  return out;
}

function parseContentLength(v: string): number {
  if (v.length === 0 || v.length > 15) return -1;
  for (let k = 0; k < v.length; k++) {
    const c = v.charCodeAt(k);
    if (c < 0x30 || c > 0x39) return -1;
  }
  return Number(v);
}

function validAuthority(v: string): boolean {
  for (let k = 0; k < v.length; k++) if (AUTHORITY[v.charCodeAt(k)] !== 1) return false;
  return true;
}

// The last valid Host value and its lower-cased form: values are shared strings (intern.ts), so a repeat is one compare.
let lastHostRaw = '';
let lastHostLower = '';

/** The lower-cased Host, or undefined when it is not a valid authority. */
function hostOf(raw: string): string | undefined {
  if (raw === lastHostRaw) return lastHostLower;
  const host = raw.toLowerCase();
  if (!validAuthority(host)) return undefined;
  lastHostRaw = raw;
  lastHostLower = host;
  return host;
}

/** Framing and connection headers shared by requests and responses. */
interface Framing {
  contentLength: number;
  te: string | undefined;
  close: boolean;
  keepAlive: boolean;
  upgradeToken: boolean;
  nominated: string[] | undefined;
}

function framing(names: string[], values: string[]): Framing | HeadError {
  const f: Framing = { contentLength: -1, te: undefined, close: false, keepAlive: false, upgradeToken: false, nominated: undefined };
  for (let k = 0; k < names.length; k++) {
    const n = names[k] as string;
    if (n === 'content-length') {
      if (f.contentLength !== -1) return fail('repeated Content-Length');
      f.contentLength = parseContentLength(values[k] as string);
      if (f.contentLength < 0) return fail('invalid Content-Length');
    } else if (n === 'transfer-encoding') {
      if (f.te !== undefined) return fail('repeated Transfer-Encoding');
      f.te = (values[k] as string).toLowerCase();
    } else if (n === 'connection') {
      const v = values[k] as string;
      // The usual values, without splitting the list.
      if (v === 'keep-alive' || v === 'Keep-Alive') {
        f.keepAlive = true;
        continue;
      }
      if (v === 'close' || v === 'Close') {
        f.close = true;
        continue;
      }
      for (const t of listTokens(v)) {
        if (t === 'close') f.close = true;
        else if (t === 'keep-alive') f.keepAlive = true;
        else if (t === 'upgrade') f.upgradeToken = true;
        else if (f.nominated) f.nominated.push(t);
        else f.nominated = [t];
      }
    }
  }
  if (f.te !== undefined && f.contentLength !== -1) return fail('both Content-Length and Transfer-Encoding');
  return f;
}

function parseVersion(buf: Buffer, i: number, end: number): 0 | 1 | HeadError {
  // `HTTP/1.1` exactly; other well-formed versions are answered 505, anything else 400.
  if (i + 8 > end || buf[i] !== 0x48 || buf[i + 1] !== 0x54 || buf[i + 2] !== 0x54 || buf[i + 3] !== 0x50 || buf[i + 4] !== 0x2f) {
    return fail('invalid HTTP version');
  }
  const major = buf[i + 5] as number;
  const dot = buf[i + 6];
  const minor = buf[i + 7] as number;
  if (major < 0x30 || major > 0x39 || dot !== 0x2e || minor < 0x30 || minor > 0x39) return fail('invalid HTTP version');
  if (major !== 0x31 || minor > 0x31) return fail('HTTP version not supported', 505);
  return minor === 0x31 ? 1 : 0;
}

/** Parses a request head in buf[start, end) (end just past CRLFCRLF, as findHeadEnd returned). */
export function parseRequestHead(buf: Buffer, start: number, end: number): RequestHead | HeadError {
  let i = start;
  let c = 0;
  // Method and target are hashed while validated (different seeds), and shared when they repeat (intern.ts).
  let h = 1;
  while (i < end) {
    c = buf[i] as number;
    if (TCHAR[c] !== 1) break;
    h = (Math.imul(h, 31) + c) | 0;
    i++;
  }
  if (i === start || c !== SP) return fail('invalid method');
  const method = internExact(buf, start, i, h);
  if (!KNOWN_METHODS.has(method)) return fail('unknown method');
  const targetStart = ++i;
  h = 2;
  let fragment = false;
  while (i < end) {
    c = buf[i] as number;
    if (TARGET[c] !== 1) break;
    if (c === 0x23) fragment = true;
    h = (Math.imul(h, 31) + c) | 0;
    i++;
  }
  if (i === targetStart || c !== SP) return fail('invalid request-target');
  const target = internExact(buf, targetStart, i, h);
  i++;
  const minor = parseVersion(buf, i, end);
  if (typeof minor !== 'number') return minor;
  i += 8;
  if (buf[i] !== CR || buf[i + 1] !== LF) return fail('invalid request line');
  i += 2;
  const names: string[] = [];
  const values: string[] = [];
  const fieldsErr = parseFieldLines(buf, i, end - 2, { names, values }, MAX_HEADERS);
  if (fieldsErr) return fieldsErr;
  const f = framing(names, values);
  if ('status' in f) return f;

  let host: string | undefined;
  let upgrade: string | undefined;
  let expectContinue = false;
  for (let k = 0; k < names.length; k++) {
    const n = names[k] as string;
    if (n === 'host') {
      if (host !== undefined) return fail('repeated Host');
      host = hostOf(values[k] as string);
      if (host === undefined) return fail('invalid Host');
    } else if (n === 'upgrade') upgrade = values[k];
    else if (n === 'expect') {
      if ((values[k] as string).toLowerCase() !== '100-continue') return fail('unsupported Expect', 417);
      expectContinue = minor === 1;
    }
  }
  let chunked = false;
  if (f.te !== undefined) {
    if (minor === 0) return fail('Transfer-Encoding in HTTP/1.0');
    if (f.te !== 'chunked') return fail('unsupported Transfer-Encoding');
    chunked = true;
  }
  if (minor === 1 && host === undefined) return fail('missing Host');

  let path = target;
  let authority = host ?? '';
  const t0 = target.charCodeAt(0);
  if (fragment) return fail('fragment in request-target');
  if (method === 'CONNECT') {
    if (t0 === 0x2f || !validAuthority(target)) return fail('invalid CONNECT target');
    authority = target.toLowerCase();
  } else if (t0 !== 0x2f) {
    if (target === '*') {
      if (method !== 'OPTIONS') return fail('asterisk-form only with OPTIONS');
    } else {
      const m = /^https?:\/\/([^/?]+)(.*)$/i.exec(target);
      if (!m) return fail('invalid request-target');
      authority = (m[1] as string).toLowerCase();
      if (!validAuthority(authority) || authority.includes('@')) return fail('invalid request-target authority');
      const rest = m[2] as string;
      path = rest === '' ? '/' : rest.charCodeAt(0) === 0x3f ? `/${rest}` : rest;
    }
  }
  return {
    method,
    path,
    authority,
    minor,
    names,
    values,
    contentLength: f.contentLength,
    chunked,
    close: f.close || (minor === 0 && !f.keepAlive),
    upgrade: f.upgradeToken ? upgrade : undefined,
    expectContinue,
    nominated: f.nominated,
  };
}

/** Parses an upstream response head in buf[start, end); `status: 502` errors mean the upstream broke the protocol. */
export function parseResponseHead(buf: Buffer, start: number, end: number): ResponseHead | HeadError {
  const v = parseVersion(buf, start, end);
  if (typeof v !== 'number' || buf[start + 8] !== SP) return fail('invalid status line', 502);
  let i = start + 9;
  let status = 0;
  for (let k = 0; k < 3; k++, i++) {
    const d = (buf[i] as number) - 0x30;
    if (d < 0 || d > 9) return fail('invalid status code', 502);
    status = status * 10 + d;
  }
  if (status < 100 || status > 599) return fail('invalid status code', 502);
  let c = buf[i] as number;
  if (c === SP) {
    i++;
    for (c = buf[i] as number; c !== CR; c = buf[i] as number) {
      if (FIELD_VALUE[c] !== 1) return fail('invalid reason phrase', 502);
      i++;
    }
  }
  if (buf[i] !== CR || buf[i + 1] !== LF) return fail('invalid status line', 502);
  i += 2;
  const names: string[] = [];
  const values: string[] = [];
  const fieldsErr = parseFieldLines(buf, i, end - 2, { names, values }, MAX_HEADERS * 2);
  if (fieldsErr) return { status: 502, reason: fieldsErr.reason };
  const f = framing(names, values);
  if ('status' in f) return { status: 502, reason: f.reason };
  let chunked = false;
  let closeDelimited = false;
  if (f.te !== undefined) {
    const codings = listTokens(f.te);
    chunked = codings[codings.length - 1] === 'chunked';
    if (codings.indexOf('chunked') !== codings.length - 1 && codings.includes('chunked')) return fail('chunked not last', 502);
    closeDelimited = !chunked;
  }
  return {
    status,
    minor: v,
    names,
    values,
    contentLength: f.contentLength,
    chunked,
    closeDelimited,
    close: f.close || (v === 0 && !f.keepAlive),
    nominated: f.nominated,
  };
}
