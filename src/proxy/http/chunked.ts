import { CR, HEX_VALUE, HTAB, LF, QDTEXT, TCHAR } from './chars.js';
import { type Fields, parseFieldLines } from './parser.js';

/** Receives decoded body bytes: views into the socket's read buffers, which Node never reuses, so they may be kept. */
export interface BodySink {
  onBody(chunk: Buffer): void;
}

const SEMI = 0x3b;
const EQ = 0x3d;
const DQUOTE = 0x22;
const BSLASH = 0x5c;
const MAX_SIZE_DIGITS = 13; // 16^13 = 2^52: sizes stay exact doubles
const MAX_LINE = 4096;
const MAX_TRAILERS = 16 * 1024;

const S_SIZE_START = 0;
const S_SIZE = 1;
const S_EXT_NAME_START = 2;
const S_EXT_NAME = 3;
const S_EXT_VAL_START = 4;
const S_EXT_TOKEN = 5;
const S_EXT_QUOTED = 6;
const S_EXT_QUOTED_ESC = 7;
const S_EXT_AFTER_QUOTE = 8;
const S_SIZE_LF = 12;
const S_DATA = 13;
const S_DATA_CR = 14;
const S_DATA_LF = 15;
const S_TRAILER_START = 16;
const S_TRAILER_LINE = 17;
const S_TRAILER_LF = 18;
const S_END_LF = 19;
const S_DONE = 20;
const S_ERROR = 21;

export const CHUNKED_MORE = -1;
export const CHUNKED_ERROR = -2;

/**
 * Strict chunked transfer-coding decoder (RFC 9112 7.1): hex sizes without signs or overflow, extensions
 * as tokens or quoted-strings with no whitespace (llhttp refuses the grammar's BWS too), CRLF exactly after each
 * chunk, trailers validated as fields.
 * Decoded data goes to the sink; callers re-frame it, so extensions never reach the other side.
 */
export class ChunkedDecoder {
  private state = S_SIZE_START;
  private size = 0;
  private digits = 0;
  private lineBytes = 0;
  private trailerBytes: number[] | undefined;
  error: string | undefined;
  /** Trailer fields of the last chunk, when any were sent. */
  trailers: Fields | undefined;
  /** Decoded body bytes so far. */
  bodyBytes = 0;

  get done(): boolean {
    return this.state === S_DONE;
  }

  private fail(reason: string): number {
    this.state = S_ERROR;
    this.error = reason;
    return CHUNKED_ERROR;
  }

  /** Consumes buf[start, end): the index just past the message's end, CHUNKED_MORE, or CHUNKED_ERROR (see `error`). */
  push(buf: Buffer, start: number, end: number, sink: BodySink): number {
    let i = start;
    let state = this.state;
    if (state === S_ERROR) return CHUNKED_ERROR;
    while (i < end) {
      if (state === S_DATA) {
        const n = Math.min(this.size, end - i);
        this.size -= n;
        this.bodyBytes += n;
        const from = i;
        i += n;
        if (this.size === 0) state = S_DATA_CR;
        this.state = state;
        sink.onBody(buf.subarray(from, i));
        if (this.state === S_ERROR) return CHUNKED_ERROR;
        continue;
      }
      const c = buf[i++] as number;
      if (state <= S_EXT_AFTER_QUOTE && ++this.lineBytes > MAX_LINE) return this.fail('chunk size line too long');
      switch (state) {
        case S_SIZE_START:
        case S_SIZE: {
          const h = HEX_VALUE[c] as number;
          if (h >= 0) {
            if (++this.digits > MAX_SIZE_DIGITS) return this.fail('chunk size too large');
            this.size = this.size * 16 + h;
            state = S_SIZE;
          } else if (state === S_SIZE_START) return this.fail('invalid chunk size');
          else if (c === CR) state = S_SIZE_LF;
          else if (c === SEMI) state = S_EXT_NAME_START;
          else return this.fail('invalid chunk size');
          break;
        }
        case S_EXT_NAME_START:
          if (TCHAR[c] !== 1) return this.fail('invalid chunk extension');
          state = S_EXT_NAME;
          break;
        case S_EXT_NAME:
          if (TCHAR[c] === 1) break;
          if (c === CR) state = S_SIZE_LF;
          else if (c === SEMI) state = S_EXT_NAME_START;
          else if (c === EQ) state = S_EXT_VAL_START;
          else return this.fail('invalid chunk extension');
          break;
        case S_EXT_VAL_START:
          // An empty value (`a=`) is accepted, as llhttp does.
          if (c === DQUOTE) state = S_EXT_QUOTED;
          else if (TCHAR[c] === 1) state = S_EXT_TOKEN;
          else if (c === CR) state = S_SIZE_LF;
          else if (c === SEMI) state = S_EXT_NAME_START;
          else return this.fail('invalid chunk extension');
          break;
        case S_EXT_TOKEN:
          if (TCHAR[c] === 1) break;
          if (c === CR) state = S_SIZE_LF;
          else if (c === SEMI) state = S_EXT_NAME_START;
          else return this.fail('invalid chunk extension');
          break;
        case S_EXT_QUOTED:
          if (c === DQUOTE) state = S_EXT_AFTER_QUOTE;
          else if (c === BSLASH) state = S_EXT_QUOTED_ESC;
          else if (QDTEXT[c] !== 1) return this.fail('invalid chunk extension');
          break;
        case S_EXT_QUOTED_ESC:
          if (c !== HTAB && (c < 0x20 || c === 0x7f)) return this.fail('invalid chunk extension');
          state = S_EXT_QUOTED;
          break;
        case S_EXT_AFTER_QUOTE:
          if (c === CR) state = S_SIZE_LF;
          else if (c === SEMI) state = S_EXT_NAME_START;
          else return this.fail('invalid chunk extension');
          break;
        case S_SIZE_LF:
          if (c !== LF) return this.fail('bare CR in chunk size line');
          this.digits = 0;
          this.lineBytes = 0;
          state = this.size === 0 ? S_TRAILER_START : S_DATA;
          break;
        case S_DATA_CR:
          if (c !== CR) return this.fail('missing CRLF after chunk data');
          state = S_DATA_LF;
          break;
        case S_DATA_LF:
          if (c !== LF) return this.fail('missing CRLF after chunk data');
          state = S_SIZE_START;
          break;
        case S_TRAILER_START:
          if (c === CR) {
            state = S_END_LF;
            break;
          }
          this.trailerBytes ??= [];
          state = S_TRAILER_LINE;
          if (!this.pushTrailer(c)) return this.fail('trailers too large');
          break;
        case S_TRAILER_LINE:
          if (c === LF) return this.fail('bare LF in trailers');
          if (c === CR) state = S_TRAILER_LF;
          if (!this.pushTrailer(c)) return this.fail('trailers too large');
          break;
        case S_TRAILER_LF:
          if (c !== LF) return this.fail('bare CR in trailers');
          if (!this.pushTrailer(c)) return this.fail('trailers too large');
          state = S_TRAILER_START;
          break;
        case S_END_LF: {
          if (c !== LF) return this.fail('bare CR after trailers');
          this.state = S_DONE;
          return this.finishTrailers() ? i : CHUNKED_ERROR;
        }
        default:
          return this.fail('data after the last chunk');
      }
    }
    this.state = state;
    return CHUNKED_MORE;
  }

  private pushTrailer(c: number): boolean {
    const t = this.trailerBytes as number[];
    t.push(c);
    return t.length <= MAX_TRAILERS;
  }

  private finishTrailers(): boolean {
    if (!this.trailerBytes) return true;
    const b = Buffer.from(this.trailerBytes);
    this.trailerBytes = undefined;
    const fields: Fields = { names: [], values: [] };
    const e = parseFieldLines(b, 0, b.length, fields, 100);
    if (e) {
      this.fail(`invalid trailer: ${e.reason}`);
      return false;
    }
    this.trailers = fields;
    return true;
  }
}
