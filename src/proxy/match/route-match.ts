import type {
  HeaderMatcher,
  MetadataMatcher,
  Route,
  RouteMatch,
  RouteTable,
  StringMatcher,
  ValueMatcher,
  VirtualHost,
} from '../proxy-config.js';

/**
 * HTTP route selection with Envoy's semantics, on the hot path: no allocation per call except a lower-cased
 * authority when it has upper-case letters and the path without its query for regex path matches.
 */

/** What routing reads from a request; `header` takes lower-case names. */
export interface RequestView {
  method: string;
  /** With the query string. */
  path: string;
  authority: string;
  scheme: string;
  header(name: string): string | undefined;
  /** A filter's dynamic metadata (the JWT filter's verified payload), for routes that match on it. */
  metadata?(filter: string): unknown;
}

interface VhostIndex {
  readonly exact: ReadonlyMap<string, VirtualHost>;
  /** Suffix wildcards (`.example.com` for `*.example.com`, `-db.example.com` for `*-db.example.com`), longest first. */
  readonly suffixes: ReadonlyArray<{ readonly suffix: string; readonly vh: VirtualHost }>;
  /** Prefix wildcards (`api.` for `api.*`), longest first. */
  readonly prefixes: ReadonlyArray<{ readonly prefix: string; readonly vh: VirtualHost }>;
  readonly any?: VirtualHost;
}

const indexes = new WeakMap<RouteTable, VhostIndex>();

function indexOf(table: RouteTable): VhostIndex {
  let idx = indexes.get(table);
  if (idx) return idx;
  const exact = new Map<string, VirtualHost>();
  const suffixes: Array<{ suffix: string; vh: VirtualHost }> = [];
  const prefixes: Array<{ prefix: string; vh: VirtualHost }> = [];
  let any: VirtualHost | undefined;
  for (const vh of table.virtualHosts) {
    for (const d of vh.domains) if (!exact.has(d)) exact.set(d, vh);
    for (const s of vh.wildcardSuffixes) suffixes.push({ suffix: s, vh });
    for (const p of vh.wildcardPrefixes ?? []) prefixes.push({ prefix: p, vh });
    if (vh.matchAll && !any) any = vh;
  }
  // Stable: equal lengths keep virtual host order.
  suffixes.sort((a, b) => b.suffix.length - a.suffix.length);
  prefixes.sort((a, b) => b.prefix.length - a.prefix.length);
  idx = any ? { exact, suffixes, prefixes, any } : { exact, suffixes, prefixes };
  indexes.set(table, idx);
  return idx;
}

function hasUpper(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 65 && c <= 90) return true;
  }
  return false;
}

/** Where `host:port` ends its host part (`[v6]:port` aware); -1 when there is no port. */
function portColon(a: string): number {
  const i = a.lastIndexOf(':');
  if (i < 0) return -1;
  if (a.charCodeAt(0) === 91) return a.charCodeAt(i - 1) === 93 ? i : -1;
  return a.indexOf(':') === i ? i : -1;
}

function suffixMatch(idx: VhostIndex, host: string): VirtualHost | undefined {
  for (const s of idx.suffixes) {
    // The wildcard stands for at least one character, as in Envoy: `*-bar.foo.com` does not match `-bar.foo.com`.
    if (host.length > s.suffix.length && host.endsWith(s.suffix)) return s.vh;
  }
  return undefined;
}

function prefixMatch(idx: VhostIndex, host: string): VirtualHost | undefined {
  for (const p of idx.prefixes) {
    if (host.length > p.prefix.length && host.startsWith(p.prefix)) return p.vh;
  }
  return undefined;
}

/**
 * Envoy's virtual host choice: an exact domain (the authority as sent, then without its port), then the longest
 * matching `*suffix` wildcard (`*.foo.com`, `*-bar.foo.com`), then the longest `prefix*` wildcard (`foo.*`), then `*`.
 */
export function selectVirtualHost(table: RouteTable, authority: string): VirtualHost | undefined {
  const idx = indexOf(table);
  const host = hasUpper(authority) ? authority.toLowerCase() : authority;
  const hit = idx.exact.get(host);
  if (hit) return hit;
  const colon = portColon(host);
  const bare = colon >= 0 ? host.slice(0, colon) : undefined;
  if (bare !== undefined) {
    const h = idx.exact.get(bare);
    if (h) return h;
  }
  if (idx.suffixes.length > 0) {
    const s = suffixMatch(idx, host) ?? (bare !== undefined ? suffixMatch(idx, bare) : undefined);
    if (s) return s;
  }
  if (idx.prefixes.length > 0) {
    const p = prefixMatch(idx, host) ?? (bare !== undefined ? prefixMatch(idx, bare) : undefined);
    if (p) return p;
  }
  return idx.any;
}

/** ASCII case-insensitive `s.startsWith(lower, at)` where `lower` is already lower case. */
function startsWithFold(s: string, lower: string, at: number): boolean {
  if (s.length - at < lower.length) return false;
  for (let i = 0; i < lower.length; i++) {
    let c = s.charCodeAt(at + i);
    if (c >= 65 && c <= 90) c += 32;
    if (c !== lower.charCodeAt(i)) return false;
  }
  return true;
}

function includesFold(s: string, lower: string): boolean {
  for (let at = 0; at + lower.length <= s.length; at++) if (startsWithFold(s, lower, at)) return true;
  return false;
}

/** Envoy's StringMatcher on a value; an absent value matches nothing but `present` negations. */
export function matchString(m: StringMatcher, v: string | undefined): boolean {
  if (v === undefined) return false;
  switch (m.kind) {
    case 'exact':
      return m.ignoreCase ? v.length === m.value.length && startsWithFold(v, m.value, 0) : v === m.value;
    case 'prefix':
      return m.ignoreCase ? startsWithFold(v, m.value, 0) : v.startsWith(m.value);
    case 'suffix':
      return m.ignoreCase ? v.length >= m.value.length && startsWithFold(v, m.value, v.length - m.value.length) : v.endsWith(m.value);
    case 'contains':
      return m.ignoreCase ? includesFold(v, m.value) : v.includes(m.value);
    case 'regex':
      return m.regex.fullMatch(v);
    case 'present':
      return true;
  }
}

/** A header matcher on a header's value (undefined = absent): an absent header matches exactly when inverted. */
export function headerMatches(h: HeaderMatcher, value: string | undefined): boolean {
  if (value === undefined) return h.invert;
  return matchString(h.match, value) !== h.invert;
}

/** Request headers by name, pseudo-headers included. */
export function requestHeader(req: RequestView, name: string): string | undefined {
  if (name.charCodeAt(0) === 58) {
    switch (name) {
      case ':method':
        return req.method;
      case ':authority':
        return req.authority;
      case ':path':
        return req.path;
      case ':scheme':
        return req.scheme;
    }
  }
  // HTTP/1 Host and HTTP/2 :authority are one header.
  return name === 'host' ? req.authority : req.header(name);
}

/** The first value of a query parameter, as Envoy reads it (not URL-decoded; `?a` is `a` = ''). */
export function queryValue(path: string, queryStart: number, name: string): string | undefined {
  let i = queryStart + 1;
  const end = path.length;
  while (i <= end) {
    let amp = path.indexOf('&', i);
    if (amp < 0) amp = end;
    if (path.startsWith(name, i)) {
      const after = i + name.length;
      if (after === amp) return '';
      if (path.charCodeAt(after) === 61) return path.slice(after + 1, amp);
    }
    i = amp + 1;
  }
  return undefined;
}

function pathMatches(m: RouteMatch['path'], path: string, pathEnd: number): boolean {
  switch (m.kind) {
    case 'prefix': {
      if (m.value.length > pathEnd) return false;
      return m.caseSensitive ? path.startsWith(m.value) : startsWithFold(path, m.value, 0);
    }
    case 'exact': {
      if (m.value.length !== pathEnd) return false;
      return m.caseSensitive ? path.startsWith(m.value) : startsWithFold(path, m.value, 0);
    }
    case 'path_separated_prefix': {
      const n = m.value.length;
      if (n > pathEnd || (n < pathEnd && path.charCodeAt(n) !== 47)) return false;
      return m.caseSensitive ? path.startsWith(m.value) : startsWithFold(path, m.value, 0);
    }
    case 'regex':
      return m.regex.fullMatch(pathEnd === path.length ? path : path.slice(0, pathEnd));
  }
}

/** Whether one route's match accepts the request (path without query, headers, query parameters). */
export function routeMatches(match: RouteMatch, req: RequestView): boolean {
  const path = req.path;
  let q = path.indexOf('?');
  if (q < 0) {
    // Fragments never reach a server, but a client may send one; Envoy ignores it for matching.
    const hash = path.indexOf('#');
    q = hash < 0 ? path.length : hash;
  }
  if (!pathMatches(match.path, path, q)) return false;
  const headers = match.headers;
  for (let i = 0; i < headers.length; i++) {
    const h = headers[i] as HeaderMatcher;
    if (!headerMatches(h, requestHeader(req, h.name))) return false;
  }
  const query = match.query;
  if (query.length > 0) {
    const hasQuery = q < path.length && path.charCodeAt(q) === 63;
    for (let i = 0; i < query.length; i++) {
      const qm = query[i] as RouteMatch['query'][number];
      const v = hasQuery ? queryValue(path, q, qm.name) : undefined;
      if (!matchString(qm.match, v)) return false;
    }
  }
  const metadata = match.metadata;
  if (metadata !== undefined) {
    for (let i = 0; i < metadata.length; i++) if (!metadataMatches(metadata[i] as MetadataMatcher, req)) return false;
  }
  return true;
}

/** The first route of the virtual host whose match accepts the request. */
export function matchRoute(vh: VirtualHost, req: RequestView): Route | undefined {
  const routes = vh.routes;
  for (let i = 0; i < routes.length; i++) {
    const r = routes[i] as Route;
    if (routeMatches(r.match, req)) return r;
  }
  return undefined;
}

/**
 * Envoy's weighted pick: `random` in [0, 1) scaled to the total weight, the first entry whose cumulative weight
 * exceeds it. Zero weights are never picked; undefined when all weights are zero.
 */
export function pickWeighted<T extends { readonly weight: number }>(
  clusters: readonly T[],
  random: number,
  totalWeight?: number,
): T | undefined {
  let total = totalWeight;
  if (total === undefined) {
    total = 0;
    for (let i = 0; i < clusters.length; i++) total += (clusters[i] as T).weight;
  }
  if (!(total > 0)) return undefined;
  const target = random * total;
  let acc = 0;
  for (let i = 0; i < clusters.length; i++) {
    const c = clusters[i] as T;
    acc += c.weight;
    if (target < acc && c.weight > 0) return c;
  }
  // random == 1 or rounding: the last weighted entry.
  for (let i = clusters.length - 1; i >= 0; i--) if ((clusters[i] as T).weight > 0) return clusters[i];
  return undefined;
}

// ---- dynamic metadata (the JWT filter's `payload`), matched by routes and RBAC alike ----

function valueMatches(m: ValueMatcher, v: unknown): boolean {
  switch (m.kind) {
    case 'string':
      return typeof v === 'string' && matchString(m.match, v);
    case 'list_one_of':
      return Array.isArray(v) && v.some((x) => valueMatches(m.value, x));
    case 'or':
      return m.values.some((x) => valueMatches(x, v));
    case 'present':
      return (v !== undefined) === m.present;
    case 'bool':
      return v === m.value;
    case 'null':
      return v === null;
  }
}

/** Envoy's MetadataMatcher: the value at the key path (objects only) matched; a missing value matches nothing. */
/** Whatever carries a request's metadata (the exchange): called as its method, so `this` stays bound. */
export interface MetadataSource {
  metadata?(filter: string): unknown;
}

export function metadataMatches(m: MetadataMatcher, source: MetadataSource): boolean {
  let v: unknown = source.metadata?.(m.filter);
  for (const k of m.path) {
    if (typeof v !== 'object' || v === null || Array.isArray(v) || !Object.hasOwn(v, k)) {
      v = undefined;
      break;
    }
    v = (v as Record<string, unknown>)[k];
  }
  const hit = v !== undefined && valueMatches(m.value, v);
  return m.invert ? !hit : hit;
}
