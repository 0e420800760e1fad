import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseResources } from '../../../../src/api/resource-parse.js';
import { formatCidr, socketAddr, toOrigDst, toRemote } from '../../../../src/lib/addr.js';
import { compileRbacRules } from '../../../../src/proxy/compile/rbac.js';
import { cidrContains, cidrFromRange, parseCidrText } from '../../../../src/proxy/match/cidr.js';
import { evaluateRbac, type RbacAttrs } from '../../../../src/proxy/match/rbac-eval.js';
import type { CidrMatcher, RbacConfig } from '../../../../src/proxy/proxy-config.js';
import { decodeAnyDeep } from '../../../../src/xds/decode-deep.js';
import { encodeAny } from '../../../../src/xds/protos.js';
import { rbacFor } from '../../../../src/xds/translate/rbac.js';
import { inlineAny } from '../../../support/envoy-tree.js';
import { bookinfoInput, bookinfoResources } from '../../xds/translate/fixture.js';

/**
 * Istio AuthorizationPolicy examples, translated by the controller's translator, encoded and decoded as the
 * agent receives them, compiled, then evaluated.
 */
function filtersFor(yaml: string, kind: 'http' | 'network' = 'http'): RbacConfig[] {
  const parsed = parseResources(yaml, { source: 'test.yaml' });
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.error));
  const resources = [...bookinfoResources().filter((r) => r.kind !== 'AuthorizationPolicy'), ...parsed.value];
  const input = bookinfoInput('h2', { resources });
  const workload = input.node.workloads.find((w) => w.workload === 'reviews-v1');
  assert.ok(workload);
  return rbacFor(input, workload, kind).map((f, i) => {
    const { '@type': url, ...rest } = inlineAny(f.typed_config);
    const decoded = decodeAnyDeep(encodeAny(String(url), rest));
    const c = compileRbacRules(decoded, `filter[${i}]`);
    assert.ok(c);
    return c;
  });
}

const policy = (name: string, action: string, spec: string) => `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ${name}, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  action: ${action}
${spec}
---`;

/** The connection in the tests' terms: addresses as text, branded here as the listener manager brands them. */
interface Conn {
  peerIdentity?: string;
  sourceIp?: string;
  destinationIp?: string;
  destinationPort?: number;
}

function conn(over: Conn): RbacAttrs {
  return {
    ...(over.peerIdentity !== undefined ? { peerIdentity: over.peerIdentity } : {}),
    remote: toRemote(socketAddr(over.sourceIp ?? '198.18.0.11', 40000)),
    originalDst: toOrigDst(socketAddr(over.destinationIp ?? '198.18.0.12', over.destinationPort ?? 9080)),
  };
}

function http(over: Conn & { path?: string; method?: string; headers?: Record<string, string> } = {}): RbacAttrs {
  const path = over.path ?? '/';
  const headers = over.headers ?? {};
  return {
    ...conn(over),
    path,
    header: (n) => (n === ':method' ? (over.method ?? 'GET') : n === ':path' ? path : n === ':authority' ? 'reviews' : headers[n]),
  };
}

function tcp(over: Conn = {}): RbacAttrs {
  return conn(over);
}

const SLEEP = 'spiffe://cluster.local/ns/default/sa/sleep';

describe('evaluateRbac on Istio AuthorizationPolicy examples', () => {
  test('ALLOW by principal: only the named identity, never an unauthenticated peer', () => {
    const f = filtersFor(
      policy('allow-sleep', 'ALLOW', '  rules:\n  - from:\n    - source: {principals: ["cluster.local/ns/default/sa/sleep"]}'),
    );
    assert.deepEqual(evaluateRbac(f, http({ peerIdentity: SLEEP })), { allowed: true, policy: 'default/allow-sleep[0]' });
    assert.equal(evaluateRbac(f, http({ peerIdentity: 'spiffe://cluster.local/ns/default/sa/other' })).allowed, false);
    assert.equal(evaluateRbac(f, http()).allowed, false);
  });

  test('namespaces, with Istio prefix wildcards, become SPIFFE regexes', () => {
    const f = filtersFor(policy('ns', 'ALLOW', '  rules:\n  - from:\n    - source: {namespaces: ["test-*", "prod"]}'));
    const allowed = (id: string) => evaluateRbac(f, http({ peerIdentity: id })).allowed;
    assert.equal(allowed('spiffe://cluster.local/ns/test-a/sa/x'), true);
    assert.equal(allowed('spiffe://cluster.local/ns/prod/sa/x'), true);
    assert.equal(allowed('spiffe://cluster.local/ns/production/sa/x'), false);
    assert.equal(allowed('spiffe://cluster.local/ns/test-a/sa/x/extra'), false);
  });

  test('serviceAccounts: ns/sa, or sa in the policy namespace, in any trust domain, as whole SPIFFE segments', () => {
    const f = filtersFor(
      policy(
        'sa',
        'ALLOW',
        '  rules:\n  - from:\n    - source: {serviceAccounts: ["prod/api.v1", "sleep"]}\n    - source: {notServiceAccounts: ["default/bad"], ipBlocks: ["10.9.0.0/16"]}',
      ),
    );
    const allowed = (id?: string, ip?: string) =>
      evaluateRbac(f, http({ ...(id ? { peerIdentity: id } : {}), ...(ip ? { sourceIp: ip } : {}) })).allowed;
    assert.equal(allowed('spiffe://cluster.local/ns/prod/sa/api.v1'), true);
    assert.equal(allowed('spiffe://other.example/ns/prod/sa/api.v1'), true, 'any trust domain, as in Istio');
    assert.equal(allowed('spiffe://cluster.local/ns/prod/k/v/sa/api.v1/k2/v2'), true, 'extra SPIFFE segments around');
    assert.equal(allowed(SLEEP), true, 'a bare name is in the policy namespace (default)');
    assert.equal(allowed('spiffe://cluster.local/ns/other/sa/sleep'), false);
    assert.equal(allowed('spiffe://cluster.local/ns/prod/sa/api.v1-canary'), false, 'the name is a whole segment');
    assert.equal(allowed('spiffe://cluster.local/ns/prod/sa/apixv1'), false, 'a dot is a dot, not a regex wildcard');
    assert.equal(allowed(), false, 'an unauthenticated peer has no service account');
    // notServiceAccounts: everyone from 10.9/16 except default/bad
    assert.equal(allowed('spiffe://cluster.local/ns/default/sa/ok', '10.9.1.1'), true);
    assert.equal(allowed('spiffe://cluster.local/ns/default/sa/bad', '10.9.1.1'), false);
  });

  test('source.serviceAccount conditions and DENY by service account', () => {
    const f = filtersFor(
      `${policy('deny-bad', 'DENY', '  rules:\n  - when:\n    - {key: source.serviceAccount, values: ["bad"]}')}
${policy('all', 'ALLOW', '  rules:\n  - {}')}`,
    );
    assert.equal(evaluateRbac(f, http({ peerIdentity: 'spiffe://cluster.local/ns/default/sa/bad' })).allowed, false);
    assert.equal(evaluateRbac(f, http({ peerIdentity: 'spiffe://cluster.local/ns/default/sa/good' })).allowed, true);
    assert.equal(evaluateRbac(f, http({ peerIdentity: 'spiffe://cluster.local/ns/other/sa/bad' })).allowed, true);
  });

  test('ipBlocks and notIpBlocks match the direct peer address (IPv4, IPv6, IPv4-mapped)', () => {
    const f = filtersFor(
      policy(
        'ips',
        'ALLOW',
        '  rules:\n  - from:\n    - source: {ipBlocks: ["10.1.0.0/16", "2001:db8::/32"], notIpBlocks: ["10.1.2.0/24"]}',
      ),
    );
    const allowed = (ip: string) => evaluateRbac(f, http({ sourceIp: ip })).allowed;
    assert.equal(allowed('10.1.3.4'), true);
    assert.equal(allowed('::ffff:10.1.3.4'), true);
    assert.equal(allowed('10.1.2.3'), false);
    assert.equal(allowed('10.2.0.1'), false);
    assert.equal(allowed('2001:db8:1::5'), true);
    assert.equal(allowed('2001:db9::5'), false);
  });

  test('DENY is evaluated before ALLOW and wins', () => {
    const f = filtersFor(
      policy('deny-admin', 'DENY', '  rules:\n  - to:\n    - operation: {paths: ["/admin*"]}') +
        policy('allow-all', 'ALLOW', '  rules:\n  - {}'),
    );
    assert.deepEqual(
      f.map((x) => x.action),
      ['DENY', 'ALLOW'],
    );
    assert.deepEqual(evaluateRbac(f, http({ path: '/admin/users?x=1' })), { allowed: false, policy: 'default/deny-admin[0]' });
    assert.deepEqual(evaluateRbac(f, http({ path: '/reviews' })), { allowed: true, policy: 'default/allow-all[0]' });
  });

  test('an ALLOW policy without rules allows nothing', () => {
    const f = filtersFor(policy('allow-nothing', 'ALLOW', '  rules: []'));
    assert.deepEqual(f, [{ action: 'ALLOW', policies: [] }]);
    assert.deepEqual(evaluateRbac(f, http({ peerIdentity: SLEEP })), { allowed: false });
  });

  test('methods, paths and request headers (when) are ANDed within a rule', () => {
    const f = filtersFor(
      policy(
        'get-reviews',
        'ALLOW',
        '  rules:\n  - to:\n    - operation: {methods: [GET], paths: ["/reviews/*"]}\n    when:\n    - key: request.headers[x-token]\n      values: ["abc*"]',
      ),
    );
    assert.equal(evaluateRbac(f, http({ path: '/reviews/1', headers: { 'x-token': 'abc123' } })).allowed, true);
    assert.equal(evaluateRbac(f, http({ path: '/reviews/1', headers: { 'x-token': 'zzz' } })).allowed, false);
    assert.equal(evaluateRbac(f, http({ path: '/reviews/1' })).allowed, false);
    assert.equal(evaluateRbac(f, http({ path: '/reviews/1', method: 'POST', headers: { 'x-token': 'abc' } })).allowed, false);
  });

  test('AUDIT policies (LOG) mark requests and never deny', () => {
    const f = filtersFor(policy('audit', 'AUDIT', '  rules:\n  - to:\n    - operation: {paths: ["/secret"]}'));
    assert.deepEqual(evaluateRbac(f, http({ path: '/secret' })), { allowed: true, logged: 'default/audit[0]' });
    assert.deepEqual(evaluateRbac(f, http({ path: '/public' })), { allowed: true });
  });

  test('L4: an ALLOW rule that needs HTTP attributes never matches a connection; DENY keeps its TCP fields', () => {
    const f = filtersFor(
      policy('allow-http', 'ALLOW', '  rules:\n  - to:\n    - operation: {paths: ["/x"], ports: ["9080"]}') +
        policy('deny-port', 'DENY', '  rules:\n  - to:\n    - operation: {methods: [DELETE], ports: ["9081"]}'),
      'network',
    );
    assert.equal(evaluateRbac(f, tcp({ destinationPort: 9080, peerIdentity: SLEEP })).allowed, false);
    assert.deepEqual(evaluateRbac(f, tcp({ destinationPort: 9081 })), { allowed: false, policy: 'default/deny-port[0]' });
  });

  test('L4 evaluation of HTTP-only permissions: they do not match, so a negation of one does', () => {
    const header = { name: 'x', match: { kind: 'present' }, invert: false } as const;
    const allowHeader: RbacConfig = {
      action: 'ALLOW',
      policies: [{ name: 'h', permissions: [{ kind: 'header', header }], principals: [{ kind: 'any' }] }],
    };
    const allowPath: RbacConfig = {
      action: 'ALLOW',
      policies: [
        {
          name: 'p',
          permissions: [{ kind: 'path', match: { kind: 'prefix', value: '/', ignoreCase: false } }],
          principals: [{ kind: 'any' }],
        },
      ],
    };
    const denyNotHeader: RbacConfig = {
      action: 'DENY',
      policies: [{ name: 'n', permissions: [{ kind: 'not', rule: { kind: 'header', header } }], principals: [{ kind: 'any' }] }],
    };
    assert.equal(evaluateRbac([allowHeader], tcp()).allowed, false);
    assert.equal(evaluateRbac([allowPath], tcp()).allowed, false);
    assert.equal(evaluateRbac([allowPath], http()).allowed, true);
    assert.equal(evaluateRbac([denyNotHeader], tcp()).allowed, false);
    assert.equal(evaluateRbac([denyNotHeader], http({ headers: { x: '1' } })).allowed, true);
    assert.deepEqual(evaluateRbac([], tcp()), { allowed: true });
  });

  test('destination IP and port permissions, authenticated without a name', () => {
    const net = parseCidrText('198.18.0.0/24') as CidrMatcher;
    const f: RbacConfig[] = [
      {
        action: 'ALLOW',
        policies: [
          {
            name: 'dst',
            permissions: [
              {
                kind: 'and',
                rules: [
                  { kind: 'destination_ip', cidr: net },
                  { kind: 'destination_port', port: 9080 },
                ],
              },
            ],
            principals: [{ kind: 'authenticated' }],
          },
        ],
      },
    ];
    assert.equal(evaluateRbac(f, tcp({ peerIdentity: SLEEP })).allowed, true);
    assert.equal(evaluateRbac(f, tcp()).allowed, false);
    assert.equal(evaluateRbac(f, tcp({ peerIdentity: SLEEP, destinationPort: 9081 })).allowed, false);
    assert.equal(evaluateRbac(f, tcp({ peerIdentity: SLEEP, destinationIp: '198.18.1.1' })).allowed, false);
  });
});

describe('cidr', () => {
  test('parses text and CidrRange, clearing host bits', () => {
    assert.equal(formatCidr(parseCidrText('10.1.2.3/16') as CidrMatcher), '10.1.0.0/16');
    assert.equal(formatCidr(parseCidrText('2001:db8::1/32') as CidrMatcher), '2001:db8::/32');
    assert.equal(formatCidr(parseCidrText('::1') as CidrMatcher), '::1/128');
    assert.equal(formatCidr(cidrFromRange({ address_prefix: '198.18.1.0', prefix_len: { value: 24 } }) as CidrMatcher), '198.18.1.0/24');
    assert.equal(formatCidr(cidrFromRange({ address_prefix: '1.2.3.4' }) as CidrMatcher), '1.2.3.4/32');
    // One spelling per network (RFC 5952: the longest zero run is the one elided), and a mapped range stays IPv6.
    assert.equal(formatCidr(parseCidrText('2001:0:0:1:0:0:0:1') as CidrMatcher), '2001:0:0:1::1/128');
    assert.equal(formatCidr(parseCidrText('::ffff:0:0/96') as CidrMatcher), '::ffff:0:0/96');
    assert.deepEqual(
      { ...(parseCidrText('198.18.7.9/15') as CidrMatcher), bytes: undefined },
      { family: 'IPv4', address: '198.18.0.0', prefix: 15, bytes: undefined },
    );
    for (const bad of ['10.0.0.0/33', '1.2.3', '1.2.3.256', '::1/129', 'fe80:::1', '1:2:3:4:5:6:7:8:9', 'x/8', '']) {
      assert.equal(parseCidrText(bad), undefined, bad);
    }
  });

  test('contains: IPv4, IPv6, v4-mapped both ways, /0, zone ids', () => {
    const c = (t: string) => parseCidrText(t) as CidrMatcher;
    const cases: Array<[string, string, boolean]> = [
      ['10.0.0.0/8', '10.255.1.1', true],
      ['10.0.0.0/8', '11.0.0.1', false],
      ['10.0.0.0/8', '::ffff:10.1.1.1', true],
      ['10.0.0.0/8', '::ffff:0a01:0101', true],
      ['10.0.0.0/8', '2001:db8::1', false],
      ['0.0.0.0/0', '203.0.113.9', true],
      ['198.18.0.12/32', '198.18.0.12', true],
      ['198.18.0.12/32', '198.18.0.13', false],
      ['198.18.0.0/15', '198.19.255.255', true],
      ['198.18.0.0/15', '198.20.0.0', false],
      ['::ffff:0:0/96', '192.0.2.1', true],
      ['2001:db8::/33', '2001:db8:7fff::1', true],
      ['2001:db8::/33', '2001:db8:8000::1', false],
      ['fe80::/10', 'fe80::1%eth0', true],
      ['::/0', '::', true],
      ['10.0.0.0/8', 'not-an-ip', false],
    ];
    for (const [net, ip, want] of cases) assert.equal(cidrContains(c(net), ip), want, `${net} ∋ ${ip}`);
  });
});
