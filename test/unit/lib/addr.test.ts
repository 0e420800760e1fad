import assert from 'node:assert/strict';
import { test } from 'node:test';
import { normalizeIp, parseCidr, parsePort, sameSocketAddr } from '../../../src/lib/addr.js';

test('parseCidr: bare addresses are host routes; prefixes are checked per family', () => {
  assert.deepEqual(parseCidr('198.18.0.1', 'x'), { family: 'IPv4', address: '198.18.0.1', prefix: 32 });
  assert.deepEqual(parseCidr('2001:2::/48', 'x'), { family: 'IPv6', address: '2001:2::', prefix: 48 });
  assert.throws(() => parseCidr('2001:2::/129', 'x'), /want 0-128/);
  assert.throws(() => parseCidr('1.2.3.4/8/1', 'x'), /not an IPv4\/IPv6/);
  assert.throws(() => parseCidr('1.2.3.4/x', 'x'), /prefix length x/);
});

test('parsePort accepts 1-65535 only', () => {
  assert.equal(parsePort('80', 'p'), 80);
  assert.equal(parsePort(65535, 'p'), 65535);
  for (const bad of ['0', '65536', '-1', '8o', '', 1.5]) assert.throws(() => parsePort(bad, 'p'), /is not a port/);
});

test('IPv4-mapped IPv6 addresses compare equal to IPv4', () => {
  assert.equal(normalizeIp('::ffff:198.18.0.1'), '198.18.0.1');
  assert.ok(sameSocketAddr({ address: '::ffff:198.18.0.1', port: 1, family: 'IPv6' }, { address: '198.18.0.1', port: 1, family: 'IPv4' }));
});

test('normalizeIp: one spelling per IPv6 address, mapped IPv4 in any form as IPv4, the rest untouched', () => {
  assert.equal(normalizeIp('::FFFF:C612:0001'), '198.18.0.1');
  assert.equal(normalizeIp('::ffff:c612:1'), '198.18.0.1');
  assert.equal(normalizeIp('2001:0002:0000:0000::0003'), '2001:2::3');
  assert.equal(normalizeIp('FDCE:77:0:0:0:0:0:3'), 'fdce:77::3');
  assert.equal(normalizeIp('::1'), '::1');
  assert.equal(normalizeIp('::'), '::');
  assert.equal(normalizeIp('::6'), '::6');
  assert.equal(normalizeIp('fe80::1%eth0'), 'fe80::1%eth0');
  assert.equal(normalizeIp('Reviews.Mesh'), 'reviews.mesh');
  assert.ok(sameSocketAddr({ address: '2001:2:0::3', port: 9, family: 'IPv6' }, { address: '2001:2::3', port: 9, family: 'IPv6' }));
});
