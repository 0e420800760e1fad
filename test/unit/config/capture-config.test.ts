import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { loadCaptureConfig } from '../../../src/config/capture.js';
import { readConfigFile } from '../../../src/config/sources.js';
import { VmeshError } from '../../../src/lib/errors.js';

const load = (flags: Record<string, unknown> = {}, env: Record<string, string> = {}, file: Record<string, unknown> = {}) =>
  loadCaptureConfig({ flags, env, file });

function rejects(fn: () => unknown, code: string, text: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof VmeshError, `expected VmeshError, got ${String(e)}`);
    assert.equal(e.code, code);
    assert.match(e.message, text);
    assert.doesNotMatch(e.message, /\n/);
    return true;
  });
}

describe('capture config', () => {
  test('defaults follow Istio: uid/gid 1337, 15001/15006/15053, all ports, DNS on, SSH off, IPv6 on', () => {
    const c = load();
    assert.equal(c.backend, 'nftables');
    assert.equal(c.proxyUid, 1337);
    assert.equal(c.proxyGid, 1337);
    assert.deepEqual([c.outboundPort, c.inboundPort, c.dnsPort], [15001, 15006, 15053]);
    assert.equal(c.inbound.ports, '*');
    assert.equal(c.outbound.includeCidrs, '*');
    assert.equal(c.captureDns, true);
    assert.equal(c.captureSsh, false);
    assert.equal(c.ipv6, true);
    assert.ok(Object.isFrozen(c) && Object.isFrozen(c.inbound));
  });

  test('precedence: flags over env over file over defaults', () => {
    const file = { capture: { proxyUid: 900, outboundPort: 16001, inbound: { ports: [80] } } };
    const c = load({ proxyUid: '1000' }, { VMESH_PROXY_UID: '950', VMESH_OUTBOUND_PORT: '17001' }, file);
    assert.equal(c.proxyUid, 1000);
    assert.equal(c.outboundPort, 17001);
    assert.deepEqual(c.inbound.ports, [80]);
    assert.equal(load({}, { VMESH_PROXY_UID: '950' }, file).proxyUid, 950);
    assert.equal(load({}, {}, file).proxyUid, 900);
  });

  test('lists accept repeated flags and comma-separated env', () => {
    const c = load({ controllerAddresses: ['198.18.0.100', '2001:2::1'] }, { VMESH_CAPTURE_EXCLUDE_OUTBOUND_PORTS: '25, 587' });
    assert.deepEqual(
      c.controllerAddresses.map((a) => `${a.address}/${a.prefix}`),
      ['198.18.0.100/32', '2001:2::1/128'],
    );
    assert.deepEqual(c.outbound.excludePorts, [25, 587]);
  });

  test('bad input gets one-line errors naming the setting and value', () => {
    rejects(() => load({ backend: 'pf' }), 'VMESH_ERR_INVALID_CONFIG', /backend: unknown "pf"/);
    rejects(() => load({ inboundPort: '70000' }), 'VMESH_ERR_INVALID_PORT', /inbound port: "70000"/);
    rejects(() => load({ excludeInboundPorts: ['80', 'http'] }), 'VMESH_ERR_INVALID_PORT', /exclude inbound ports: "http"/);
    rejects(() => load({ controllerAddresses: ['10.0.0.0/33'] }), 'VMESH_ERR_INVALID_ADDRESS', /controller address: "10.0.0.0\/33"/);
    rejects(() => load({ excludeOutboundCidrs: ['example.com'] }), 'VMESH_ERR_INVALID_ADDRESS', /outbound exclude CIDR: "example.com"/);
    rejects(() => load({ proxyUid: '-1' }), 'VMESH_ERR_INVALID_CONFIG', /proxy uid: "-1"/);
    rejects(() => load({}, { VMESH_CAPTURE_DNS: 'maybe' }), 'VMESH_ERR_INVALID_CONFIG', /capture DNS: "maybe"/);
    rejects(() => load({ inboundPorts: ['*', '80'] }), 'VMESH_ERR_INVALID_CONFIG', /"\*" cannot be combined/);
    rejects(() => load({ inboundPort: '15001' }), 'VMESH_ERR_INVALID_CONFIG', /both 15001/);
    rejects(() => load({ inboundPorts: ['15006'] }), 'VMESH_ERR_INVALID_CONFIG', /loop/);
  });

  test('config file: YAML read, errors name the file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vmesh-cfg-'));
    const good = join(dir, 'agent.yaml');
    writeFileSync(good, 'capture:\n  backend: iptables\n  controllerAddresses: [198.18.0.100]\n');
    const c = loadCaptureConfig({ flags: {}, env: {}, file: readConfigFile(good) });
    assert.equal(c.backend, 'iptables');
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'capture: [unclosed\n');
    rejects(() => readConfigFile(bad), 'VMESH_ERR_INVALID_CONFIG', /bad\.yaml: not valid YAML/);
    rejects(() => readConfigFile(join(dir, 'nope.yaml')), 'VMESH_ERR_INVALID_CONFIG', /nope\.yaml: ENOENT/);
  });
});
