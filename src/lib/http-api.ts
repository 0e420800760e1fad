import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { ErrorCode, isVmeshError, VmeshError, vmeshError } from './errors.js';
import { Limits } from './limits.js';
import type { Logger } from './logger.js';

/** Who is calling: an operator (admin token or admin client certificate) or nobody. */
export type Principal = { readonly kind: 'admin'; readonly via: 'token' | 'certificate' } | { readonly kind: 'anonymous' };

export interface RequestContext {
  readonly method: string;
  readonly params: Readonly<Record<string, string>>;
  readonly query: URLSearchParams;
  /** Parsed JSON body, or the raw text for non-JSON bodies (YAML config). */
  readonly body: unknown;
  readonly principal: Principal;
}

export interface Route {
  readonly method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** `/v1/hosts/:name` style; `:x` matches one path segment. */
  readonly path: string;
  /** Reads are allowed anonymously only where a route says so; writes never are. */
  readonly anonymous?: boolean;
  /** Largest request body accepted, in bytes; 4 MiB when not given. */
  readonly maxBody?: number;
  /** A `contentType` sends `body` (a string) as it is, e.g. Prometheus text; otherwise it is JSON. */
  readonly handler: (
    ctx: RequestContext,
  ) => Promise<{ status?: number; body: unknown; contentType?: string; headers?: Readonly<Record<string, string>> }>;
}

const MAX_BODY = Limits.apiBodyBytes;

const STATUS: Partial<Record<ErrorCode, number>> = {
  [ErrorCode.Usage]: 400,
  [ErrorCode.InvalidConfig]: 400,
  [ErrorCode.InvalidResource]: 400,
  [ErrorCode.UnsupportedField]: 400,
  [ErrorCode.InvalidAddress]: 400,
  [ErrorCode.InvalidPort]: 400,
  [ErrorCode.CsrInvalid]: 400,
  [ErrorCode.LimitExceeded]: 400,
  [ErrorCode.NotFound]: 404,
  [ErrorCode.Conflict]: 409,
  [ErrorCode.Unauthenticated]: 401,
  [ErrorCode.TokenInvalid]: 401,
  [ErrorCode.TokenExpired]: 401,
  [ErrorCode.TokenUsed]: 401,
  [ErrorCode.Forbidden]: 403,
  [ErrorCode.HostRevoked]: 403,
  [ErrorCode.Unavailable]: 503,
  [ErrorCode.NoSpace]: 507,
};

export function httpStatusFor(code: ErrorCode): number {
  return STATUS[code] ?? 500;
}

function compile(path: string): { re: RegExp; names: string[] } {
  const names: string[] = [];
  const re = path.replace(/:([a-zA-Z]+)/g, (_, n: string) => {
    names.push(n);
    return '([^/]+)';
  });
  return { re: new RegExp(`^${re}$`), names };
}

function decodePathSegment(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw vmeshError(ErrorCode.Usage, `bad percent-encoding in URL path segment "${raw.slice(0, 64)}"`);
  }
}

async function readBody(req: IncomingMessage, limit = MAX_BODY): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > limit) throw vmeshError(ErrorCode.LimitExceeded, `request body over the ${limit}-byte limit`);
    chunks.push(c as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text === '') return undefined;
  if ((req.headers['content-type'] ?? '').includes('application/json')) {
    if (jsonNestedDeeper(text, Limits.configDepth)) {
      throw vmeshError(ErrorCode.LimitExceeded, `request body: JSON nested deeper than ${Limits.configDepth} levels`);
    }
    try {
      return JSON.parse(text);
    } catch {
      throw vmeshError(ErrorCode.Usage, 'request body is not valid JSON');
    }
  }
  return text;
}

/**
 * Whether JSON text nests arrays/objects deeper than `max`, by one pass over the characters (strings skipped).
 * Done before JSON.parse: V8 parses deep nesting iteratively but slowly (200k levels: ~0.2 s), and the handlers
 * that walk the value recurse.
 */
export function jsonNestedDeeper(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92)
        i++; // backslash: skip the escaped character
      else if (c === 34) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 91 || c === 123) {
      if (++depth > max) return true;
    } else if (c === 93 || c === 125) depth--;
  }
  return false;
}

export function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export interface ApiServerOptions {
  readonly key: string;
  readonly cert: string;
  /** CA that signs admin client certificates; the peer's certificate must also be an admin one. */
  readonly clientCa?: string;
  readonly isAdminCertificate?: (uris: readonly string[]) => boolean;
  readonly adminToken: string;
  readonly routes: readonly Route[];
  readonly logger: Logger;
}

function principalOf(req: IncomingMessage, opts: ApiServerOptions): Principal {
  const auth = req.headers.authorization ?? '';
  const m = /^Bearer (\S+)$/.exec(auth);
  if (m?.[1] && sameSecret(m[1], opts.adminToken)) return { kind: 'admin', via: 'token' };
  const sock = req.socket as TLSSocket;
  if (opts.isAdminCertificate && sock.authorized) {
    const san = sock.getPeerCertificate()?.subjectaltname ?? '';
    const uris = san
      .split(', ')
      .filter((s) => s.startsWith('URI:'))
      .map((s) => s.slice(4));
    if (opts.isAdminCertificate(uris)) return { kind: 'admin', via: 'certificate' };
  }
  return { kind: 'anonymous' };
}

/** A JSON-over-HTTPS API: routing, authentication, one-line errors with stable codes. */
export function createApiServer(opts: ApiServerOptions): Server {
  const routes = opts.routes.map((r) => ({ ...r, ...compile(r.path) }));
  const send = (res: ServerResponse, status: number, body: unknown) => {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  };
  return createServer(
    {
      key: opts.key,
      cert: opts.cert,
      handshakeTimeout: Limits.tlsHandshakeMs,
      ...(opts.clientCa ? { ca: opts.clientCa, requestCert: true, rejectUnauthorized: false } : {}),
    },
    (req, res) => {
      let url = new URL('https://vmesh/');
      const handle = async () => {
        try {
          url = new URL(req.url ?? '/', 'https://vmesh');
        } catch {
          throw vmeshError(ErrorCode.Usage, `request target is not a URL path: "${String(req.url).slice(0, 64)}"`);
        }
        const candidates = routes.filter((r) => r.re.test(url.pathname));
        if (candidates.length === 0) throw vmeshError(ErrorCode.NotFound, `no API at ${url.pathname}`);
        const route = candidates.find((r) => r.method === req.method);
        if (!route) throw vmeshError(ErrorCode.Usage, `${req.method} not allowed on ${url.pathname}`);
        const principal = principalOf(req, opts);
        if (principal.kind === 'anonymous' && !route.anonymous) {
          throw vmeshError(ErrorCode.Unauthenticated, `${req.method} ${url.pathname} needs an admin token or certificate`);
        }
        const values = route.re.exec(url.pathname)?.slice(1) ?? [];
        const params = Object.fromEntries(route.names.map((n, i) => [n, decodePathSegment(values[i] ?? '')]));
        const body = await readBody(req, route.maxBody);
        const out = await route.handler({ method: req.method ?? 'GET', params, query: url.searchParams, body, principal });
        if (out.contentType) {
          const raw = String(out.body);
          res.writeHead(out.status ?? 200, { ...out.headers, 'content-type': out.contentType, 'content-length': Buffer.byteLength(raw) });
          res.end(raw);
        } else send(res, out.status ?? 200, out.body);
      };
      handle().catch((e: unknown) => {
        const err = isVmeshError(e) ? e : new VmeshError(ErrorCode.Internal, (e as Error)?.message ?? String(e));
        const status = httpStatusFor(err.code);
        if (status >= 500) opts.logger.error({ err: e, path: url.pathname }, 'API request failed');
        else opts.logger.info({ code: err.code, path: url.pathname, method: req.method }, err.message);
        send(res, status, { error: { code: err.code, message: err.message, details: err.details } });
      });
    },
  );
}
