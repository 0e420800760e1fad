import { randomFillSync } from 'node:crypto';
import { getHeader } from './headers.js';

/**
 * Trace context as the proxy carries it: W3C Trace Context (`traceparent`, `tracestate`) and Zipkin's B3 (multi
 * and single header) are read, and both are written upstream, so apps and tracers of either kind join one trace.
 */
export interface TraceContext {
  /** 32 lowercase hex digits. */
  readonly traceId: string;
  /** This proxy's span: 16 lowercase hex digits. */
  readonly spanId: string;
  /** The caller's span, when the request carried one. */
  readonly parentSpanId: string | undefined;
  readonly sampled: boolean;
}

interface Incoming {
  readonly traceId: string;
  readonly spanId: string | undefined;
  /** undefined: the caller left the decision to us. */
  readonly sampled: boolean | undefined;
}

const HEX32 = /^[0-9a-f]{32}$/;
const HEX16 = /^[0-9a-f]{16}$/;
const ZERO32 = '0'.repeat(32);
const ZERO16 = '0'.repeat(16);
/** The fields a traced request's span replaces: the forwarder leaves them out when it copies the request head. */
export const TRACE_HEADERS: ReadonlySet<string> = new Set([
  'traceparent',
  'b3',
  'x-b3-traceid',
  'x-b3-spanid',
  'x-b3-parentspanid',
  'x-b3-sampled',
  'x-b3-flags',
]);

/** `00-<trace>-<span>-<flags>`; other versions are read by the version-00 layout, as the spec asks. */
function fromTraceparent(v: string): Incoming | undefined {
  const parts = v.trim().toLowerCase().split('-');
  if (parts.length < 4 || parts[0] === 'ff' || !/^[0-9a-f]{2}$/.test(parts[0] ?? '')) return undefined;
  const [, traceId = '', spanId = '', flags = ''] = parts;
  if (!HEX32.test(traceId) || traceId === ZERO32 || !HEX16.test(spanId) || spanId === ZERO16 || !/^[0-9a-f]{2}$/.test(flags))
    return undefined;
  return { traceId, spanId, sampled: (Number.parseInt(flags, 16) & 1) === 1 };
}

/** B3 trace ids may be 64-bit; W3C wants 128, so they are left-padded as Zipkin does. */
function b3TraceId(v: string | undefined): string | undefined {
  const id = v?.trim().toLowerCase();
  if (id === undefined || !/^([0-9a-f]{16}|[0-9a-f]{32})$/.test(id)) return undefined;
  const padded = id.padStart(32, '0');
  return padded === ZERO32 ? undefined : padded;
}

function b3Sampled(v: string | undefined): boolean | undefined {
  if (v === undefined) return undefined;
  const s = v.trim().toLowerCase();
  if (s === '1' || s === 'true' || s === 'd') return true;
  if (s === '0' || s === 'false') return false;
  return undefined;
}

/** `b3: {TraceId}-{SpanId}[-{SamplingState}[-{ParentSpanId}]]`, or only a sampling state. */
function fromB3Single(v: string): Incoming | undefined {
  const parts = v.trim().split('-');
  if (parts.length === 1) return undefined;
  const traceId = b3TraceId(parts[0]);
  const spanId = parts[1]?.toLowerCase();
  if (!traceId || !spanId || !HEX16.test(spanId)) return undefined;
  return { traceId, spanId, sampled: b3Sampled(parts[2]) };
}

function readIncoming(names: readonly string[], values: readonly string[]): Incoming | { sampled: boolean | undefined } | undefined {
  const tp = getHeader(names, values, 'traceparent');
  const fromTp = tp !== undefined ? fromTraceparent(tp) : undefined;
  if (fromTp) return fromTp;
  const single = getHeader(names, values, 'b3');
  if (single !== undefined) {
    const b = fromB3Single(single);
    if (b) return b;
  }
  const traceId = b3TraceId(getHeader(names, values, 'x-b3-traceid'));
  const spanId = getHeader(names, values, 'x-b3-spanid')?.trim().toLowerCase();
  const sampled = getHeader(names, values, 'x-b3-flags') === '1' ? true : b3Sampled(getHeader(names, values, 'x-b3-sampled'));
  if (traceId && spanId && HEX16.test(spanId)) return { traceId, spanId, sampled };
  // A bare sampling decision (`b3: 0`, `x-b3-sampled: 0`) still binds a new trace.
  const bare = single !== undefined ? b3Sampled(single) : sampled;
  return bare !== undefined ? { sampled: bare } : undefined;
}

/** Random ids from a pooled buffer: one getrandom call per 512 ids instead of one per id. */
const pool = Buffer.alloc(4096);
let poolAt = pool.length;
function randomHex(bytes: number): string {
  if (poolAt + bytes > pool.length) {
    randomFillSync(pool);
    poolAt = 0;
  }
  const s = pool.toString('hex', poolAt, poolAt + bytes);
  poolAt += bytes;
  return s;
}

/**
 * Envoy's UUID request id sampling: the id's first 8 hex digits as a number, modulo 10000, is sampled when below
 * the sampling rate in ten-thousandths. So every proxy (and every retry) seeing one x-request-id decides alike.
 * Undefined when the id does not start with 8 hex digits (Envoy then samples at random).
 */
export function sampledByRequestId(requestId: string, sampling: number): boolean | undefined {
  const head = requestId.slice(0, 8);
  if (!/^[0-9a-fA-F]{8}$/.test(head)) return undefined;
  return Number.parseInt(head, 16) % 10000 < Math.round(sampling * 10000);
}

/**
 * This proxy's span for a request: it continues the caller's trace (and its sampling decision) when the request
 * carries one, else starts a trace sampled with probability `sampling` -- decided by `requestId` when given.
 */
export function startTrace(
  names: readonly string[],
  values: readonly string[],
  sampling: number,
  random: () => number,
  requestId?: string,
): TraceContext {
  const inc = readIncoming(names, values);
  const continued = inc && 'traceId' in inc ? inc : undefined;
  const decided = inc?.sampled;
  const byId = decided === undefined && requestId !== undefined ? sampledByRequestId(requestId, sampling) : undefined;
  return {
    traceId: continued?.traceId ?? randomHex(16),
    spanId: randomHex(8),
    parentSpanId: continued?.spanId,
    sampled: decided ?? byId ?? (sampling > 0 && random() < sampling),
  };
}

/** This proxy's span in both formats, appended to a head copied without TRACE_HEADERS; tracestate passes as it came. */
export function injectTrace(names: string[], values: string[], t: TraceContext): void {
  const flag = t.sampled ? '1' : '0';
  names.push('traceparent', 'x-b3-traceid', 'x-b3-spanid', 'x-b3-sampled');
  values.push(`00-${t.traceId}-${t.spanId}-0${flag}`, t.traceId, t.spanId, flag);
  if (t.parentSpanId !== undefined) {
    names.push('x-b3-parentspanid');
    values.push(t.parentSpanId);
  }
}
