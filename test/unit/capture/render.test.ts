import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { dnsOnlyCapture, planCapture } from '../../../src/capture/plan.js';
import { parseIptablesSave, renderIptablesInstall, renderIptablesRemove } from '../../../src/capture/render-iptables.js';
import { renderNftInstall, renderNftRemove } from '../../../src/capture/render-nft.js';
import { loadCaptureConfig } from '../../../src/config/capture.js';
import { assertGolden } from '../../support/golden.js';

const golden = (name: string) => join(import.meta.dirname, 'golden', name);
const cfg = (flags: Record<string, unknown> = {}) => loadCaptureConfig({ flags, env: {}, file: {} });

const CASES: Record<string, Record<string, unknown>> = {
  defaults: {},
  full: {
    controllerAddresses: ['198.18.0.100', '2001:2::100'],
    excludeUids: ['0', '1500'],
    excludeGids: ['999'],
    inboundPorts: ['8080', '9080'],
    excludeInboundPorts: ['9090'],
    outboundCidrs: ['198.18.0.0/15', '240.240.0.0/16', '2001:2::/48'],
    excludeOutboundCidrs: ['198.18.0.200/32', '2001:2::200'],
    includeOutboundPorts: ['3306'],
    excludeOutboundPorts: ['25', '587'],
  },
  'no-ipv6-no-dns-ssh': { ipv6: false, captureDns: false, captureSsh: true },
  'many-ports': { excludeOutboundPorts: Array.from({ length: 20 }, (_, i) => String(7000 + i)) },
};

describe('capture rule generation (golden)', () => {
  for (const [name, flags] of Object.entries(CASES)) {
    test(`nftables: ${name}`, () => {
      assertGolden(golden(`nft-${name}.json`), `${JSON.stringify(renderNftInstall(planCapture(cfg(flags))), null, 2)}\n`);
    });
    test(`iptables: ${name}`, () => {
      const plan = planCapture(cfg(flags));
      assertGolden(golden(`iptables-${name}.v4.rules`), renderIptablesInstall(plan, 'ipv4'));
      assertGolden(golden(`iptables-${name}.v6.rules`), renderIptablesInstall(plan, 'ipv6'));
    });
  }
});

describe('capture while every proxy worker is down: DNS only', () => {
  test('nftables and iptables (golden)', () => {
    const plan = planCapture(dnsOnlyCapture(cfg(CASES.full)));
    assertGolden(golden('nft-dns-only.json'), `${JSON.stringify(renderNftInstall(plan), null, 2)}\n`);
    assertGolden(golden('iptables-dns-only.v4.rules'), renderIptablesInstall(plan, 'ipv4'));
  });

  test('DNS still goes to the DNS proxy in its conntrack zone; no TCP goes to the proxy', () => {
    const full = planCapture(cfg(CASES.full));
    const dnsOnly = planCapture(dnsOnlyCapture(cfg(CASES.full)));
    const comments = (p: typeof full) => p.chains.flatMap((c) => c.rules.map((r) => r.comment));
    for (const c of comments(full).filter((x) => /DNS|zone/.test(x))) assert.ok(comments(dnsOnly).includes(c), c);
    assert.ok(comments(full).some((c) => c.includes('TCP to the proxy')));
    assert.deepEqual(
      comments(dnsOnly).filter((c) => /TCP to the proxy|always captured/.test(c)),
      [],
      'no redirect to 15001 or 15006',
    );
    const redirects = dnsOnly.chains.flatMap((c) => c.rules).filter((r) => r.verdict.kind === 'redirect');
    assert.ok(redirects.length > 0 && redirects.every((r) => 'port' in r.verdict && r.verdict.port === 15053), JSON.stringify(redirects));
  });
});

describe('capture rule generation (properties)', () => {
  test('is pure: same config, same output', () => {
    const a = JSON.stringify(renderNftInstall(planCapture(cfg(CASES.full))));
    const b = JSON.stringify(renderNftInstall(planCapture(cfg(CASES.full))));
    assert.equal(a, b);
  });

  test('nftables install replaces the table in one batch (add, delete, add) and every rule is tagged', () => {
    const batch = renderNftInstall(planCapture(cfg())) as {
      nftables: Array<Record<string, { table?: unknown; rule?: { comment: string } }>>;
    };
    assert.deepEqual(Object.keys(batch.nftables[0] ?? {}), ['add']);
    assert.deepEqual(Object.keys(batch.nftables[1] ?? {}), ['delete']);
    const rules = batch.nftables.flatMap((c) => (c.add?.rule ? [c.add.rule] : []));
    assert.ok(rules.length > 5);
    for (const r of rules) assert.match(r.comment, /^vmesh: /);
    assert.deepEqual(renderNftRemove(), {
      nftables: [{ add: { table: { family: 'inet', name: 'vmesh' } } }, { delete: { table: { family: 'inet', name: 'vmesh' } } }],
    });
  });

  test('an owned table is never re-added (that would clear its owner flag): every vmesh chain is replaced instead', () => {
    const plan = planCapture(cfg(CASES.full));
    const owned = renderNftInstall(plan, { owned: true }).nftables as Array<Record<string, { table?: unknown; chain?: { name: string } }>>;
    assert.ok(
      owned.every((c) => !Object.values(c).some((v) => v.table !== undefined && v.chain === undefined)),
      'no table command',
    );
    // Each chain is added bare, then deleted, so the delete is valid whether or not it exists; then the plan's chains.
    const head = owned.slice(0, 6).map((c) => `${Object.keys(c)[0]} ${Object.values(c)[0]?.chain?.name}`);
    assert.deepEqual(head, ['add inbound', 'delete inbound', 'add outbound', 'delete outbound', 'add dns_zone', 'delete dns_zone']);
    const plain = renderNftInstall(plan).nftables;
    assert.deepEqual(owned.slice(6), plain.slice(3), 'the same chains and rules as an unowned install');
  });

  test('SSH is excluded both ways unless asked, and then captured', () => {
    const off = renderIptablesInstall(planCapture(cfg()), 'ipv4');
    assert.match(off, /--dport 22 .*-j RETURN/);
    assert.match(off, /--dports 22,15000/);
    const on = renderIptablesInstall(planCapture(cfg({ captureSsh: true })), 'ipv4');
    assert.doesNotMatch(on, /\b22\b,|--dport 22 /);
  });

  test('owner exclusions come before every redirect', () => {
    const text = renderIptablesInstall(planCapture(cfg(CASES.full)), 'ipv4');
    const lines = text.split('\n').filter((l) => l.startsWith('-A VMESH_OUTPUT'));
    const firstRedirect = lines.findIndex((l) => l.includes('REDIRECT'));
    const lastOwner = lines.findLastIndex((l) => l.includes('-m owner'));
    assert.ok(lastOwner >= 0 && firstRedirect > lastOwner, 'uid/gid exclusions must precede redirects');
  });

  test("DNS to a resolver on the controller's host still goes to the agent's DNS proxy", () => {
    const lines = renderIptablesInstall(planCapture(cfg(CASES.full)), 'ipv4')
      .split('\n')
      .filter((l) => l.startsWith('-A VMESH_OUTPUT'));
    const dns = lines.findIndex((l) => l.includes('--dport 53'));
    const controller = lines.findIndex((l) => l.includes('-d 198.18.0.100/32'));
    assert.ok(dns >= 0 && controller > dns, 'the DNS redirect must precede the controller exclusion');
  });

  test('multiport lists are split at 15 ports', () => {
    const text = renderIptablesInstall(planCapture(cfg(CASES['many-ports'])), 'ipv4');
    const groups = text.split('\n').filter((l) => l.includes('outbound ports never captured'));
    assert.equal(groups.length, 2);
    for (const g of groups) assert.ok((/--dports (\S+)/.exec(g)?.[1] ?? '').split(',').length <= 15);
  });

  test('iptables install deletes existing jumps in the same transaction', () => {
    const save = [
      '*nat',
      ':PREROUTING ACCEPT [0:0]',
      ':VMESH_OUTPUT - [0:0]',
      '-A OUTPUT -m comment --comment "vmesh: outbound capture" -j VMESH_OUTPUT',
      '-A OUTPUT -j DOCKER',
      '-A VMESH_OUTPUT -p tcp -j REDIRECT --to-ports 15001',
      'COMMIT',
    ].join('\n');
    const state = parseIptablesSave(save);
    assert.deepEqual(state.chains, ['VMESH_OUTPUT']);
    assert.equal(state.jumps.length, 1);
    assert.equal(state.rules.length, 1);
    const existing = { raw: { chains: [], jumps: [], rules: [] }, nat: state };
    const text = renderIptablesInstall(planCapture(cfg()), 'ipv4', existing);
    assert.match(text, /^-D OUTPUT -m comment --comment "vmesh: outbound capture" -j VMESH_OUTPUT$/m);
    assert.equal(text.match(/^-A OUTPUT .*-j VMESH_OUTPUT$/gm)?.length, 1);
    const rm = renderIptablesRemove(existing);
    assert.equal(
      rm,
      '*nat\n:VMESH_OUTPUT - [0:0]\n-D OUTPUT -m comment --comment "vmesh: outbound capture" -j VMESH_OUTPUT\n-X VMESH_OUTPUT\nCOMMIT\n',
    );
  });

  test('iptables install deletes a chain the new plan no longer has (DNS capture turned off)', () => {
    const withDns = renderIptablesInstall(planCapture(cfg()), 'ipv4');
    assert.match(withDns, /^\*raw\n:VMESH_DNS_ZONE - \[0:0\]$/m);
    const raw = parseIptablesSave(withDns.slice(0, withDns.indexOf('*nat')));
    const nat = parseIptablesSave(withDns.slice(withDns.indexOf('*nat')));
    const off = renderIptablesInstall(planCapture(cfg({ captureDns: false })), 'ipv4', { raw, nat });
    const rawPart = off.slice(0, off.indexOf('*nat'));
    assert.match(rawPart, /^-D OUTPUT .*-j VMESH_DNS_ZONE$/m);
    assert.match(rawPart, /^-X VMESH_DNS_ZONE$/m);
    assert.doesNotMatch(rawPart, /^-A /m);
  });

  test('captured DNS gets conntrack zone 2; the DNS proxy answers into it; the agent forwards from zone 0', () => {
    const text = renderIptablesInstall(planCapture(cfg()), 'ipv4');
    const zone = text.split('\n').filter((l) => l.startsWith('-A VMESH_DNS_ZONE'));
    assert.match(zone[0] ?? '', /-p udp --sport 15053 -m owner --gid-owner 1337 .*-j CT --zone 2$/);
    const gidReturn = zone.findIndex((l) => /--gid-owner 1337 .*-j RETURN$/.test(l));
    const queries = zone.findIndex((l) => /-p udp --dport 53 .*-j CT --zone 2$/.test(l));
    assert.ok(gidReturn > 0 && queries > gidReturn, zone.join('\n'));
    assert.match(text, /^-A OUTPUT -m comment --comment "vmesh: DNS conntrack zone" -j VMESH_DNS_ZONE$/m);
  });

  test('IPv6 off: the v6 chains return at once and no v6 addresses appear', () => {
    const v6 = renderIptablesInstall(planCapture(cfg({ ipv6: false, controllerAddresses: ['2001:2::1'] })), 'ipv6');
    const outbound = v6.split('\n').filter((l) => l.startsWith('-A VMESH_OUTPUT'));
    assert.match(outbound[0] ?? '', /IPv6 capture is off.*-j RETURN/);
    assert.doesNotMatch(v6, /2001:2::1/);
  });
});
