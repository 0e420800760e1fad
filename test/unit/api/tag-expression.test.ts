import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  evaluateTag,
  MAX_TAG_EXPRESSION_LENGTH,
  MAX_TAG_VALUE_LENGTH,
  parseTagExpression,
  type TagAttribute,
  type TagExpression,
} from '../../../src/api/tag-expression.js';

function parsed(s: string): TagExpression {
  const r = parseTagExpression(s);
  assert.ok(r.ok, r.ok ? '' : r.reason);
  return r.expr;
}

const attrs = (a: Partial<Record<TagAttribute, string | number | boolean>>, headers: Record<string, string> = {}) => ({
  attribute: (n: TagAttribute) => a[n],
  header: (n: string) => headers[n],
});

describe('metric tag expressions (the CEL subset of Telemetry tagOverrides)', () => {
  test('attributes, headers, literals and | defaults evaluate as Istio does', () => {
    const a = attrs({ 'request.method': 'GET', 'response.code': 503, 'connection.mtls': true }, { 'x-user': 'ada' });
    assert.equal(evaluateTag(parsed('request.method'), a), 'GET');
    assert.equal(evaluateTag(parsed('response.code'), a), '503');
    assert.equal(evaluateTag(parsed('connection.mtls'), a), 'true');
    assert.equal(evaluateTag(parsed("request.headers['X-User']"), a), 'ada', 'header names compare lower-cased');
    assert.equal(evaluateTag(parsed('request.headers["x-none"] | "anon"'), a), 'anon');
    assert.equal(evaluateTag(parsed("request.headers['x-none'] | request.headers['x-user'] | 'x'"), a), 'ada');
    assert.equal(evaluateTag(parsed("'it\\'s'"), a), "it's");
    assert.equal(evaluateTag(parsed('42'), a), '42');
    assert.equal(evaluateTag(parsed('request.path'), a), 'unknown', 'an absent attribute is unknown, as in Istio');
  });

  test('values are cut at the bound', () => {
    const v = evaluateTag(parsed("request.headers['x']"), attrs({}, { x: 'y'.repeat(10_000) }));
    assert.equal(v.length, MAX_TAG_VALUE_LENGTH);
  });

  test('anything outside the subset is refused with the reason', () => {
    const refused: Array<[string, RegExp]> = [
      ['size(request.path)', /not an attribute/],
      ["request.method == 'GET'", /not an attribute/],
      ['request.method || "x"', /\|\|/],
      ['node.metadata', /not one vmesh's proxy knows/],
      ['request.headers[x]', /quoted header name/],
      ["'unterminated", /malformed string/],
      ['a |', /empty alternative/],
      ['', /empty/],
    ];
    for (const [s, why] of refused) {
      const r = parseTagExpression(s);
      assert.equal(r.ok, false, s);
      if (!r.ok) assert.match(r.reason, why, s);
    }
  });

  test('a bare identifier (a CEL variable nothing declares) is accepted and never has a value, as in Istio', () => {
    const r = parseTagExpression("add | 'fallback'");
    assert.ok(r.ok);
    assert.deepEqual(r.expr[0], { kind: 'undeclared', name: 'add' });
    assert.equal(evaluateTag(r.expr, { attribute: () => 'x', header: () => 'y' }), 'fallback');
    const alone = parseTagExpression('add');
    assert.ok(alone.ok);
    assert.equal(evaluateTag(alone.expr, { attribute: () => 'x', header: () => 'y' }), 'unknown');
  });

  test('hostile input is refused: huge (by its length alone), deeply nested, many alternatives', () => {
    for (const s of [
      'x'.repeat(10_000_000),
      `${'('.repeat(MAX_TAG_EXPRESSION_LENGTH / 2)}request.method${')'.repeat(MAX_TAG_EXPRESSION_LENGTH / 2)}`,
      Array(20).fill("'a'").join(' | '),
      `request.headers['${'['.repeat(400)}']`,
    ]) {
      const r = parseTagExpression(s);
      assert.equal(r.ok, false, s.slice(0, 40));
    }
  });
});
