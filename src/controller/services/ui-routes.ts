import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCode, vmeshError } from '../../lib/errors.js';
import type { Route } from '../../lib/http-api.js';
import { packagePath } from '../../lib/package-path.js';

const ASSETS: Readonly<Record<string, string>> = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'app.css': 'text/css; charset=utf-8',
};

/**
 * The page is static and holds no data, so it is served without a token; everything it shows comes from the
 * token-protected API. Only its own scripts and styles run, and it is never framed (no clickjacking of an admin).
 */
const HEADERS = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-cache',
};

/** GET /ui (and /ui/<asset>): the mesh UI, files read once from src/controller/ui. */
export function uiRoutes(): Route[] {
  const dir = packagePath('src', 'controller', 'ui');
  const files = new Map(Object.entries(ASSETS).map(([name, type]) => [name, { type, body: readFileSync(join(dir, name), 'utf8') }]));
  const serve = (name: string) => {
    const f = files.get(name);
    if (!f) throw vmeshError(ErrorCode.NotFound, `no UI file ${name}`);
    return Promise.resolve({ body: f.body, contentType: f.type, headers: HEADERS });
  };
  return [
    { method: 'GET', path: '/ui', anonymous: true, handler: () => serve('index.html') },
    { method: 'GET', path: '/ui/', anonymous: true, handler: () => serve('index.html') },
    { method: 'GET', path: '/ui/:file', anonymous: true, handler: ({ params }) => serve(params.file ?? '') },
  ];
}
