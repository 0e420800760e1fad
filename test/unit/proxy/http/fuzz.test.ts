import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { cluster, forward, listenNet, type ProxyHarness, prefix, proxyConfig, route, startProxy, table, vhost } from './http-fixture.js';

/**
 * Request smuggling / desync fuzzing. A seeded generator mutates valid requests into malformed ones (CL+TE,
 * repeated or odd Content-Length, Transfer-Encoding variants, obs-fold, bare LF/CR, CTLs, huge heads, bad
 * methods, versions, targets, chunk sizes, extensions and trailers) and packs them on connections: valid
 * requests pipelined, then possibly one malformed request, then valid "smuggled" requests behind it. A strict
 * recording upstream (Node's llhttp) checks that it only ever sees complete requests that match valid inputs
 * one to one, and each client checks its answers: every valid request before the bad one answered in order,
 * the bad one refused (400/417/431/505) with the connection closed, nothing after it served. Every case is also
 * sent alone to llhttp in strict mode: anything llhttp refuses, the proxy must refuse too.
 */

// ---- deterministic randomness ----

let seed = 0x5eed1234;
function rnd(): number {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const int = (n: number) => Math.floor(rnd() * n);
function pick<T>(xs: readonly T[]): T {
  return xs[int(xs.length)] as T;
}
function randCase(s: string): string {
  return [...s].map((c) => (rnd() < 0.5 ? c.toUpperCase() : c.toLowerCase())).join('');
}

// ---- the corpus ----

type Kind = 'valid' | 'bad-head' | 'bad-body';

interface Case {
  readonly id: number;
  readonly kind: Kind;
  readonly label: string;
  readonly bytes: Buffer;
  /** What the upstream must see for a valid case. */
  readonly expect?: { readonly method: string; readonly url: string; readonly body: string };
}

interface Parts {
  method: string;
  target: string;
  version: string;
  /** Header lines without CRLF. */
  headers: string[];
  body: string;
  /** chunked: the encoded body, else the raw body. */
  framing: 'none' | 'length' | 'chunked';
  chunks: string[];
  exts: string[];
  trailers: string[];
  leading: string;
  lineEnd: string;
}

const WORDS = ['alpha', 'beta', 'gamma', 'delta', 'x', 'y1', 'z-2', 'GET / HTTP/1.1', 'Host: evil', '0', '\r\n'];

function bodyText(): string {
  const n = int(4) === 0 ? 0 : 1 + int(300);
  let s = '';
  while (s.length < n) s += `${pick(WORDS)}.`;
  return s.slice(0, n);
}

function baseParts(id: number): Parts {
  const method = pick(['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'POST', 'PUT']);
  const hasBody = method === 'POST' || method === 'PUT' || method === 'PATCH' || int(8) === 0;
  const body = hasBody ? bodyText() : '';
  const framing = !hasBody ? (int(3) === 0 ? 'length' : 'none') : int(2) === 0 ? 'length' : 'chunked';
  const headers = [`${randCase('host')}: fuzz`, `x-id: ${id}`];
  for (let i = int(4); i > 0; i--)
    headers.push(`x-extra-${int(100)}: ${pick(['v', 'a b c', 'q=1;x', '"quoted"', 'caf\xe9', 'tab\there', '*/*'])}`);
  const chunks: string[] = [];
  if (framing === 'chunked') {
    let rest = body;
    while (rest.length > 0) {
      const n = 1 + int(Math.min(rest.length, 80));
      chunks.push(rest.slice(0, n));
      rest = rest.slice(n);
    }
  }
  return {
    method,
    target: `/f/${id}?q=${int(1000)}`,
    version: 'HTTP/1.1',
    headers,
    body,
    framing,
    chunks,
    exts: chunks.map(() => ''),
    trailers: [],
    leading: '',
    lineEnd: '\r\n',
  };
}

function render(p: Parts): string {
  const h = [...p.headers];
  if (p.framing === 'length') h.push(`content-length: ${p.body.length}`);
  if (p.framing === 'chunked') h.push('transfer-encoding: chunked');
  let out = `${p.leading}${p.method} ${p.target} ${p.version}\r\n${h.map((x) => `${x}\r\n`).join('')}\r\n`;
  if (p.framing === 'length') out += p.body;
  if (p.framing === 'chunked') {
    p.chunks.forEach((c, i) => {
      out += `${c.length.toString(16)}${p.exts[i] ?? ''}\r\n${c}\r\n`;
    });
    out += `0\r\n${p.trailers.map((t) => `${t}\r\n`).join('')}\r\n`;
  }
  return out;
}

/** Harmless variations: each still one valid request the upstream must see exactly. */
function validVariant(p: Parts): string {
  switch (int(12)) {
    case 0:
      p.headers = p.headers.map((l) => {
        const c = l.indexOf(':');
        return randCase(l.slice(0, c)) + l.slice(c);
      });
      return 'name-case';
    case 1:
      p.headers = p.headers.map((l) => l.replace(': ', pick([':', ':\t', ':  ', ': \t '])) + pick(['', ' ', '  ']));
      return 'ows';
    case 2:
      p.leading = '\r\n'.repeat(1 + int(2));
      return 'leading-crlf';
    case 3:
      p.target = `http://fuzz${p.target}`;
      return 'absolute-form';
    case 4:
      if (p.framing === 'chunked') {
        p.exts = p.exts.map(() => pick([';a=b', ';a', ';a="q \\" s"', ';x=1;y=2', ';e=']));
        return 'chunk-ext';
      }
      return 'plain';
    case 5:
      if (p.framing === 'chunked') {
        p.trailers = [`x-trailer: ${int(9)}`];
        return 'trailers';
      }
      return 'plain';
    case 6:
      p.version = 'HTTP/1.0';
      p.headers.push('connection: keep-alive');
      if (p.framing === 'chunked') p.framing = 'length';
      return 'http10';
    case 7:
      p.headers.push(`x-obs-text: ${String.fromCharCode(0x80 + int(128))}${String.fromCharCode(0x80 + int(128))}`);
      return 'obs-text';
    case 8:
      if (p.framing === 'length' && p.body.length > 0) {
        p.framing = 'none';
        p.headers.push(`Content-Length: 000${p.body.length}`);
        return 'cl-leading-zeros';
      }
      return 'plain';
    case 9:
      if (p.framing === 'chunked') {
        p.framing = 'none';
        p.headers.push(`Transfer-Encoding: ${pick(['CHUNKED', 'Chunked', ' chunked', 'chunked '])}`);
        return 'te-case';
      }
      return 'plain';
    case 10:
      p.headers.push(`${randCase('connection')}: keep-alive, x-hop`, 'x-hop: 1');
      return 'connection-tokens';
    default:
      return 'plain';
  }
}

function bodyFor(p: Parts): string {
  return p.framing === 'none' && !p.headers.some((h) => /^content-length/i.test(h) || /^transfer-encoding/i.test(h)) ? '' : p.body;
}

function encodeChunks(p: Parts): string {
  return p.chunks.map((c, i) => `${c.length.toString(16)}${p.exts[i] ?? ''}\r\n${c}\r\n`).join('');
}

const CTLS = [0, 1, 2, 7, 8, 0x0b, 0x0c, 0x0e, 0x1b, 0x1f, 0x7f];

/** One malformed request; `kind` says whether the head or only the body is broken. */
function invalid(id: number): { text: string; kind: Kind; label: string } {
  const p = baseParts(id);
  const headWith = (extra: string[], framing: Parts['framing'] = 'none') => {
    p.headers.push(...extra);
    p.framing = framing;
    return render(p);
  };
  const body = p.body || 'hello';
  p.body = body;
  const m = int(24);
  switch (m) {
    case 0: {
      const te = pick(['Transfer-Encoding: chunked', 'transfer-encoding: CHUNKED', 'Transfer-Encoding:chunked']);
      const cl = `Content-Length: ${pick([0, 3, body.length, 100])}`;
      p.headers.push(...(int(2) === 0 ? [te, cl] : [cl, te]));
      p.framing = 'none';
      return { text: `${render(p)}5\r\nhello\r\n0\r\n\r\n`, kind: 'bad-head', label: 'cl+te' };
    }
    case 1: {
      const a = body.length;
      const b = pick([a, a + 1, 0]);
      return {
        text: `${headWith([`Content-Length: ${a}`, `${randCase('content-length')}: ${b}`])}${body}`,
        kind: 'bad-head',
        label: 'dup-cl',
      };
    }
    case 2: {
      const v = pick(['-1', '+5', '0x10', '1 0', '', 'abc', '5,5', '5, 6', '99999999999999999999', '1.0', '5\x0b', '\x0c5', '5\t']);
      return { text: `${headWith([`Content-Length: ${v}`])}hello`, kind: 'bad-head', label: 'bad-cl' };
    }
    case 3: {
      const v = pick([
        'chunked, identity',
        'identity',
        'gzip',
        'gzip, chunked',
        'chunked, chunked',
        'chunkedx',
        'xchunked',
        'chunked;q=1',
        '"chunked"',
        'chunk ed',
        '',
        'chunked\t',
        'chunked\x0b',
      ]);
      return { text: `${headWith([`Transfer-Encoding: ${v}`])}5\r\nhello\r\n0\r\n\r\n`, kind: 'bad-head', label: 'bad-te' };
    }
    case 4: {
      const v = pick(['Transfer-Encoding : chunked', 'Transfer-Encoding\t: chunked', 'Content-Length : 5', 'Host : fuzz']);
      return { text: `${headWith([v])}5\r\nhello\r\n0\r\n\r\n`, kind: 'bad-head', label: 'space-before-colon' };
    }
    case 5:
      return {
        text: `${headWith(['Transfer-Encoding: chunked', 'Transfer-Encoding: chunked'])}5\r\nhello\r\n0\r\n\r\n`,
        kind: 'bad-head',
        label: 'dup-te',
      };
    case 6: {
      const at = 1 + int(p.headers.length);
      p.headers.splice(at, 0, `${pick([' ', '\t', '  '])}${pick(['folded', 'Transfer-Encoding: chunked', 'x'])}`);
      return { text: render(p), kind: 'bad-head', label: 'obs-fold' };
    }
    case 7: {
      const text = render(p);
      const head = text.indexOf('\r\n\r\n') + 4;
      const crlfs = [...text.slice(0, head).matchAll(/\r\n/g)].map((x) => x.index ?? 0);
      const at = pick(crlfs);
      return { text: text.slice(0, at) + text.slice(at + 1), kind: 'bad-head', label: 'bare-lf' };
    }
    case 8: {
      const text = render(p);
      const head = text.indexOf('\r\n\r\n');
      const crlfs = [...text.slice(0, head).matchAll(/\r\n/g)].map((x) => x.index ?? 0);
      const at = pick(crlfs);
      return { text: `${text.slice(0, at + 1)}${pick(['', 'X'])}${text.slice(at + 2)}`, kind: 'bad-head', label: 'bare-cr' };
    }
    case 9: {
      const ctl = String.fromCharCode(pick(CTLS));
      const where = int(4);
      if (where === 0) p.method = `${p.method.slice(0, 1)}${ctl}${p.method.slice(1)}`;
      else if (where === 1) p.target = `${p.target}${ctl}x`;
      else if (where === 2) p.headers.push(`x-c${ctl}tl: v`);
      else p.headers.push(`x-ctl: a${ctl}b`);
      return { text: render(p), kind: 'bad-head', label: `ctl-${['method', 'target', 'name', 'value'][where]}` };
    }
    case 10:
      if (int(2) === 0) p.headers.push(`x-huge: ${'h'.repeat(66_000 + int(4000))}`);
      else for (let i = 0; i < 120; i++) p.headers.push(`x-many-${i}: v`);
      return { text: render(p), kind: 'bad-head', label: 'huge-head' };
    case 11:
      p.method = pick(['G ET', 'GE(T', '', 'GET\t', 'GET@', 'get', 'FOO', 'PRI', 'G\xe9T']);
      return { text: render(p), kind: 'bad-head', label: 'bad-method' };
    case 12:
      p.version = pick([
        'HTTP/1.2',
        'HTTP/2.0',
        'HTTP/0.9',
        'HTTP/1',
        'HTTP/1.1.1',
        'http/1.1',
        'HTTP/11',
        'HTTP/1.1 ',
        'HTTPS/1.1',
        ' HTTP/1.1',
        'HTTP /1.1',
        'HTTP/1.x',
        '',
      ]);
      return { text: render(p), kind: 'bad-head', label: 'bad-version' };
    case 13: {
      const which = int(3);
      p.headers = p.headers.filter((h) => !/^host/i.test(h));
      if (which === 1) p.headers.push('Host: fuzz', 'Host: other');
      if (which === 2) p.headers.push(`Host: ${pick(['fu zz', 'a/b', 'a@b', 'a"b', 'a\\b'])}`);
      return { text: render(p), kind: 'bad-head', label: ['missing-host', 'dup-host', 'bad-host'][which] ?? '' };
    }
    case 14:
      p.target = pick(['/a b', '/a#b', 'a/b', '*', '/\xe9', 'http://', 'http://a b/', 'ftp://fuzz/x', '//', 'http://user@fuzz/']);
      if (p.target === '//') p.target = '/ /';
      // `OPTIONS *` is a valid request: the asterisk goes with another method.
      if (p.target === '*' && p.method === 'OPTIONS') p.method = 'GET';
      return { text: render(p), kind: 'bad-head', label: 'bad-target' };
    case 15:
      p.leading = pick([' ', '\t', '\n', 'X']);
      return { text: render(p), kind: 'bad-head', label: 'junk-before-request-line' };
    case 16:
      p.headers.push(`${pick(['x(y', 'x"y', 'x y', 'x/y', 'x[y', 'x\\y', 'x{y', 'x,y'])}: v`);
      return { text: render(p), kind: 'bad-head', label: 'bad-name' };
    case 17:
      p.headers.push(pick([': v', 'no-colon-here', ':']));
      return { text: render(p), kind: 'bad-head', label: 'empty-name-or-no-colon' };
    case 18:
      p.headers.push(`Expect: ${pick(['200-ok', '100-continue-x', 'foo'])}`);
      return { text: render(p), kind: 'bad-head', label: 'bad-expect' };
    case 19: {
      const size = pick(['-1', '0x5', ' 5', 'g', '', 'ffffffffffffffffffff', '5 ', '+5', '5\t']);
      return {
        text: `${headWith(['Transfer-Encoding: chunked'])}${size}\r\nhello\r\n0\r\n\r\n`,
        kind: 'bad-body',
        label: 'bad-chunk-size',
      };
    }
    case 20:
      return {
        text: `${headWith(['Transfer-Encoding: chunked'])}5\r\nhello${pick(['X', 'XX\r\n', '\n', 'hello'])}\r\n0\r\n\r\n`,
        kind: 'bad-body',
        label: 'chunk-overrun',
      };
    case 21:
      return {
        text: `${headWith(['Transfer-Encoding: chunked'])}5\n${pick(['hello\r\n', 'hello\n'])}0\r\n\r\n`,
        kind: 'bad-body',
        label: 'chunk-bare-lf',
      };
    case 22: {
      const ext = pick([';=x', ';a="unterminated', ';a=b c', ';\x01', ' ;a=b', ';a=b ', ';a="\x01"', ';a=b;']);
      return { text: `${headWith(['Transfer-Encoding: chunked'])}5${ext}\r\nhello\r\n0\r\n\r\n`, kind: 'bad-body', label: 'bad-chunk-ext' };
    }
    default: {
      const t = pick(['X T: 1\r\n', 'X-T: 1\r\n folded\r\n', 'X-T: 1\n', ': v\r\n', 'X-T: a\x00b\r\n']);
      return { text: `${headWith(['Transfer-Encoding: chunked'])}5\r\nhello\r\n0\r\n${t}\r\n`, kind: 'bad-body', label: 'bad-trailer' };
    }
  }
}

function validCase(id: number): Case {
  const p = baseParts(id);
  const label = validVariant(p);
  let text = render(p);
  // Variants that replaced framing headers by hand keep the body after the head.
  if (label === 'cl-leading-zeros') text += p.body;
  if (label === 'te-case') text += `${encodeChunks(p)}0\r\n\r\n`;
  const url = p.target.startsWith('http://') ? p.target.slice('http://fuzz'.length) : p.target;
  return { id, kind: 'valid', label, bytes: Buffer.from(text, 'latin1'), expect: { method: p.method, url, body: bodyFor(p) } };
}

interface Conn {
  readonly prefix: Case[];
  readonly bad?: Case;
  readonly suffix: Case[];
  /** Write in small pieces with pauses between them (incremental parsing). */
  readonly trickle: boolean;
}

function corpus(nInvalid: number, nValidBatches: number): Conn[] {
  let id = 1;
  const conns: Conn[] = [];
  for (let i = 0; i < nInvalid; i++) {
    const prefix = Array.from({ length: int(3) }, () => validCase(id++));
    const b = invalid(id);
    const bad: Case = { id: id++, kind: b.kind, label: b.label, bytes: Buffer.from(b.text, 'latin1') };
    const suffix = Array.from({ length: 1 + int(2) }, () => validCase(id++));
    conns.push({ prefix, bad, suffix, trickle: int(10) === 0 });
  }
  for (let i = 0; i < nValidBatches; i++)
    conns.push({ prefix: Array.from({ length: 20 }, () => validCase(id++)), suffix: [], trickle: int(4) === 0 });
  return conns;
}

// ---- client side ----

interface Response {
  readonly status: number;
  readonly head: string;
  readonly body: string;
}

/** Splits the proxy's answers (Content-Length or chunked framed) and skips 100 Continue. */
function parseResponses(data: string): { responses: Response[]; rest: string } {
  const responses: Response[] = [];
  let at = 0;
  for (;;) {
    const end = data.indexOf('\r\n\r\n', at);
    if (end < 0) break;
    const head = data.slice(at, end + 2);
    const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(head)?.[1] ?? 0);
    let next = end + 4;
    let body = '';
    const cl = /\r\ncontent-length: (\d+)\r\n/i.exec(head);
    if (status === 100) {
      at = next;
      continue;
    }
    if (cl) {
      body = data.slice(next, next + Number(cl[1]));
      if (body.length < Number(cl[1])) break;
      next += Number(cl[1]);
    } else if (/\r\ntransfer-encoding: chunked\r\n/i.test(head)) {
      const term = data.indexOf('0\r\n\r\n', next);
      if (term < 0) break;
      body = data.slice(next, term);
      next = term + 5;
    }
    responses.push({ status, head, body });
    at = next;
  }
  return { responses, rest: data.slice(at) };
}

function runConn(port: number, c: Conn): Promise<string> {
  const bytes = Buffer.concat([...c.prefix, ...(c.bad ? [c.bad] : []), ...c.suffix].map((x) => x.bytes));
  return new Promise((resolve) => {
    const s: Socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const finish = () => {
      clearTimeout(timer);
      s.destroy();
      resolve(Buffer.concat(chunks).toString('latin1'));
    };
    // The deadline counts from the last byte sent: a 66 KB head trickled in thousands of writes takes seconds
    // on a loaded machine before the proxy has anything to answer.
    let timer = setTimeout(finish, 10_000);
    s.on('data', (d: Buffer) => chunks.push(d));
    s.on('error', finish);
    s.on('close', finish);
    s.on('connect', async () => {
      if (!c.trickle) {
        s.end(bytes);
        return;
      }
      for (let i = 0; i < bytes.length && !s.destroyed; ) {
        // A 64 KB head in 40-byte writes outlasts the proxy's 2 s linger after its 431 on a loaded machine, and
        // the reset then takes the answer away: big heads trickle in bigger pieces.
        const n = 1 + int(bytes.length > 16_384 ? 2048 : 40);
        s.write(bytes.subarray(i, i + n));
        i += n;
        await new Promise((r) => setImmediate(r));
      }
      if (!s.destroyed) {
        clearTimeout(timer);
        timer = setTimeout(finish, 10_000);
        s.end();
      }
    });
  });
}

/** Whether strict llhttp (a Node server) takes one request as a complete, valid request. */
function llhttpAccepts(port: number, bytes: Buffer): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const finish = () => {
      clearTimeout(timer);
      s.destroy();
      resolve(Buffer.concat(chunks).toString('latin1').startsWith('HTTP/1.1 200 '));
    };
    const timer = setTimeout(finish, 5000);
    s.on('data', (d: Buffer) => chunks.push(d));
    s.on('error', finish);
    s.on('close', finish);
    s.end(bytes);
  });
}

async function pool<T>(items: readonly T[], width: number, fn: (t: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) await fn(items[next++] as T);
    }),
  );
}

describe('HTTP/1.1 smuggling and desync fuzzing', { timeout: 120_000 }, () => {
  let up: Server;
  let oracle: Server;
  let oraclePort = 0;
  let p: ProxyHarness;
  const complete = new Map<number, { method: string; url: string; body: string }>();
  const aborted = new Set<number>();
  const duplicates: number[] = [];
  const upstreamErrors: string[] = [];
  let upstreamAborts = 0;
  let unknownIds = 0;

  function record(req: IncomingMessage, res: ServerResponse): void {
    const id = Number(req.headers['x-id']);
    const chunks: Buffer[] = [];
    let ended = false;
    req.on('data', (d: Buffer) => chunks.push(d));
    req.on('end', () => {
      ended = true;
      if (!Number.isInteger(id)) unknownIds++;
      else if (complete.has(id)) duplicates.push(id);
      else complete.set(id, { method: req.method ?? '', url: req.url ?? '', body: Buffer.concat(chunks).toString('latin1') });
      const out = `ok ${id}`;
      res.writeHead(200, { 'content-length': Buffer.byteLength(out), 'content-type': 'text/plain' });
      res.end(out);
    });
    req.on('close', () => {
      if (!ended && Number.isInteger(id)) aborted.add(id);
    });
  }

  before(async () => {
    up = createServer({ insecureHTTPParser: false, keepAliveTimeout: 60_000 }, record);
    up.on('clientError', (e: NodeJS.ErrnoException, socket: Socket) => {
      // A connection the proxy closed mid-body (it refused the rest of a request it had begun to forward) ends
      // in an incomplete message: that is an abort, not a malformed request.
      if (e.code === 'HPE_INVALID_EOF_STATE' || e.code === 'ECONNRESET') upstreamAborts++;
      else upstreamErrors.push(`${e.code}: ${e.message}`);
      socket.destroy();
    });
    oracle = createServer({ insecureHTTPParser: false, requireHostHeader: true, maxHeaderSize: 65536 }, (req, res) => {
      req.resume();
      req.on('end', () => res.end('ok'));
    });
    oracle.on('clientError', (_e, socket: Socket) => socket.destroy());
    oraclePort = await listenNet(oracle);
    const upPort = await listenNet(up);
    p = await startProxy(
      proxyConfig([cluster('up', [upPort])], [table('r', [vhost('any', ['*'], [route('all', prefix('/'), forward('up'))])])]),
    );
  });
  after(async () => {
    await p.close();
    up.closeAllConnections();
    oracle.closeAllConnections();
    await new Promise<void>((r) => up.close(() => r()));
    await new Promise<void>((r) => oracle.close(() => r()));
  });

  test('a generated corpus of >= 10,000 requests: no desync, every malformed request refused, nothing smuggled', async () => {
    const conns = corpus(4500, 150);
    const all = conns.flatMap((c) => [...c.prefix, ...(c.bad ? [c.bad] : []), ...c.suffix]);
    assert.ok(all.length >= 10_000, `corpus has ${all.length} requests`);
    const uncaught: unknown[] = [];
    const onUncaught = (e: unknown) => uncaught.push(e);
    process.on('uncaughtException', onUncaught);
    const failures: string[] = [];
    const served = new Set<number>();
    try {
      await pool(conns, 48, async (c) => {
        const out = await runConn(p.port, c);
        const { responses, rest } = parseResponses(out);
        const want = c.prefix.length + (c.bad ? 1 : 0);
        const where = `${c.bad ? `${c.bad.label} #${c.bad.id}` : 'valid batch'}${c.trickle ? ' (trickled)' : ''}`;
        if (responses.length !== want || rest !== '') {
          failures.push(`${where}: ${responses.length} responses for ${want} expected, rest ${JSON.stringify(rest.slice(0, 80))}`);
          return;
        }
        c.prefix.forEach((v, i) => {
          const r = responses[i] as Response;
          if (r.status !== 200 || r.body !== `ok ${v.id}`)
            failures.push(`${where}: valid #${v.id} (${v.label}) got ${r.status} ${r.body.slice(0, 60)}`);
          else served.add(v.id);
        });
        if (c.bad) {
          const r = responses[want - 1] as Response;
          if (![400, 417, 431, 505].includes(r.status) || !/\r\nconnection: close\r\n/.test(r.head)) {
            failures.push(`${where}: refused with ${r.status} ${JSON.stringify(r.head.slice(0, 120))}`);
          }
        }
      });
    } finally {
      process.removeListener('uncaughtException', onUncaught);
    }
    assert.deepEqual(uncaught, []);
    assert.deepEqual(failures.slice(0, 20), [], `${failures.length} connection failures`);

    // The upstream's side: complete requests only for valid inputs before any bad one, exactly as sent.
    const byId = new Map(all.map((x) => [x.id, x]));
    const wrong: string[] = [];
    for (const [id, seen] of complete) {
      const c = byId.get(id);
      if (c?.kind !== 'valid' || !served.has(id)) wrong.push(`#${id} (${c?.label ?? 'unknown'}, ${c?.kind}) reached the upstream complete`);
      else if (seen.method !== c.expect?.method || seen.url !== c.expect.url || seen.body !== c.expect.body) {
        wrong.push(`#${id} (${c.label}) arrived as ${JSON.stringify(seen).slice(0, 200)}, sent ${JSON.stringify(c.expect).slice(0, 200)}`);
      }
    }
    for (const id of served) if (!complete.has(id)) wrong.push(`#${id} was answered but never reached the upstream`);
    for (const id of aborted)
      if (byId.get(id)?.kind !== 'bad-body') wrong.push(`#${id} (${byId.get(id)?.label}) reached the upstream partially`);
    assert.deepEqual(wrong.slice(0, 20), [], `${wrong.length} upstream mismatches`);
    assert.deepEqual(upstreamErrors, [], 'the upstream never saw a malformed request');
    const badBodies = all.filter((x) => x.kind === 'bad-body').length;
    assert.ok(upstreamAborts <= badBodies, `${upstreamAborts} aborted upstream requests for ${badBodies} malformed bodies`);
    assert.equal(unknownIds, 0);
    assert.deepEqual(duplicates, []);
    assert.equal(complete.size, served.size);
  });

  test('at least as strict as llhttp: what strict llhttp refuses, the proxy refused', async () => {
    seed = 0x0badc0de;
    const cases: Case[] = [];
    for (let id = 1; cases.length < 4000; id++) {
      if (id % 2 === 0) cases.push(validCase(id));
      else {
        const b = invalid(id);
        cases.push({ id, kind: b.kind, label: b.label, bytes: Buffer.from(b.text, 'latin1') });
      }
    }
    const looser: string[] = [];
    const stricter = new Map<string, number>();
    await pool(cases, 48, async (c) => {
      const accepted = await llhttpAccepts(oraclePort, c.bytes);
      // Valid cases were shown above to pass the proxy; bad ones to be refused by it.
      if (c.kind === 'valid' && !accepted) looser.push(`${c.label}: ${JSON.stringify(c.bytes.toString('latin1').slice(0, 160))}`);
      if (c.kind !== 'valid' && accepted) stricter.set(c.label, (stricter.get(c.label) ?? 0) + 1);
    });
    assert.deepEqual(looser.slice(0, 10), [], `${looser.length} requests the proxy serves but llhttp refuses`);
    // Where the proxy is stricter than llhttp (informational): e.g. `gzip, chunked`, Host with spaces, fragments.
    assert.ok(stricter.size > 0, 'the corpus exercises refusals beyond llhttp');
  });

  test('the proxy still serves well-formed pipelined requests afterwards', async () => {
    const batch = Array.from({ length: 50 }, (_, i) => validCase(900_000 + i));
    const out = await runConn(p.port, { prefix: batch, suffix: [], trickle: false });
    const { responses } = parseResponses(out);
    assert.equal(responses.length, 50);
    for (const [i, r] of responses.entries()) assert.equal(r.body, `ok ${900_000 + i}`);
  });
});
