import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { createLogger } from '../../../src/lib/logger.js';
import { MeshProxy } from '../../../src/proxy/proxy.js';
import { decodeAnyDeep } from '../../../src/xds/decode-deep.js';
import {
  type AppliedConfig,
  CDS,
  EDS,
  LDS,
  LocalXdsServer,
  protos,
  SDS,
  type SecretInput,
  sdsServiceDefinition,
  secretFromMessage,
  XdsSync,
} from '../../../src/xds/index.js';
import { makeSnapshot } from '../../../src/xds/snapshot.js';
import { translateNode } from '../../../src/xds/translate/index.js';
import { waitFor } from './fixtures.js';
import { bookinfoInput } from './translate/fixture.js';

const logger = createLogger({ level: 'silent' });

/** The controller's config for h2 as the agent holds it: decoded, nested Anys inline. */
function appliedFor(node: 'h1' | 'h2'): AppliedConfig {
  const snap = makeSnapshot('v1', translateNode(bookinfoInput(node)) as never);
  const resources: Record<string, Record<string, unknown>> = {};
  for (const [t, m] of snap.resources) resources[t] = Object.fromEntries([...m].map(([n, r]) => [n, decodeAnyDeep(r.any as never)]));
  return { versions: {}, resources, updatedAt: new Date().toISOString() };
}

const SECRETS: SecretInput[] = [
  { name: 'ROOTCA', kind: 'trust', trustedCaPem: '-----BEGIN CERTIFICATE-----\nroot\n-----END CERTIFICATE-----\n' },
  { name: 'default', kind: 'certificate', certChainPem: 'chain-pem', keyPem: 'key-pem' },
];

describe("the agent's local xDS/SDS server (unix socket) for its proxy workers", () => {
  const dir = mkdtempSync(join(tmpdir(), 'vmesh-local-xds-'));
  const socketPath = join(dir, 'proxy-xds.sock');
  let server: LocalXdsServer;

  before(async () => {
    server = new LocalXdsServer({ socketPath, logger });
    await server.start();
    server.update(appliedFor('h2'), SECRETS);
  });
  after(async () => {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('the socket is not world-accessible: it hands out private keys', () => {
    assert.equal(statSync(socketPath).mode & 0o777, 0o660);
  });

  test("Envoy's SecretDiscoveryService/StreamSecrets serves a named secret (what an sds_config cluster calls)", async () => {
    const def = sdsServiceDefinition().StreamSecrets as grpc.MethodDefinition<
      object,
      { resources: Array<{ type_url: string; value: Buffer }> }
    >;
    const client = new grpc.Client(`unix:${socketPath}`, grpc.credentials.createInsecure());
    try {
      const call = client.makeBidiStreamRequest(def.path, def.requestSerialize, def.responseDeserialize);
      const first = new Promise<{ resources: Array<{ type_url: string; value: Buffer }> }>((resolve, reject) => {
        call.once('data', resolve);
        call.once('error', reject);
      });
      call.write({ node: { id: 'envoy-1' }, type_url: SDS, resource_names: ['ROOTCA'] });
      const res = await first;
      const secrets = res.resources.map((a) => secretFromMessage(protos().decodeAny(a)));
      assert.deepEqual(secrets, [SECRETS[0]]);
      call.cancel();
    } finally {
      client.close();
    }
  });

  test('a proxy worker (XdsSync over ADS) gets the config, re-encoded, which compiles, and the secrets', async () => {
    let applied: AppliedConfig | undefined;
    const sync = new XdsSync({
      address: `unix:${socketPath}`,
      credentials: grpc.credentials.createInsecure(),
      nodeId: 'proxy-0',
      types: [SDS, CDS, LDS],
      logger,
    });
    sync.onChange((_t, c) => {
      applied = c;
    });
    sync.start();
    try {
      await waitFor(
        'config and secrets',
        () => Object.keys(applied?.resources[LDS] ?? {}).length > 0 && !!applied?.resources[SDS]?.default,
      );
      const c = applied as AppliedConfig;
      const want = appliedFor('h2');
      assert.deepEqual(Object.keys(c.resources[LDS] ?? {}).sort(), Object.keys(want.resources[LDS] ?? {}).sort());
      assert.deepEqual(secretFromMessage(c.resources[SDS]?.default), SECRETS[1]);
      // What the worker compiles is what the agent compiled.
      const a = MeshProxy.prepare(want);
      assert.ok(a.ok);
      server.update(appliedFor('h1'), SECRETS.slice(0, 1));
      await waitFor('the h1 config and the removal of a secret', () => !applied?.resources[SDS]?.default);
      assert.deepEqual(Object.keys(applied?.resources[LDS] ?? {}).sort(), Object.keys(appliedFor('h1').resources[LDS] ?? {}).sort());
    } finally {
      await sync.stop();
    }
  });
});

describe('local xDS: a config that names what has not arrived yet', () => {
  test('is a normal moment between the types of one update (debug), and a warning only when it persists', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vmesh-local-xds-'));
    const lines: Array<{ level: number; msg: string }> = [];
    const destination = new Writable({
      write(chunk, _enc, cb) {
        for (const l of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(l));
        cb();
      },
    });
    const server = new LocalXdsServer({
      socketPath: join(dir, 'proxy-xds.sock'),
      logger: createLogger({ level: 'debug', destination }),
      incompleteWarnMs: 300,
    });
    await server.start();
    try {
      const full = appliedFor('h2');
      // Clusters (CDS) in, their endpoints (EDS) not yet: what the agent holds for a moment after a registration.
      const partial = { ...full, resources: { ...full.resources, [EDS]: {} } };
      const warnings = () => lines.filter((l) => l.level >= 40);
      server.update(partial, SECRETS);
      assert.ok(
        lines.some((l) => l.level === 20 && /waiting for the rest of an update/.test(l.msg)),
        JSON.stringify(lines),
      );
      server.update(full, SECRETS);
      await new Promise((r) => setTimeout(r, 500));
      assert.deepEqual(warnings(), [], 'completed in time: nothing that looks like a failure');
      server.update(partial, SECRETS);
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(warnings().length, 1, JSON.stringify(lines));
      assert.match(warnings()[0]?.msg ?? '', /never arrived/);
    } finally {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
