import type { HeaderMatcher__Output } from '../../generated/envoy/config/route/v3/HeaderMatcher.js';
import type { RegexMatcher__Output } from '../../generated/envoy/type/matcher/v3/RegexMatcher.js';
import type { StringMatcher__Output } from '../../generated/envoy/type/matcher/v3/StringMatcher.js';
import { SafeRegex } from '../../lib/safe-regex.js';
import type { Decoded } from '../../xds/envoy-types.js';
import type { HeaderMatcher, StringMatcher } from '../proxy-config.js';
import { bool, fail, msg, str, wrappedBool } from './read.js';

export type StringMatcherMsg = Decoded<StringMatcher__Output>;
export type HeaderMatcherMsg = Decoded<HeaderMatcher__Output>;

/**
 * Envoy's matchers (type.matcher.v3.StringMatcher, RegexMatcher, config.route.v3.HeaderMatcher) compiled for
 * the hot path. Regexes are RE2 full matches, as in Envoy, through lib/safe-regex (linear time).
 */

/** A RegexMatcher (`{ regex }`) or a regex string; what RE2 refuses fails the config, as Envoy NACKs it. */
export function compileRegex(v: string | Decoded<RegexMatcher__Output> | null | undefined, path: string): SafeRegex {
  const text = typeof v === 'string' ? v : str(msg(v, path)?.regex, `${path}.regex`);
  try {
    return SafeRegex.compile(text);
  } catch (e) {
    return fail(path, `invalid regex ${JSON.stringify(text)}: ${(e as Error).message}`);
  }
}

const KINDS = ['exact', 'prefix', 'suffix', 'contains'] as const;

/** type.matcher.v3.StringMatcher. */
export function compileStringMatcher(v: StringMatcherMsg | null | undefined, path: string): StringMatcher {
  const m = msg(v, path);
  if (!m) return fail(path, 'missing string matcher');
  const ignoreCase = bool(m.ignore_case, `${path}.ignore_case`);
  const pattern = typeof m.match_pattern === 'string' ? m.match_pattern : undefined;
  for (const kind of KINDS) {
    const value: unknown = m[kind];
    if ((pattern === undefined || pattern === kind) && typeof value === 'string') {
      return { kind, value: ignoreCase ? value.toLowerCase() : value, ignoreCase };
    }
  }
  if ((pattern === undefined || pattern === 'safe_regex') && m.safe_regex) {
    // Envoy: ignore_case has no effect on safe_regex.
    return { kind: 'regex', regex: compileRegex(m.safe_regex, `${path}.safe_regex`) };
  }
  return fail(path, `unsupported string matcher ${pattern ?? JSON.stringify(Object.keys(m))}`);
}

/** The deprecated HeaderMatcher shortcuts (exact_match, prefix_match...) as the StringMatcher they stand for. */
function legacyMatcher(m: HeaderMatcherMsg, path: string): StringMatcher | undefined {
  const spec = m.header_match_specifier;
  const pick = (field: 'exact_match' | 'prefix_match' | 'suffix_match' | 'contains_match') => {
    const v: unknown = m[field];
    return (spec === undefined || spec === null || spec === field) && typeof v === 'string' ? v : undefined;
  };
  const exact = pick('exact_match');
  if (exact !== undefined) return { kind: 'exact', value: exact, ignoreCase: false };
  const prefix = pick('prefix_match');
  if (prefix !== undefined) return { kind: 'prefix', value: prefix, ignoreCase: false };
  const suffix = pick('suffix_match');
  if (suffix !== undefined) return { kind: 'suffix', value: suffix, ignoreCase: false };
  const contains = pick('contains_match');
  if (contains !== undefined) return { kind: 'contains', value: contains, ignoreCase: false };
  if ((spec === undefined || spec === null || spec === 'safe_regex_match') && m.safe_regex_match) {
    return { kind: 'regex', regex: compileRegex(m.safe_regex_match, `${path}.safe_regex_match`) };
  }
  return undefined;
}

/**
 * config.route.v3.HeaderMatcher as one or two HeaderMatchers that must all match. The runtime rule (see
 * route-match.ts matchHeader) is that a missing header matches exactly when the matcher is inverted; Envoy's
 * other cases are built from it: an inverted value match without treat_missing_header_as_empty also requires
 * the header to be present, so it becomes [present, inverted value].
 */
export function compileHeaderMatcher(v: HeaderMatcherMsg | null | undefined, path: string): HeaderMatcher[] {
  const m = msg(v, path);
  if (!m) return fail(path, 'missing header matcher');
  const name = str(m.name, `${path}.name`).toLowerCase();
  if (name === '') fail(`${path}.name`, 'empty header name');
  const invert = bool(m.invert_match, `${path}.invert_match`);
  const spec = m.header_match_specifier;
  if ((spec === undefined || spec === null || spec === 'present_match') && typeof m.present_match === 'boolean') {
    // present_match: false matches when the header is absent.
    return [{ name, match: { kind: 'present' }, invert: m.present_match ? invert : !invert }];
  }
  if ((spec === undefined || spec === null || spec === 'range_match') && m.range_match) fail(`${path}.range_match`, 'not supported');
  let match: StringMatcher | undefined;
  if ((spec === undefined || spec === null || spec === 'string_match') && m.string_match) {
    match = compileStringMatcher(m.string_match, `${path}.string_match`);
  } else match = legacyMatcher(m, path);
  // No specifier at all: Envoy matches on presence.
  if (!match) return [{ name, match: { kind: 'present' }, invert }];
  const missingAsEmpty = wrappedBool(m.treat_missing_header_as_empty, `${path}.treat_missing_header_as_empty`) ?? false;
  if (missingAsEmpty && matchesEmpty(match)) {
    fail(`${path}.treat_missing_header_as_empty`, 'not supported with a matcher that accepts the empty value');
  }
  if (invert && !missingAsEmpty)
    return [
      { name, match: { kind: 'present' }, invert: false },
      { name, match, invert },
    ];
  return [{ name, match, invert }];
}

function matchesEmpty(m: StringMatcher): boolean {
  switch (m.kind) {
    case 'exact':
    case 'prefix':
    case 'suffix':
    case 'contains':
      return m.value === '';
    case 'regex':
      return m.regex.fullMatch('');
    case 'present':
      return true;
  }
}
