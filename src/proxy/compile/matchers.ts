import type { HeaderMatcher__Output } from '../../generated/envoy/config/route/v3/HeaderMatcher.js';
import type { MetadataMatcher__Output } from '../../generated/envoy/type/matcher/v3/MetadataMatcher.js';
import type { RegexMatcher__Output } from '../../generated/envoy/type/matcher/v3/RegexMatcher.js';
import type { StringMatcher__Output } from '../../generated/envoy/type/matcher/v3/StringMatcher.js';
import type { ValueMatcher__Output } from '../../generated/envoy/type/matcher/v3/ValueMatcher.js';
import { SafeRegex } from '../../lib/safe-regex.js';
import type { Decoded } from '../../xds/envoy-types.js';
import type { HeaderMatcher, MetadataMatcher, StringMatcher, ValueMatcher } from '../proxy-config.js';
import { bool, fail, list, msg, part, str, which, wrappedBool } from './read.js';

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

type ValueMatcherMsg = Decoded<ValueMatcher__Output>;

const VALUE_KINDS: readonly (keyof ValueMatcherMsg & string)[] = [
  'null_match',
  'double_match',
  'string_match',
  'bool_match',
  'present_match',
  'list_match',
  'or_match',
];

/** The ValueMatcher kinds a JSON metadata value can be matched with; a double match is refused (Istio writes none). */
function compileValueMatcher(v: ValueMatcherMsg | null | undefined, path: string, depth = 0): ValueMatcher {
  if (depth > 8) fail(path, 'value matchers nested over 8 deep are not supported');
  const m = part(v, path);
  const kind = which<ValueMatcherMsg>(m, 'match_pattern', VALUE_KINDS);
  switch (kind) {
    case 'string_match':
      return { kind: 'string', match: compileStringMatcher(m.string_match, `${path}.string_match`) };
    case 'list_match': {
      const l = part(m.list_match, `${path}.list_match`);
      return { kind: 'list_one_of', value: compileValueMatcher(l.one_of, `${path}.list_match.one_of`, depth + 1) };
    }
    case 'or_match': {
      const o = part(m.or_match, `${path}.or_match`);
      const values = list(o.value_matchers, `${path}.or_match.value_matchers`).map((x, i) =>
        compileValueMatcher(x, `${path}.or_match.value_matchers[${i}]`, depth + 1),
      );
      return { kind: 'or', values };
    }
    case 'present_match':
      return { kind: 'present', present: bool(m.present_match, `${path}.present_match`) };
    case 'bool_match':
      return { kind: 'bool', value: bool(m.bool_match, `${path}.bool_match`) };
    case 'null_match':
      return { kind: 'null' };
    default:
      return fail(`${path}${kind ? `.${kind}` : ''}`, kind ? 'not supported' : 'no match pattern set');
  }
}

export function compileMetadataMatcher(v: Decoded<MetadataMatcher__Output> | null | undefined, path: string): MetadataMatcher {
  const m = part(v, path);
  const keys = list(m.path, `${path}.path`).map((seg, i) => str(part(seg, `${path}.path[${i}]`).key, `${path}.path[${i}].key`));
  if (keys.length === 0) fail(`${path}.path`, 'must name at least one key');
  return {
    filter: str(m.filter, `${path}.filter`),
    path: keys,
    value: compileValueMatcher(m.value, `${path}.value`),
    invert: bool(m.invert, `${path}.invert`),
  };
}
