import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MAX_REGEX_PROGRAM_SIZE, SafeRegex, SafeRegexError } from '../../../src/lib/safe-regex.js';

describe('SafeRegex: Envoy safe_regex semantics with RE2 syntax', () => {
  test('fullMatch matches the whole value only, alternation included', () => {
    const re = SafeRegex.compile('/api/v[0-9]+');
    assert.ok(re.fullMatch('/api/v12'));
    assert.ok(!re.fullMatch('/api/v12/extra'));
    assert.ok(!re.fullMatch('x/api/v12'));
    assert.ok(!SafeRegex.compile('a|b').fullMatch('ab'));
    assert.ok(SafeRegex.compile('a|b').fullMatch('b'));
    assert.ok(SafeRegex.compile('a|b').search('xbx'), 'search finds a match anywhere');
  });

  test('RE2 syntax JavaScript spells differently or lacks', () => {
    assert.ok(SafeRegex.compile('(?i)abc').fullMatch('ABC'));
    assert.ok(SafeRegex.compile('(?P<v>v[0-9])x').fullMatch('v1x'));
    assert.ok(SafeRegex.compile('\\Qa.b\\E').fullMatch('a.b'));
    assert.ok(!SafeRegex.compile('\\Qa.b\\E').fullMatch('axb'));
    assert.ok(SafeRegex.compile('[[:digit:]]+').fullMatch('42'));
    assert.ok(SafeRegex.compile('\\pL+').fullMatch('héllo'));
    assert.ok(!SafeRegex.compile('.*').fullMatch('a\nb'), 'dot does not match a newline, as in RE2');
    assert.ok(SafeRegex.compile('(?s).*').fullMatch('a\nb'));
  });

  test('what RE2 refuses throws a one-line SafeRegexError', () => {
    for (const [src, why] of [
      ['(a)\\1', /invalid escape sequence: `\\1`/],
      ['(?=a)', /invalid or unsupported Perl syntax: `\(\?=`/],
      ['(?<=a)b', /invalid named capture/],
      ['(?<!a)b', /invalid named capture/],
      ['a++', /invalid nested repetition operator/],
      ['(', /missing closing \)/],
      ['\\C', /invalid escape sequence/],
      ['a{1001}', /invalid repeat count/],
    ] as const) {
      assert.throws(
        () => SafeRegex.compile(src),
        (e: unknown) => e instanceof SafeRegexError && why.test(e.message) && !e.message.includes('\n'),
        src,
      );
    }
  });

  test('a program larger than Envoy-in-Istio accepts is refused', () => {
    // 40 alternatives of [a-z]{1000}: each repeat compiles to ~1000 instructions.
    const big = Array.from({ length: 40 }, (_, i) => `${i}[a-z]{1000}`).join('|');
    assert.throws(() => SafeRegex.compile(big), new RegExp(`larger than ${MAX_REGEX_PROGRAM_SIZE}`));
    assert.doesNotThrow(() => SafeRegex.compile('[a-z]{1000}'));
  });

  test('catastrophic patterns for backtracking engines return, correctly, on huge inputs', () => {
    const re = SafeRegex.compile('(a+)+b');
    assert.equal(re.fullMatch(`${'a'.repeat(41)}c`), false);
    assert.equal(re.fullMatch(`${'a'.repeat(200_000)}c`), false);
    assert.equal(re.fullMatch(`${'a'.repeat(200_000)}b`), true);
    const nested = SafeRegex.compile('(x+x+)+y');
    assert.equal(nested.fullMatch('x'.repeat(100_000)), false);
    assert.equal(SafeRegex.compile('(.*a){12}').fullMatch('a'.repeat(50_000)), true);
  });

  test('replaceAll follows RE2::GlobalReplace with \\N substitutions', () => {
    const re = SafeRegex.compile('/re/([0-9]+)');
    assert.equal(re.replaceAll('/re/12/re/3', re.substitution('/id/\\1')), '/id/12/id/3');
    assert.equal(
      re.replaceAll('/re/12', re.substitution('[\\0] \\\\ $1')),
      '[/re/12] \\ $1',
      '\\0 is the match, \\\\ a backslash, $ literal',
    );
    const empty = SafeRegex.compile('b*');
    assert.equal(empty.replaceAll('abc', empty.substitution('X')), 'XaXcX', 'no empty match right after a match, as RE2');
    const opt = SafeRegex.compile('(x)?y');
    assert.equal(opt.replaceAll('y', opt.substitution('<\\1>')), '<>', 'an unmatched group is empty');
  });

  test('substitutions naming a missing group or a bad escape are refused', () => {
    const re = SafeRegex.compile('(a)');
    assert.throws(() => re.substitution('\\2'), /uses group \\2, the regex has 1/);
    assert.throws(() => re.substitution('\\n'), /invalid escape \\n/);
    assert.throws(() => re.substitution('x\\'), /invalid escape/);
  });
});
