import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { MAX_JWKS_BYTES } from '../../../src/api/jwks.js';
import { DEFAULT_MESH_CONFIG } from '../../../src/api/mesh-config.js';
import { JwksResolver } from '../../../src/discovery/jwks-resolver.js';
import { createLogger } from '../../../src/lib/logger.js';
import { ConfigStore } from '../../../src/store/config-store.js';
import { FileStore } from '../../../src/store/file/file-store.js';

// The controller's key-set fetcher against a real HTTP server on loopback: what it serves becomes the model's
// set; slow, huge, broken and unreachable answers cost at most their bound and leave the last good set.
const key = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' });
const JWKS = JSON.stringify({ keys: [{ ...key, kid: 'one' }] });

describe('JwksResolver', () => {
  let server: Server;
  let base = '';
  let body = JWKS;
  let requests = 0;
  before(async () => {
    server = createServer((req, res) => {
      requests++;
      if (req.url === '/slow') return; // never answers
      if (req.url === '/huge') {
        res.end('x'.repeat(MAX_JWKS_BYTES + 10));
        return;
      }
      if (req.url === '/missing') {
        res.statusCode = 404;
        res.end('no');
        return;
      }
      if (req.url === '/issuer/.well-known/openid-configuration') {
        res.end(JSON.stringify({ issuer: `${base}/issuer`, jwks_uri: `${base}/jwks.json` }));
        return;
      }
      res.end(body);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => {
    server.closeAllConnections();
    server.close();
  });

  async function resolverWith(
    rules: string,
    now?: () => number,
  ): Promise<{ resolver: JwksResolver; config: ConfigStore; changes: () => number }> {
    const store = await FileStore.open(mkdtempSync(join(tmpdir(), 'vmesh-jwks-')));
    const config = new ConfigStore(store, DEFAULT_MESH_CONFIG);
    let n = 0;
    const resolver = new JwksResolver({ config, logger: createLogger({ level: 'silent' }), onChange: () => n++, ...(now ? { now } : {}) });
    await config.applyText(
      `apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {name: ra, namespace: default}\nspec:\n  jwtRules:\n${rules}`,
      {
        source: 'test.yaml',
      },
    );
    return { resolver, config, changes: () => n };
  }

  test('fetches by jwksUri and by OpenID discovery; a set no rule names any more is dropped', async () => {
    const { resolver, config, changes } = await resolverWith(
      `  - {issuer: a, jwksUri: "${base}/jwks.json"}\n  - {issuer: "${base}/issuer"}\n`,
    );
    await resolver.sync();
    assert.equal(resolver.current().get(`${base}/jwks.json`), JWKS);
    assert.equal(resolver.current().get(`openid:${base}/issuer`), JWKS);
    assert.ok(changes() >= 1);
    const before = resolver.current();
    await config.applyText(
      `apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {name: ra, namespace: default}\nspec: {}\n`,
      {
        source: 'test.yaml',
      },
    );
    await resolver.sync();
    assert.equal(resolver.current().size, 0);
    assert.equal(before.size, 2, 'a model keeps the map it was built with');
  });

  test('slow, huge, missing and invalid answers fail within their bound and publish nothing', async () => {
    body = 'not json';
    const { resolver } = await resolverWith(
      [
        `  - {issuer: a, jwksUri: "${base}/slow", timeout: 300ms}`,
        `  - {issuer: b, jwksUri: "${base}/huge"}`,
        `  - {issuer: c, jwksUri: "${base}/missing"}`,
        `  - {issuer: d, jwksUri: "${base}/invalid.json"}`,
        `  - {issuer: e, jwksUri: "http://127.0.0.1:1/jwks.json"}`,
      ].join('\n'),
    );
    const t0 = Date.now();
    await resolver.sync();
    assert.ok(Date.now() - t0 < 3000, `took ${Date.now() - t0} ms`);
    assert.equal(resolver.current().size, 0);
    body = JWKS;
  });

  test('a failed refresh keeps the last good set; a failure is not retried on every config change', async () => {
    let clock = Date.now();
    const { resolver } = await resolverWith(`  - {issuer: a, jwksUri: "${base}/jwks.json"}\n`, () => clock);
    await resolver.sync();
    assert.equal(resolver.current().get(`${base}/jwks.json`), JWKS);
    const seen = requests;
    await resolver.sync();
    assert.equal(requests, seen, 'a fresh set is not fetched again before its refresh interval');
    body = 'broken';
    clock += 21 * 60_000;
    await resolver.sync();
    assert.equal(requests, seen + 1, 'refreshed after 20 minutes');
    assert.equal(resolver.current().get(`${base}/jwks.json`), JWKS, 'the last good set stays');
    await resolver.sync();
    assert.equal(requests, seen + 1, 'a failure waits before the next try');
    body = JWKS;
  });
});
