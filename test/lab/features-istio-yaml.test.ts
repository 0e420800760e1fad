import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { APP, type FeatureLab, startFeatureLab } from './features-lab.js';

// Istio YAML as Istio treats it, end to end (client app on h2 -> both proxies -> server on h3): a corsPolicy the
// client proxy answers preflights for; a route to a subset no DestinationRule defines yet (503, no cluster) that
// serves once the rule arrives; and a dry-run DENY policy on the server that is reported, never enforced.
const CONFIG = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web}
spec:
  hosts: [web]
  http:
  - match: [{uri: {prefix: /canary}}]
    route: [{destination: {host: web, subset: canary}}]
  - corsPolicy:
      allowOrigins: [{exact: "https://shop.example.com"}]
      allowMethods: [GET, POST]
      allowHeaders: [x-token]
      maxAge: 1h
    route: [{destination: {host: web}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: web-no-secret
  annotations: {istio.io/dry-run: "true"}
spec:
  selector: {matchLabels: {app: web}}
  action: DENY
  rules: [{to: [{operation: {paths: [/secret]}}]}]
`;

const DR = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web}
spec:
  host: web
  subsets: [{name: canary, labels: {app: web}}]
`;

describe('Istio YAML as Istio treats it: CORS, references not there yet, dry-run policies', () => {
  let f: FeatureLab;
  /** curl from the app on h2: the response head and body. */
  const curl = (args: string[]) =>
    f.h2.execOk('curl', ['-sS', '-i', '--http1.1', '--max-time', '10', ...args], { ...APP, timeoutMs: 30_000 });

  before(async () => {
    f = await startFeatureLab({
      servers: ['http:web:8080'],
      services: [{ name: 'web', port: 8080, portName: 'http', endpoints: [{ name: 'web-1', port: 8080 }] }],
      config: CONFIG,
    });
    await f.waitForConfig('h2', ['envoy.filters.http.cors', 'outbound|8080|canary|web.default.mesh']);
    await f.waitForConfig('h3', ['istio_dry_run_deny_']);
  });
  after(async () => {
    await f?.teardown();
  });

  test('a preflight from an allowed origin is answered by the client proxy; the actual request carries allow-origin', async () => {
    const pre = await curl([
      '-X',
      'OPTIONS',
      '-H',
      'Origin: https://shop.example.com',
      '-H',
      'Access-Control-Request-Method: POST',
      'http://web:8080/cart',
    ]);
    assert.match(pre, /^HTTP\/1\.1 200 /, pre);
    assert.match(pre, /\r\naccess-control-allow-origin: https:\/\/shop\.example\.com\r\n/i, pre);
    assert.match(pre, /\r\naccess-control-allow-methods: GET,POST\r\n/i, pre);
    assert.match(pre, /\r\naccess-control-max-age: 3600\r\n/i, pre);
    assert.doesNotMatch(pre, /\r\n\r\nweb /, `the server answered the preflight: ${pre}`);
    const get = await curl(['-H', 'Origin: https://shop.example.com', 'http://web:8080/cart']);
    assert.match(get, /^HTTP\/1\.1 200 /, get);
    assert.match(get, /\r\naccess-control-allow-origin: https:\/\/shop\.example\.com\r\n/i, get);
    const other = await curl(['-H', 'Origin: https://evil.example', 'http://web:8080/cart']);
    assert.doesNotMatch(other, /access-control-allow-origin/i, other);
  });

  test('a route to a subset not defined yet answers 503 (no cluster) and serves once the DestinationRule is applied', async () => {
    const before = await curl(['http://web:8080/canary']);
    assert.match(before, /^HTTP\/1\.1 503 /, before);
    await f.apply(DR);
    await f.waitForConfig('h2', ['outbound|8080|canary|web.default.mesh"']);
    let last = '';
    for (let i = 0; i < 20; i++) {
      last = await curl(['http://web:8080/canary']);
      if (/^HTTP\/1\.1 200 /.test(last)) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    assert.match(last, /^HTTP\/1\.1 200 /, last);
  });

  test('a dry-run DENY policy is not enforced: the request it matches is served, and counted as shadow-denied', async () => {
    const r = await curl(['http://web:8080/secret']);
    assert.match(r, /^HTTP\/1\.1 200 /, r);
    const script = `require('http').get('http://127.0.0.1:15020/stats/prometheus',r=>{let b='';r.on('data',c=>b+=c);r.on('end',()=>console.log(b))})`;
    let metrics = '';
    for (let i = 0; i < 20 && !/result="shadow_denied"\} [1-9]/.test(metrics); i++) {
      metrics = await f.h3.execOk(process.execPath, ['-e', script], { timeoutMs: 15_000 });
      if (!/result="shadow_denied"\} [1-9]/.test(metrics)) await new Promise((res) => setTimeout(res, 250));
    }
    assert.match(
      metrics,
      /vmesh_proxy_rbac_shadow_total\{[^}]*shadow_prefix="istio_dry_run_deny_",result="shadow_denied"\} [1-9]/,
      metrics.slice(0, 3000),
    );
  });
});
