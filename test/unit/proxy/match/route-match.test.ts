import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { RouteConfiguration__Output } from '../../../../src/generated/envoy/config/route/v3/RouteConfiguration.js';
import { SafeRegex } from '../../../../src/lib/safe-regex.js';
import { compileRouteTable } from '../../../../src/proxy/compile/routes.js';
import {
  matchRoute,
  matchString,
  pickWeighted,
  queryValue,
  type RequestView,
  selectVirtualHost,
} from '../../../../src/proxy/match/route-match.js';
import type { RouteTable, StringMatcher, VirtualHost } from '../../../../src/proxy/proxy-config.js';
import type { Decoded } from '../../../../src/xds/envoy-types.js';

/** A seeded PRNG (mulberry32), so property tests are reproducible. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function pick<T>(r: () => number, xs: readonly T[]): T {
  return xs[Math.floor(r() * xs.length)] as T;
}

function req(path: string, headers: Record<string, string> = {}, authority = 'a', method = 'GET'): RequestView {
  return { method, path, authority, scheme: 'http', header: (n) => headers[n] };
}

const route = (name: string, match: Record<string, unknown>) => ({ name, match, direct_response: { status: 200 } });

/** Sparse RouteConfiguration JSON, typed as the message the way compileProxyConfig types an applied resource. */
function compileSparse(json: Record<string, unknown>): RouteTable {
  return compileRouteTable(json as Decoded<RouteConfiguration__Output>, 't');
}

function vhostOf(routes: unknown[]): VirtualHost {
  const t = compileSparse({ virtual_hosts: [{ name: 'v', domains: ['*'], routes }] });
  return t.virtualHosts[0] as VirtualHost;
}

describe('selectVirtualHost', () => {
  const table: RouteTable = compileSparse({
    virtual_hosts: [
      { name: 'exact', domains: ['foo.com', 'foo.com:80', 'Mixed.Case'] },
      { name: 'wild', domains: ['*.foo.com'] },
      { name: 'wild-longer', domains: ['*.bar.foo.com'] },
      { name: 'wild-port', domains: ['*.baz.io:8443'] },
      { name: 'any', domains: ['*'] },
    ],
  });

  test('Envoy order: exact (as sent, then without port), longest suffix wildcard, then *', () => {
    const cases: Array<[string, string]> = [
      ['foo.com', 'exact'],
      ['FOO.COM', 'exact'],
      ['foo.com:80', 'exact'],
      ['foo.com:9999', 'exact'],
      ['mixed.case', 'exact'],
      ['a.foo.com', 'wild'],
      ['a.foo.com:8080', 'wild'],
      ['bar.foo.com', 'wild'],
      ['x.bar.foo.com', 'wild-longer'],
      ['x.baz.io:8443', 'wild-port'],
      ['x.baz.io', 'any'],
      ['.foo.com', 'any'],
      ['other', 'any'],
      ['[::1]:80', 'any'],
    ];
    for (const [authority, want] of cases) assert.equal(selectVirtualHost(table, authority)?.name, want, authority);
  });

  test("Envoy's full order: exact, then suffix wildcards (partial ones too) longest first, then prefix wildcards, then *", () => {
    const t = compileSparse({
      virtual_hosts: [
        { name: 'any', domains: ['*'] },
        { name: 'prefix-short', domains: ['api*'] },
        { name: 'prefix-long', domains: ['api.foo.*'] },
        { name: 'suffix-dash', domains: ['*-bar.foo.com'] },
        { name: 'suffix-dot', domains: ['*.foo.com'] },
        { name: 'suffix-one-label', domains: ['*x'] },
        { name: 'exact', domains: ['baz-bar.foo.com'] },
      ],
    });
    const cases: Array<[string, string]> = [
      ['baz-bar.foo.com', 'exact'],
      ['qux-bar.foo.com', 'suffix-dash'],
      ['-bar.foo.com', 'suffix-dot'],
      ['api.foo.com', 'suffix-dot'],
      ['a.foo.com', 'suffix-dot'],
      ['box', 'suffix-one-label'],
      ['x', 'any'],
      ['api.foo.org', 'prefix-long'],
      ['apis.example', 'prefix-short'],
      ['api', 'any'],
      ['other.example', 'any'],
      ['qux-bar.foo.com:8080', 'suffix-dash'],
    ];
    for (const [authority, want] of cases) assert.equal(selectVirtualHost(t, authority)?.name, want, authority);
  });

  test('a domain with * elsewhere than its first or last character, or twice, is refused', () => {
    assert.throws(() => compileSparse({ virtual_hosts: [{ name: 'v', domains: ['a*b.com'] }] }), /first or the last/);
    assert.throws(() => compileSparse({ virtual_hosts: [{ name: 'v', domains: ['*a*'] }] }), /more than one/);
  });

  test('without a * virtual host, an unknown authority selects none', () => {
    const t = compileSparse({ virtual_hosts: [{ name: 'only', domains: ['a.io'] }] });
    assert.equal(selectVirtualHost(t, 'b.io'), undefined);
    assert.equal(selectVirtualHost(t, 'a.io:1234')?.name, 'only');
  });

  test('property: agrees with a direct reading of the rules on random authorities', () => {
    const r = rng(7);
    const reference = (authority: string): string => {
      const host = authority.toLowerCase();
      const exact = new Map([
        ['foo.com', 'exact'],
        ['foo.com:80', 'exact'],
        ['mixed.case', 'exact'],
      ]);
      const colon = host.lastIndexOf(':');
      const bare = colon >= 0 ? host.slice(0, colon) : undefined;
      const hit = exact.get(host) ?? (bare !== undefined ? exact.get(bare) : undefined);
      if (hit) return hit;
      const wild: Array<[string, string]> = [
        ['.bar.foo.com', 'wild-longer'],
        ['.baz.io:8443', 'wild-port'],
        ['.foo.com', 'wild'],
      ];
      for (const h of [host, bare]) {
        if (h === undefined) continue;
        const best = wild.filter(([s]) => h.length > s.length && h.endsWith(s)).sort((a, b) => b[0].length - a[0].length)[0];
        if (best) return best[1];
      }
      return 'any';
    };
    const labels = ['foo', 'bar', 'baz', 'x', 'FOO', 'com', 'io', 'mixed', 'case'];
    for (let i = 0; i < 2000; i++) {
      const n = 1 + Math.floor(r() * 4);
      let host = Array.from({ length: n }, () => pick(r, labels)).join('.');
      if (r() < 0.4) host += `:${pick(r, [80, 8443, 9080])}`;
      assert.equal(selectVirtualHost(table, host)?.name, reference(host), host);
    }
  });
});

describe('matchRoute', () => {
  test('routes are tried in order; prefix, exact and path_separated_prefix ignore the query string', () => {
    const vh = vhostOf([
      route('exact', { path: '/a' }),
      route('sep', { path_separated_prefix: '/api' }),
      route('prefix', { prefix: '/a' }),
      route('all', { prefix: '/' }),
    ]);
    const name = (p: string) => matchRoute(vh, req(p))?.name;
    assert.equal(name('/a'), 'exact');
    assert.equal(name('/a?x=/b'), 'exact');
    assert.equal(name('/ab'), 'prefix');
    assert.equal(name('/api'), 'sep');
    assert.equal(name('/api/v1'), 'sep');
    assert.equal(name('/api?q'), 'sep');
    assert.equal(name('/apix'), 'prefix');
    assert.equal(name('/?a'), 'all');
  });

  test('case-insensitive prefix (property against a lower-casing reference)', () => {
    const vh = vhostOf([route('ci', { prefix: '/Reviews/V', case_sensitive: { value: false } }), route('cs', { prefix: '/Reviews' })]);
    const r = rng(11);
    const chars = ['/', 'r', 'R', 'e', 'E', 'v', 'V', 'i', 'w', 's', 'S', '?', 'x'];
    let ci = 0;
    for (let i = 0; i < 3000; i++) {
      const path = `/${i % 3 === 0 ? pick(r, ['reviews/v', 'REVIEWS/V', 'Reviews']) : ''}${Array.from({ length: Math.floor(r() * 8) }, () => pick(r, chars)).join('')}`;
      const bare = path.split('?')[0] ?? '';
      const want = bare.toLowerCase().startsWith('/reviews/v') ? 'ci' : bare.startsWith('/Reviews') ? 'cs' : undefined;
      if (want === 'ci') ci++;
      assert.equal(matchRoute(vh, req(path))?.name, want, path);
    }
    assert.ok(ci > 100, 'the generator exercised the case-insensitive route');
  });

  test('regex paths are full matches on the path without its query', () => {
    const vh = vhostOf([route('re', { safe_regex: { regex: '/ratings/[0-9]+' } })]);
    assert.equal(matchRoute(vh, req('/ratings/12'))?.name, 're');
    assert.equal(matchRoute(vh, req('/ratings/12?x=1'))?.name, 're');
    assert.equal(matchRoute(vh, req('/ratings/12/x')), undefined);
    assert.equal(matchRoute(vh, req('/v1/ratings/12')), undefined);
  });

  test('headers: exact, regex, presence, inverted (Istio withoutHeaders) and pseudo-headers', () => {
    const vh = vhostOf([
      route('jason', { prefix: '/', headers: [{ name: 'end-user', string_match: { exact: 'jason' } }] }),
      route('re', { prefix: '/', headers: [{ name: 'x-v', string_match: { safe_regex: { regex: 'v[0-9]' } } }] }),
      route('post', { prefix: '/', headers: [{ name: ':method', string_match: { exact: 'POST' } }] }),
      route('no-beta', {
        prefix: '/b',
        headers: [{ name: 'x-beta', string_match: { exact: 'on' }, invert_match: true, treat_missing_header_as_empty: true }],
      }),
      route('has-id-not-1', { prefix: '/c', headers: [{ name: 'x-id', string_match: { exact: '1' }, invert_match: true }] }),
      route('present', { prefix: '/', headers: [{ name: 'x-present', present_match: true }] }),
      route('absent', { prefix: '/', headers: [{ name: 'x-absent', present_match: true, invert_match: true }] }),
    ]);
    const name = (path: string, headers: Record<string, string> = {}, method = 'GET') =>
      matchRoute(vh, req(path, headers, 'a', method))?.name;
    assert.equal(name('/', { 'end-user': 'jason' }), 'jason');
    assert.equal(name('/', { 'end-user': 'Jason', 'x-absent': '1', 'x-present': '' }), 'present');
    assert.equal(name('/', { 'x-v': 'v7', 'x-absent': '1' }), 're');
    assert.equal(name('/', { 'x-v': 'v77', 'x-absent': '1' }), undefined);
    assert.equal(name('/', { 'x-absent': '1' }, 'POST'), 'post');
    assert.equal(name('/b'), 'no-beta');
    assert.equal(name('/b', { 'x-beta': 'off' }), 'no-beta');
    assert.equal(name('/b', { 'x-beta': 'on' }), 'absent');
    // Envoy: an inverted value match without treat_missing_header_as_empty needs the header present.
    assert.equal(name('/c', { 'x-id': '2', 'x-absent': '1' }), 'has-id-not-1');
    assert.equal(name('/c', { 'x-absent': '1' }), undefined);
    assert.equal(name('/c'), 'absent');
  });

  test('query parameters: exact, prefix, presence; first value wins; not URL-decoded', () => {
    const vh = vhostOf([
      route('exact', { prefix: '/', query_parameters: [{ name: 'v', string_match: { exact: '2' } }] }),
      route('present', { prefix: '/', query_parameters: [{ name: 'debug', present_match: true }] }),
      route('prefix', { prefix: '/', query_parameters: [{ name: 'q', string_match: { prefix: 'a b' } }] }),
    ]);
    const name = (p: string) => matchRoute(vh, req(p))?.name;
    assert.equal(name('/x?v=2'), 'exact');
    assert.equal(name('/x?a=1&v=2&c'), 'exact');
    assert.equal(name('/x?v=1&v=2'), undefined);
    assert.equal(name('/x?vv=2'), undefined);
    assert.equal(name('/x?debug'), 'present');
    assert.equal(name('/x?debug=&v=3'), 'present');
    assert.equal(name('/x?q=a%20b'), undefined);
    assert.equal(name('/x?q=a b c'), 'prefix');
    assert.equal(name('/x'), undefined);
    assert.equal(queryValue('/p?a=1&b=2', 2, 'b'), '2');
    assert.equal(queryValue('/p?a=1&b', 2, 'b'), '');
    assert.equal(queryValue('/p?a=1', 2, 'c'), undefined);
  });

  test('gRPC routes match only gRPC content types', () => {
    const vh = vhostOf([route('grpc', { prefix: '/', grpc: {} })]);
    assert.equal(matchRoute(vh, req('/pkg.S/M', { 'content-type': 'application/grpc+proto' }))?.name, 'grpc');
    assert.equal(matchRoute(vh, req('/pkg.S/M', { 'content-type': 'application/json' })), undefined);
  });
});

describe('matchString', () => {
  test('every kind, with and without ignore_case', () => {
    const m = (kind: 'exact' | 'prefix' | 'suffix' | 'contains', value: string, ignoreCase = false): StringMatcher => ({
      kind,
      value: ignoreCase ? value.toLowerCase() : value,
      ignoreCase,
    });
    const cases: Array<[StringMatcher, string | undefined, boolean]> = [
      [m('exact', 'GET'), 'GET', true],
      [m('exact', 'GET'), 'get', false],
      [m('exact', 'GET', true), 'gEt', true],
      [m('exact', 'GET', true), 'GETS', false],
      [m('prefix', '/A', true), '/abc', true],
      [m('suffix', '.COM', true), 'x.com', true],
      [m('suffix', '.COM', true), 'om', false],
      [m('suffix', '.com'), 'x.COM', false],
      [m('contains', 'MID', true), 'aamidbb', true],
      [m('contains', 'mid'), 'aaMIDbb', false],
      [{ kind: 'regex', regex: SafeRegex.compile('a+') }, 'aaa', true],
      [{ kind: 'regex', regex: SafeRegex.compile('a+') }, 'aab', false],
      [{ kind: 'present' }, '', true],
      [{ kind: 'present' }, undefined, false],
      [m('exact', ''), undefined, false],
    ];
    for (const [matcher, value, want] of cases) assert.equal(matchString(matcher, value), want, `${JSON.stringify(matcher)} ${value}`);
  });
});

describe('pickWeighted', () => {
  test('uniform randoms land in exact proportion to the weights; zero weights are never picked', () => {
    const clusters = [
      { name: 'v1', weight: 90 },
      { name: 'none', weight: 0 },
      { name: 'v2', weight: 10 },
    ];
    const counts = new Map<string, number>();
    for (let i = 0; i < 1000; i++) {
      const c = pickWeighted(clusters, (i + 0.5) / 1000);
      counts.set(c?.name ?? '?', (counts.get(c?.name ?? '?') ?? 0) + 1);
    }
    assert.deepEqual(Object.fromEntries(counts), { v1: 900, v2: 100 });
    assert.equal(pickWeighted(clusters, 0.9999999)?.name, 'v2');
    assert.equal(pickWeighted([{ weight: 0 }], 0.5), undefined);
    assert.equal(pickWeighted([], 0.5), undefined);
  });
});
