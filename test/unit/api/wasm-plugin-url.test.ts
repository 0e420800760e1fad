import assert from 'node:assert/strict';
import { test } from 'node:test';
import { wasmUrlProblem } from '../../../src/api/resources/extensions-wasm-plugin.js';

// Istio's strict parse of WasmPlugin.url: as a request URI, else with http:// in front; a scheme Istio fetches from.
test('WasmPlugin url: what Istio accepts', () => {
  for (const url of [
    'oci://ghcr.io/istio/openid:1.0',
    'https://example.com/filter.wasm',
    'http://test',
    'file:///opt/filters/openid.wasm',
    'test',
    'ghcr.io/istio/openid',
    '/opt/filters/x.wasm',
    'HTTPS://Example.com/x.wasm',
  ])
    assert.equal(wasmUrlProblem(url), undefined, url);
});

test('WasmPlugin url: what Istio refuses, and why', () => {
  const cases: Array<[string, RegExp]> = [
    ['', /url field needs to be set/],
    ['fake://example.com', /unsupported scheme: fake/],
    // A scheme-like prefix makes the rest opaque, as in Go's parser: a registry with a port needs oci://.
    ['registry.example.com:5000/filter', /unsupported scheme: registry\.example\.com/],
    ['#%blah$#@', /is not a URL/],
    ['http://a b/x', /is not a URL/],
  ];
  for (const [url, want] of cases) assert.match(wasmUrlProblem(url) ?? 'accepted', want, url);
});
