import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';
import { after, before, describe, test } from 'node:test';
import { type FeatureLab, type HttpRun, startFeatureLab } from './features-lab.js';

// Policy on the server side (h3's inbound): AuthorizationPolicy, LocalRateLimit and PeerAuthentication STRICT,
// exercised by an app on h2 through both proxies, and by a plaintext client on h1, which runs no agent.
const CONFIG = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: rbac-allow-reads}
spec:
  selector: {matchLabels: {app: rbac}}
  action: ALLOW
  rules:
  - to: [{operation: {methods: [GET, HEAD]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: rbac-deny-admin}
spec:
  selector: {matchLabels: {app: rbac}}
  action: DENY
  rules:
  - to: [{operation: {paths: [/admin/*]}}]
---
apiVersion: vmesh.io/v1alpha1
kind: LocalRateLimit
metadata: {name: limited}
spec:
  targetHosts: [limited]
  tokenBucket: {maxTokens: 5, tokensPerFill: 5, fillInterval: 60s}
---
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: path-limit}
spec:
  workloadSelector: {labels: {app: efrl}}
  configPatches:
  - applyTo: HTTP_FILTER
    match: {context: SIDECAR_INBOUND, listener: {filterChain: {filter: {name: envoy.filters.network.http_connection_manager}}}}
    patch:
      operation: INSERT_BEFORE
      value:
        name: envoy.filters.http.local_ratelimit
        typed_config:
          "@type": type.googleapis.com/udpa.type.v1.TypedStruct
          type_url: type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
          value: {stat_prefix: http_local_rate_limiter}
  - applyTo: HTTP_ROUTE
    match: {context: SIDECAR_INBOUND, routeConfiguration: {vhost: {name: "inbound|http|9940", route: {action: ANY}}}}
    patch:
      operation: MERGE
      value:
        route:
          rate_limits:
          - actions:
            - header_value_match:
                descriptor_value: limited
                headers: [{name: ":path", string_match: {prefix: /limited}}]
        typed_per_filter_config:
          envoy.filters.http.local_ratelimit:
            "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
            stat_prefix: path_limit
            token_bucket: {max_tokens: 1000, tokens_per_fill: 1000, fill_interval: 60s}
            filter_enabled: {runtime_key: e, default_value: {numerator: 100, denominator: HUNDRED}}
            filter_enforced: {runtime_key: e, default_value: {numerator: 100, denominator: HUNDRED}}
            response_headers_to_add: [{append: false, header: {key: x-local-rate-limit, value: "true"}}]
            descriptors:
            - entries: [{key: header_match, value: limited}]
              token_bucket: {max_tokens: 4, tokens_per_fill: 4, fill_interval: 60s}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: strict}
spec:
  selector: {matchLabels: {app: strict}}
  mtls: {mode: STRICT}
`;

const show = (x: unknown) => JSON.stringify(x).slice(0, 3000);

describe('policy end to end: authorization, rate limits and STRICT mTLS on the server host', () => {
  let f: FeatureLab;
  const http = (o: object) => f.client<HttpRun>('http', o);

  before(async () => {
    f = await startFeatureLab({
      servers: ['http:rbac:9900', 'http:limited:9910', 'http:strict:9920', 'http:open:9930', 'http:efrl:9940'],
      services: (
        [
          ['rbac', 9900],
          ['limited', 9910],
          ['strict', 9920],
          ['open', 9930],
          ['efrl', 9940],
        ] as const
      ).map(([name, port]) => ({ name, port, portName: 'http' as const, endpoints: [{ name: `${name}-1`, port }] })),
      config: CONFIG,
    });
    // The server host enforces these: wait until its proxy has them (no probe request: it would spend tokens).
    await f.waitForConfig('h3', ['rbac-allow-reads', 'rbac-deny-admin', 'local_rate_limit_9910', 'path_limit']);
  });
  after(async () => {
    await f?.teardown();
  });

  test('AuthorizationPolicy: allowed reads pass; a denied path and a method no ALLOW rule names get 403', async () => {
    const cases: Array<[string, string, number]> = [
      ['GET', '/catalog', 200],
      ['HEAD', '/catalog', 200],
      ['GET', '/admin/users', 403],
      ['POST', '/catalog', 403],
      ['DELETE', '/admin/users', 403],
    ];
    for (const [method, path, want] of cases) {
      const run = await http({ url: `http://rbac:9900${path}`, n: 1, method });
      const r = run.results[0];
      assert.equal(r?.s, want, `${method} ${path}: ${show(run)}`);
      if (want === 403 && method !== 'HEAD') assert.equal(r?.body, 'RBAC: access denied', show(run));
    }
  });

  test('LocalRateLimit: a bucket of 5 lets at most 5 requests through, then answers 429', async () => {
    const run = await http({ url: 'http://limited:9910/', n: 12 });
    const ok = run.results.filter((r) => r.s === 200).length;
    // The host's bucket of 5 is divided among the proxy workers (3 + 2 with two): the connection's worker
    // may hold either share, and the host never lets more than 5 through.
    assert.ok(ok >= Math.floor(5 / availableParallelism()) && ok <= 5, show(run));
    assert.ok(
      run.results.filter((r) => r.s !== 200).every((r) => r.s === 429 && r.rl === 'true' && r.body === 'local_rate_limited'),
      show(run),
    );
  });

  test("EnvoyFilter (Istio's local rate limit by path): /limited gets at most 4 through, then 429; other paths pass", async () => {
    const limited = await http({ url: 'http://efrl:9940/limited/x', n: 10 });
    const ok = limited.results.filter((r) => r.s === 200).length;
    // As above, the host's descriptor bucket of 4 is divided among the proxy workers.
    assert.ok(ok >= Math.floor(4 / availableParallelism()) && ok <= 4, show(limited));
    const refused = limited.results.filter((r) => r.s !== 200);
    assert.ok(refused.length >= 6, show(limited));
    assert.ok(
      refused.every((r) => r.s === 429 && r.lrl === 'true' && r.body === 'local_rate_limited'),
      show(limited),
    );
    const other = await http({ url: 'http://efrl:9940/other', n: 10 });
    assert.ok(
      other.results.every((r) => r.s === 200),
      show(other),
    );
  });

  test('PeerAuthentication STRICT: a plaintext client on an unmeshed host is refused; a PERMISSIVE port still answers it', async () => {
    const open = await f.client<HttpRun>('http', { url: `http://${f.h3.ipv4}:9930/`, n: 1 }, f.h1);
    assert.equal(open.results[0]?.s, 200, `h1 cannot reach h3 at all: ${show(open)}`);
    const strict = await f.client<HttpRun>('http', { url: `http://${f.h3.ipv4}:9920/`, n: 3 }, f.h1);
    for (const r of strict.results) {
      assert.equal(r.s, undefined, `plaintext got an answer from a STRICT port: ${show(strict)}`);
      assert.ok(r.e === 'ECONNRESET' || r.e === 'EPIPE', show(strict));
    }
  });

  test('PeerAuthentication STRICT: meshed clients still reach the workload over mTLS between the proxies', async () => {
    const run = await http({ url: 'http://strict:9920/', n: 5 });
    assert.deepEqual(
      run.results.map((r) => `${r.s ?? r.e}:${r.w}`),
      Array(5).fill('200:strict'),
      show(run),
    );
  });
});
