import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CONTROLLER_TLS_NAME, controllerChannelOptions } from '../../../src/ca/index.js';

// grpc-js sends a target's host as the TLS server name; an IP literal there breaks RFC 6066 and makes Node warn
// (DEP0123) on every agent start. Targets by IP get a name instead; targets by name keep theirs.
describe('controller channel options: no IP address as TLS server name', () => {
  const named = { 'grpc.ssl_target_name_override': CONTROLLER_TLS_NAME };
  for (const target of [
    '198.18.0.1:15012',
    '[2001:2::1]:15012',
    'ipv4:198.18.0.1:15012,198.18.0.2:15012',
    'ipv6:[2001:2::1]:15012,[2001:2::2]:15012',
  ]) {
    test(`${target}: a server name replaces the IP`, () => assert.deepEqual(controllerChannelOptions(target), named));
  }
  for (const target of ['controller.example:15012', 'dns:controller.example:15012', 'localhost:15012']) {
    test(`${target}: the name stays the server name`, () => assert.deepEqual(controllerChannelOptions(target), {}));
  }
  test('the replacement is a DNS name, never resolvable (RFC 6761 .invalid)', () => {
    assert.match(CONTROLLER_TLS_NAME, /^[a-z0-9.-]+\.invalid$/);
  });
});
