import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CHUNKED_ERROR, CHUNKED_MORE, ChunkedDecoder } from '../../../../src/proxy/http/chunked.js';
import { findHeadEnd, parseRequestHead, parseResponseHead, type RequestHead } from '../../../../src/proxy/http/parser.js';

function req(text: string): RequestHead | { status: number; reason: string } {
  const b = Buffer.from(text, 'latin1');
  const end = findHeadEnd(b, 0, 0, b.length);
  if (typeof end !== 'number') return end;
  assert.ok(end > 0, `incomplete head: ${JSON.stringify(text)}`);
  return parseRequestHead(b, 0, end);
}

function ok(text: string): RequestHead {
  const r = req(text);
  assert.ok(!('reason' in r), `expected a valid head, got ${'reason' in r ? r.reason : ''} for ${JSON.stringify(text)}`);
  return r as RequestHead;
}

function bad(text: string, status = 400): void {
  const r = req(text);
  assert.ok('reason' in r, `expected a rejection for ${JSON.stringify(text)}`);
  assert.equal(r.status, status, `${JSON.stringify(text)}: ${'reason' in r ? r.reason : ''}`);
}

function decode(text: string, split = 0): { body: string; at: number; error?: string; trailers?: string[] } {
  const d = new ChunkedDecoder();
  const parts: Buffer[] = [];
  const sink = { onBody: (c: Buffer) => parts.push(Buffer.from(c)) };
  const b = Buffer.from(text, 'latin1');
  let at = CHUNKED_MORE;
  if (split > 0) {
    // Byte by byte in `split`-sized pieces: the state machine must not depend on where reads end.
    for (let i = 0; i < b.length && at === CHUNKED_MORE; i += split) {
      const piece = b.subarray(i, Math.min(b.length, i + split));
      const r = d.push(piece, 0, piece.length, sink);
      at = r >= 0 ? i + r : r;
    }
  } else at = d.push(b, 0, b.length, sink);
  return {
    body: Buffer.concat(parts).toString('latin1'),
    at,
    ...(d.error ? { error: d.error } : {}),
    ...(d.trailers ? { trailers: d.trailers.names.map((n, i) => `${n}=${d.trailers?.values[i]}`) } : {}),
  };
}

describe('HTTP/1.1 request head parser', () => {
  test('parses a request with framing and connection fields', () => {
    const h = ok('POST /a?b=1 HTTP/1.1\r\nHost: Svc:80\r\nContent-Length: 5\r\nX-A:  v  \r\nConnection: keep-alive, X-Drop\r\n\r\n');
    assert.equal(h.method, 'POST');
    assert.equal(h.path, '/a?b=1');
    assert.equal(h.authority, 'svc:80');
    assert.equal(h.contentLength, 5);
    assert.equal(h.chunked, false);
    assert.equal(h.close, false);
    assert.deepEqual(h.nominated, ['x-drop']);
    assert.equal(h.values[h.names.indexOf('x-a')], 'v');
  });

  test('absolute-form targets give authority and origin-form path', () => {
    const h = ok('GET http://Other.example:8080?q=1 HTTP/1.1\r\nHost: ignored\r\n\r\n');
    assert.equal(h.authority, 'other.example:8080');
    assert.equal(h.path, '/?q=1');
  });

  test('HTTP/1.0: Host optional, close unless keep-alive', () => {
    assert.equal(ok('GET / HTTP/1.0\r\n\r\n').close, true);
    assert.equal(ok('GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n').close, false);
  });

  test('chunked, in any case, and 100-continue', () => {
    const h = ok('PUT / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ChUnKeD\r\nExpect: 100-Continue\r\n\r\n');
    assert.equal(h.chunked, true);
    assert.equal(h.expectContinue, true);
  });

  const rejects: Array<[string, string, number?]> = [
    ['CL and TE', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n'],
    ['TE and CL', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n'],
    ['duplicate CL, equal', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n'],
    ['CL list', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\n'],
    ['CL sign', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\n'],
    ['CL hex', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x3\r\n\r\n'],
    ['CL huge', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n'],
    ['CL inner space', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n'],
    ['TE chunked, identity', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n'],
    ['TE identity', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n'],
    ['TE gzip, chunked', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n'],
    ['TE twice', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n'],
    ['TE space before colon', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n'],
    ['TE with vertical tab', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \x0bchunked\r\n\r\n'],
    ['TE in HTTP/1.0', 'POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n'],
    ['obs-fold', 'GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n'],
    ['leading whitespace line', 'GET / HTTP/1.1\r\n Host: a\r\n\r\n'],
    ['NUL in value', 'GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x00c\r\n\r\n'],
    ['DEL in value', 'GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x7fc\r\n\r\n'],
    ['bare CR in value', 'GET / HTTP/1.1\r\nHost: a\r\nX-A: b\rc\r\n\r\n'],
    ['missing Host', 'GET / HTTP/1.1\r\n\r\n'],
    ['two Hosts', 'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n'],
    ['bad Host', 'GET / HTTP/1.1\r\nHost: a b\r\n\r\n'],
    ['Host with slash', 'GET / HTTP/1.1\r\nHost: a/b\r\n\r\n'],
    ['bad method', 'G(T / HTTP/1.1\r\nHost: a\r\n\r\n'],
    ['empty method', ' / HTTP/1.1\r\nHost: a\r\n\r\n'],
    ['two spaces', 'GET  / HTTP/1.1\r\nHost: a\r\n\r\n'],
    ['target with fragment', 'GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n'],
    ['relative target', 'GET a/b HTTP/1.1\r\nHost: a\r\n\r\n'],
    ['asterisk with GET', 'GET * HTTP/1.1\r\nHost: a\r\n\r\n'],
    ['non-ASCII target', 'GET /\xe9 HTTP/1.1\r\nHost: a\r\n\r\n'],
    ['lower-case version', 'GET / http/1.1\r\nHost: a\r\n\r\n'],
    ['HTTP/2.0', 'GET / HTTP/2.0\r\nHost: a\r\n\r\n', 505],
    ['HTTP/1.2', 'GET / HTTP/1.2\r\nHost: a\r\n\r\n', 505],
    ['HTTP/1.1x', 'GET / HTTP/1.1x\r\nHost: a\r\n\r\n'],
    ['no version', 'GET /\r\nHost: a\r\n\r\n'],
    ['empty header name', 'GET / HTTP/1.1\r\nHost: a\r\n: v\r\n\r\n'],
    ['header without colon', 'GET / HTTP/1.1\r\nHost: a\r\nX-A\r\n\r\n'],
    ['unknown Expect', 'GET / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n', 417],
    ['unknown method', 'FOO / HTTP/1.1\r\nHost: a\r\n\r\n'],
    ['lower-case method', 'get / HTTP/1.1\r\nHost: a\r\n\r\n'],
    ['PRI in HTTP/1.1', 'PRI / HTTP/1.1\r\nHost: a\r\n\r\n'],
    ['TE ending in HTAB', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\t\r\n\r\n'],
    ['bare LF line', 'GET / HTTP/1.1\nHost: a\r\n\r\n'],
    ['bare LF end', 'GET / HTTP/1.1\r\nHost: a\n\r\n'],
  ];
  for (const [name, text, status] of rejects) test(`rejects ${name}`, () => bad(text, status));

  test('too many headers: 431', () => {
    let t = 'GET / HTTP/1.1\r\nHost: a\r\n';
    for (let i = 0; i < 120; i++) t += `x-${i}: v\r\n`;
    bad(`${t}\r\n`, 431);
  });

  test('findHeadEnd resumes across reads and stops at bare LF', () => {
    const b = Buffer.from('GET / HTTP/1.1\r\nHost: a\r\n\r\nrest');
    assert.equal(findHeadEnd(b, 0, 0, 10), -1);
    assert.equal(findHeadEnd(b, 0, 10, b.length), b.length - 4);
    const lf = findHeadEnd(Buffer.from('GET / HTTP/1.1\r\nA: b\n'), 0, 0, 23);
    assert.ok(typeof lf !== 'number');
  });
});

describe('HTTP/1.1 response head parser', () => {
  function res(text: string) {
    const b = Buffer.from(text, 'latin1');
    const end = findHeadEnd(b, 0, 0, b.length);
    assert.ok(typeof end === 'number' && end > 0);
    return parseResponseHead(b, 0, end);
  }
  test('framing: CL, chunked, close-delimited, empty reason', () => {
    const a = res('HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n');
    assert.ok(!('reason' in a) && a.contentLength === 3);
    const c = res('HTTP/1.1 200 \r\nTransfer-Encoding: gzip, chunked\r\n\r\n');
    assert.ok(!('reason' in c) && c.chunked);
    const d = res('HTTP/1.1 200\r\nTransfer-Encoding: gzip\r\n\r\n');
    assert.ok(!('reason' in d) && d.closeDelimited);
    const e = res('HTTP/1.0 204 No Content\r\n\r\n');
    assert.ok(!('reason' in e) && e.close);
  });
  test('refuses smuggling-shaped responses with 502', () => {
    for (const t of [
      'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n',
      'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n',
      'HTTP/1.1 2000 OK\r\n\r\n',
      'HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n',
    ]) {
      const r = res(t);
      assert.ok('reason' in r, t);
      assert.equal(r.status, 502);
    }
  });
});

describe('chunked decoder', () => {
  test('decodes with extensions and trailers, in any read size', () => {
    const text = '5;name=val;q="a \\"b\\"";e=\r\nhello\r\n1;x\r\n!\r\n0\r\nX-T: 1\r\n\r\nNEXT';
    for (const split of [0, 1, 2, 3, 7]) {
      const r = decode(text, split);
      assert.equal(r.body, 'hello!', `split ${split}`);
      assert.equal(r.at, text.length - 4, `split ${split}`);
      assert.deepEqual(r.trailers, ['x-t=1']);
    }
  });
  test('large sizes are exact', () => {
    const r = decode(`${'0'.repeat(5)}a\r\n0123456789\r\n0\r\n\r\n`);
    assert.equal(r.body, '0123456789');
  });
  const invalid: Array<[string, string]> = [
    ['empty size', '\r\nabc\r\n0\r\n\r\n'],
    ['sign', '+5\r\nhello\r\n0\r\n\r\n'],
    ['0x prefix', '0x5\r\nhello\r\n0\r\n\r\n'],
    ['overflow', 'ffffffffffffffffff\r\n'],
    ['space then CRLF', '5 \r\nhello\r\n0\r\n\r\n'],
    ['bare LF after size', '5\nhello\r\n0\r\n\r\n'],
    ['missing CRLF after data', '5\r\nhelloX\r\n0\r\n\r\n'],
    ['LF only after data', '5\r\nhello\n0\r\n\r\n'],
    ['bad extension', '5;=x\r\nhello\r\n0\r\n\r\n'],
    ['extension with CTL', '5;a=\x01\r\nhello\r\n0\r\n\r\n'],
    ['whitespace before an extension', '5 ;a=b\r\nhello\r\n0\r\n\r\n'],
    ['whitespace after an extension', '5;a=b \r\nhello\r\n0\r\n\r\n'],
    ['CTL in a quoted extension', '5;a="\x01"\r\nhello\r\n0\r\n\r\n'],
    ['unterminated quote', '5;a="x\r\nhello\r\n0\r\n\r\n'],
    ['bad trailer', '0\r\nX T: 1\r\n\r\n'],
    ['bare LF trailer', '0\r\nX: 1\n\r\n'],
    ['bare CR at end', '0\r\n\rX'],
  ];
  for (const [name, text] of invalid) {
    test(`refuses ${name}`, () => {
      for (const split of [0, 1]) assert.equal(decode(text, split).at, CHUNKED_ERROR, `${name} split ${split}`);
    });
  }
});
