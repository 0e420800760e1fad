import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bindSource } from '../../../../src/proxy/cluster/connect.js';

test('the source address follows the destination family; an IPv6 one only when assigned here', () => {
  const inbound = { bindAddress: '127.0.0.6', extraBindAddresses: ['::6'] };
  assert.equal(bindSource(inbound, '198.18.0.3'), '127.0.0.6');
  // This machine has no ::6 (the agent adds it with IPv6 capture): the kernel picks the source instead.
  assert.equal(bindSource(inbound, '2001:2::3'), undefined);
  assert.equal(bindSource({ bindAddress: '127.0.0.6', extraBindAddresses: ['::1'] }, '::1'), '::1');
  assert.equal(bindSource({ bindAddress: '::1' }, '127.0.0.1'), undefined);
  assert.equal(bindSource({}, '127.0.0.1'), undefined);
});
