import type { RouteAction, RouteMatch } from '../proxy-config.js';

type Forward = Extract<RouteAction, { kind: 'forward' }>;
type Redirect = Extract<RouteAction, { kind: 'redirect' }>;

function splitQuery(path: string): [string, string] {
  const q = path.indexOf('?');
  return q < 0 ? [path, ''] : [path.slice(0, q), path.slice(q)];
}

/**
 * Envoy's prefix_rewrite: the matched prefix is replaced; for exact and regex path matches the whole path is
 * (Istio relies on that). The query string is kept.
 */
export function prefixRewrite(match: RouteMatch['path'], path: string, rewrite: string): string {
  const [p, query] = splitQuery(path);
  if (match.kind === 'prefix' || match.kind === 'path_separated_prefix') return rewrite + p.slice(match.value.length) + query;
  return rewrite + query;
}

/** Envoy's regex_rewrite on the path without query: every match replaced (RE2::GlobalReplace). */
export function regexRewrite(rw: NonNullable<Forward['regexRewrite']>, path: string): string {
  const [p, query] = splitQuery(path);
  return rw.pattern.replaceAll(p, rw.substitution) + query;
}

/** The upstream path for a forward action, or the client's when nothing rewrites it. */
export function forwardPath(a: Forward, match: RouteMatch['path'], path: string): string {
  if (a.regexRewrite) return regexRewrite(a.regexRewrite, path);
  if (a.prefixRewrite !== undefined) return prefixRewrite(match, path, a.prefixRewrite);
  return path;
}

function splitPort(authority: string): [string, string] {
  const close = authority.lastIndexOf(']');
  const colon = authority.lastIndexOf(':');
  return colon > close && colon > 0 ? [authority.slice(0, colon), authority.slice(colon + 1)] : [authority, ''];
}

/** The Location of a redirect route (Envoy's newUri): scheme, host, port, path or prefix swapped as configured. */
export function redirectLocation(a: Redirect, match: RouteMatch['path'], scheme: string, authority: string, path: string): string {
  const finalScheme = a.scheme ?? scheme;
  // A host redirect replaces the port too (its own, if it names one); otherwise the client's port stays.
  let [host, port] = splitPort(a.host ?? authority);
  if (a.port !== undefined) port = String(a.port);
  else if (a.scheme !== undefined && (port === '80' || port === '443')) port = '';
  if ((finalScheme === 'http' && port === '80') || (finalScheme === 'https' && port === '443')) port = '';
  let finalPath = path;
  if (a.path !== undefined) finalPath = a.path.includes('?') ? a.path : a.path + splitQuery(path)[1];
  else if (a.prefixRewrite !== undefined) finalPath = prefixRewrite(match, path, a.prefixRewrite);
  return `${finalScheme}://${host}${port === '' ? '' : `:${port}`}${finalPath}`;
}
