import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { createLogger } from '../../../src/lib/logger.js';
import { ok } from '../../../src/lib/result.js';
import { AdsClient } from '../../../src/xds/ads-client.js';
import { receivedAny } from '../../../src/xds/agent-sync.js';
import { CDS, EDS, LocalXdsServer, XdsSync } from '../../../src/xds/index.js';
import type { AnyMessage } from '../../../src/xds/protos.js';
import { makeResource, snapshotOf, wireResource } from '../../../src/xds/snapshot.js';
import { cluster, endpoints, type Harness, startAds, waitFor } from './fixtures.js';

const logger = createLogger({ level: 'silent' });
// Field 1000 (varint 1), unknown to Cluster: a decode-then-encode drops it, a pass-through keeps it.
const UNKNOWN_FIELD = Buffer.from([0xc0, 0x3e, 0x01]);

/** The controller's bytes for cluster c1, with a field no decoder keeps. */
function controllerCluster(): AnyMessage {
  const any = makeResource(CDS, 'c1', cluster('c1')).any;
  return { type_url: any.type_url, value: Buffer.concat([any.value, UNKNOWN_FIELD]) };
}

/** A proxy worker's view: the Any of every cluster it received from the local server. */
function worker(socketPath: string): { wire: Map<string, AnyMessage>; client: AdsClient } {
  const wire = new Map<string, AnyMessage>();
  const client = new AdsClient({
    address: `unix:${socketPath}`,
    credentials: grpc.credentials.createInsecure(),
    node: { id: 'proxy-0', cluster: 'test' },
    mode: 'delta',
    types: [CDS],
    logger,
    onUpdate: (_t, u) => {
      for (const [n, a] of u.wire) wire.set(n, a);
      return ok(undefined);
    },
  });
  return { wire, client };
}

describe('agent -> proxy workers: the controller bytes pass through, decoded once by the agent and never re-encoded', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vmesh-local-wire-'));
  let ads: Harness;
  const sent = controllerCluster();

  before(async () => {
    ads = await startAds();
    ads.cache.setSnapshot(
      'agent-1',
      snapshotOf('v1', [wireResource(CDS, 'c1', sent), makeResource(EDS, 'c1', endpoints('c1', ['198.18.0.1']))]),
    );
  });
  after(async () => {
    await ads?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function relay(sync: XdsSync, socketPath: string, started: boolean): Promise<AnyMessage | undefined> {
    const local = new LocalXdsServer({ socketPath, logger });
    await local.start();
    sync.onChange(() => local.update(sync.config(), []));
    if (started) sync.start();
    else local.update(sync.config(), []);
    const w = worker(socketPath);
    w.client.start();
    try {
      await waitFor('the worker has cluster c1', () => w.wire.has('c1'));
      return w.wire.get('c1');
    } finally {
      await w.client.stop();
      await sync.stop();
      await local.stop();
    }
  }

  test("a worker gets cluster c1 byte for byte as the controller sent it, also from the agent's cache after a restart", async () => {
    const cacheFile = join(dir, 'applied.json');
    const options = {
      address: `127.0.0.1:${ads.port}`,
      credentials: grpc.credentials.createInsecure(),
      nodeId: 'agent-1',
      types: [CDS, EDS],
      cacheFile,
      logger,
    };
    const live = await relay(new XdsSync(options), join(dir, 'a.sock'), true);
    assert.ok(live);
    assert.equal(live.type_url, sent.type_url);
    assert.deepEqual(Buffer.from(live.value), sent.value);

    // A restarted agent with the controller away serves its cache: the same bytes, not a re-encoding.
    const restarted = new XdsSync({ ...options, address: '127.0.0.1:1' });
    assert.equal(await restarted.loadCached(), true);
    const cached = await relay(restarted, join(dir, 'b.sock'), false);
    assert.ok(cached);
    assert.deepEqual(Buffer.from(cached.value), sent.value);
  });

  test('a process that only runs the config (keepReceived: false) keeps no bytes beside the decoded resources', async () => {
    const sync = new XdsSync({
      address: `127.0.0.1:${ads.port}`,
      credentials: grpc.credentials.createInsecure(),
      nodeId: 'agent-1',
      types: [CDS],
      keepReceived: false,
      logger,
    });
    sync.start();
    try {
      await waitFor('cluster c1 applied', () => sync.config().resources[CDS]?.c1 !== undefined);
      assert.equal(receivedAny(sync.config().resources[CDS]?.c1), undefined);
    } finally {
      await sync.stop();
    }
  });
});
