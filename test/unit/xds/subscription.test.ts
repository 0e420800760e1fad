import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Subscription } from '../../../src/xds/subscription.js';

test('subscription: SotW empty first request is the legacy wildcard, until the client names something', () => {
  const s = new Subscription();
  assert.equal(s.replace([]), true);
  assert.equal(s.wildcard, true);
  assert.equal(s.covers('anything'), true);
  assert.equal(s.replace(['a', 'b']), true);
  assert.equal(s.wildcard, false);
  assert.deepEqual([...s.names], ['a', 'b']);
  assert.equal(s.covers('a'), true);
  assert.equal(s.covers('c'), false);
  // Once names were given, an empty list means "none", not "*".
  assert.equal(s.replace([]), true);
  assert.equal(s.wildcard, false);
  assert.equal(s.covers('a'), false);
  assert.equal(s.replace([]), false);
});

test('subscription: SotW explicit "*" with names covers everything and reports no change when repeated', () => {
  const s = new Subscription();
  assert.equal(s.replace(['*', 'x']), true);
  assert.equal(s.wildcard, true);
  assert.deepEqual([...s.names], ['x']);
  assert.equal(s.replace(['x', '*']), false);
  assert.equal(s.replace(['x']), true);
  assert.equal(s.wildcard, false);
  assert.equal(s.covers('y'), false);
});

test('subscription: delta subscribe, unsubscribe and the legacy wildcard', () => {
  const legacy = new Subscription();
  legacy.legacyWildcard();
  assert.equal(legacy.wildcard, true);
  legacy.unsubscribe('*');
  assert.equal(legacy.wildcard, false);

  const s = new Subscription();
  s.subscribe('a');
  s.subscribe('b');
  // A client that has named resources gets no legacy wildcard.
  s.legacyWildcard();
  assert.equal(s.wildcard, false);
  s.unsubscribe('a');
  assert.deepEqual([...s.names], ['b']);
  s.subscribe('*');
  assert.equal(s.covers('z'), true);
  // Dropping the wildcard keeps the names given explicitly.
  s.unsubscribe('*');
  assert.equal(s.covers('z'), false);
  assert.equal(s.covers('b'), true);
});

test('subscription: a response in flight is answered only by its own nonce, once', () => {
  const s = new Subscription();
  assert.equal(s.answered(''), false);
  s.sent('1', 'v1');
  assert.equal(s.outstanding, true);
  assert.equal(s.sentVersion, 'v1');
  assert.equal(s.answered('0'), false);
  assert.equal(s.outstanding, true);
  assert.equal(s.answered('1'), true);
  assert.equal(s.outstanding, false);
  assert.equal(s.answered('1'), false);
});
