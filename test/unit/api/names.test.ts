import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  cidrProblem,
  closest,
  hostProblem,
  labelKeyProblem,
  namespaceMatchProblem,
  principalProblem,
  regexProblem,
} from '../../../src/api/resources/names.js';

describe('principals', () => {
  test('accepted forms', () => {
    for (const p of [
      '*',
      'cluster.local/ns/default/sa/sleep',
      'prod.example.com/ns/shop/sa/cart.v2',
      'cluster.local/ns/default/sa/*',
      'cluster.local/ns/default/*',
      'cluster.local/*',
      'cluster.local/ns/def*',
      '*/ns/default/sa/sleep',
      '*/sa/sleep',
      '*sleep',
    ]) {
      assert.equal(principalProblem(p), undefined, p);
    }
  });
  test('Istio accepts any other non-empty string (it then matches that exact peer, or none)', () => {
    for (const p of ['default/sleep', 'cluster.local/ns/Default/sa/sleep', 'cluster.local/ns/*/sa/sleep', 'spiffe://x/ns/a/sa/b']) {
      assert.equal(principalProblem(p), undefined, p);
    }
    assert.match(principalProblem('') ?? 'accepted', /must not be empty/);
  });
});

describe('hosts', () => {
  test('rules per context', () => {
    assert.equal(hostProblem('reviews', { short: true }), undefined);
    assert.match(hostProblem('reviews', {}) ?? '', /short host name "reviews" is not allowed here/);
    assert.equal(hostProblem('*.example.com', { wildcard: true }), undefined);
    assert.match(hostProblem('*.example.com', {}) ?? '', /wildcard host/);
    assert.equal(hostProblem('*', { wildcard: true }), undefined);
    assert.match(hostProblem('*', { wildcard: true, bareWildcard: false }) ?? '', /bare "\*"/);
    assert.equal(hostProblem('10.0.0.1', { ip: true }), undefined);
    assert.match(hostProblem('10.0.0.1', {}) ?? '', /an IP address \(10\.0\.0\.1\) is not allowed here/);
    assert.match(hostProblem('10.0.0', {}) ?? '', /all-numeric last label/);
    assert.match(hostProblem('bad_label.example.com', {}) ?? '', /invalid label "bad_label"/);
    assert.match(hostProblem('-x.example.com', {}) ?? '', /invalid label "-x"/);
    assert.match(hostProblem(`${'a'.repeat(64)}.com`, {}) ?? '', /invalid label/);
    assert.equal(hostProblem('example.com.', {}), undefined, 'a trailing dot is allowed');
    assert.match(hostProblem('', {}) ?? '', /must not be empty/);
  });
});

describe('other names', () => {
  test('CIDRs', () => {
    for (const ok of ['10.0.0.0/8', '198.18.0.1', '2001:db8::/32', '::1/128', '0.0.0.0/0']) assert.equal(cidrProblem(ok), undefined, ok);
    for (const bad of ['10.0.0.0/33', '10.0.0/8', '2001:db8::/129', 'x/1', '10.0.0.0/8/1', '10.0.0.0/']) assert.ok(cidrProblem(bad), bad);
  });
  test('label keys', () => {
    for (const ok of ['app', 'app.kubernetes.io/name', 'vmesh.io/gateway', 'Version_2']) assert.equal(labelKeyProblem(ok), undefined, ok);
    for (const bad of ['', '-app', 'a/b/c', 'UPPER.example/x', 'app*', `${'x'.repeat(64)}`]) assert.ok(labelKeyProblem(bad), bad);
  });
  test('namespace matches', () => {
    for (const ok of ['default', '*', 'team-*', '*-prod']) assert.equal(namespaceMatchProblem(ok), undefined, ok);
    for (const bad of ['Default', 'a*b', 'ns/x', '**']) assert.ok(namespaceMatchProblem(bad), bad);
  });
  test('did-you-mean hints', () => {
    assert.equal(closest('loadBalancr', ['loadBalancer', 'tls']), 'loadBalancer');
    assert.equal(closest('max_ejection_percent', ['maxEjectionPercent']), 'maxEjectionPercent');
    assert.equal(closest('zzzz', ['loadBalancer', 'tls']), undefined);
  });
});

describe('regexes', () => {
  test('RE2 patterns, including RE2-only syntax, are accepted', () => {
    for (const re of ['/api/v[0-9]+/.*', '(?P<v>v[0-9]+)', '(?i)abc', '\\Qa.b\\E', '[[:alpha:]]+', '\\pL+', '\\\\1', '(a+)+b']) {
      assert.equal(regexProblem(re), undefined, re);
    }
  });
  test('what RE2 refuses is refused, naming the feature', () => {
    assert.match(regexProblem('(?<=a)b') ?? '', /lookaround/);
    assert.match(regexProblem('(?!a)b') ?? '', /lookaround/);
    assert.match(regexProblem('(a)\\1') ?? '', /backreference/);
    assert.match(regexProblem('(?<n>a)\\k<n>') ?? '', /backreference/);
    assert.match(regexProblem('a)|(b') ?? '', /is not valid RE2 \(Istio's regex syntax\): unexpected \)/);
    assert.match(regexProblem('a++') ?? '', /invalid nested repetition operator/);
    assert.match(regexProblem('\\C') ?? '', /invalid escape sequence/);
    assert.match(regexProblem('(a{100}){100}') ?? '', /invalid repeat count/);
    assert.match(regexProblem('') ?? '', /must not be empty/);
    assert.match(regexProblem('a'.repeat(1025)) ?? '', /longer than 1024/);
  });
});
