import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { DEFAULT_MESH_CONFIG } from '../../../src/api/mesh-config.js';
import { VmRegistry } from '../../../src/discovery/workload-registry.js';
import { isVmeshError } from '../../../src/lib/errors.js';
import { createLogger } from '../../../src/lib/logger.js';
import { type ApplyResult, ConfigStore } from '../../../src/store/config-store.js';
import { ConsulStore } from '../../../src/store/consul/consul-store.js';
import { FileStore } from '../../../src/store/file/file-store.js';
import type { Store } from '../../../src/store/store.js';
import { type FakeConsul, startFakeConsul } from '../../support/fake-consul.js';

// Concurrent writes must have the outcomes of some serial order: each write is validated against the state it
// is written on top of. Run against the file store, one Consul store, and two controllers sharing Consul.

const logger = createLogger({ level: 'silent' });
const ROUNDS = 6;

/** One controller's view: the writes go to `configs[i % configs.length]`. */
interface Backend {
  readonly configs: ConfigStore[];
  readonly registries: VmRegistry[];
  /** A fresh store read of the resource keys held (config/ prefix stripped). */
  keys(): Promise<string[]>;
  close(): Promise<void>;
}

const consuls: FakeConsul[] = [];
const dirs: string[] = [];
after(async () => {
  for (const c of consuls.splice(0)) await c.stop();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function backendOf(stores: Store[], reread: () => Promise<Store>, done: () => Promise<void>): Backend {
  const configs = stores.map((s) => new ConfigStore(s, DEFAULT_MESH_CONFIG));
  return {
    configs,
    registries: configs.map((c) => new VmRegistry(c, undefined, () => '198.18.0.1')),
    async keys() {
      const s = await reread();
      const out = s.list('config/').map((e) => e.key.slice('config/'.length));
      if (!stores.includes(s)) await s.close();
      return out;
    },
    async close() {
      for (const s of stores) await s.close();
      await done();
    },
  };
}

const backends: Record<string, () => Promise<Backend>> = {
  'file store': async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vmesh-races-'));
    dirs.push(dir);
    const store = await FileStore.open(dir);
    return backendOf(
      [store],
      async () => store,
      async () => {},
    );
  },
  'consul store': async () => {
    const consul = await startFakeConsul();
    consuls.push(consul);
    const open = () => ConsulStore.open({ url: consul.url, waitSeconds: 2, logger });
    return backendOf([await open()], open, async () => {});
  },
  'two controllers sharing consul': async () => {
    const consul = await startFakeConsul();
    consuls.push(consul);
    const open = () => ConsulStore.open({ url: consul.url, waitSeconds: 2, logger });
    return backendOf([await open(), await open()], open, async () => {});
  },
};

const doc = (apiVersion: string, kind: 'PeerAuthentication' | 'Sidecar', name: string, namespace: string, spec: object) => ({
  label: `${kind} ${namespace}/${name}`,
  value: { apiVersion, kind, metadata: { name, namespace }, spec },
});
const pa = (name: string, namespace: string, mode: string) =>
  doc('security.istio.io/v1', 'PeerAuthentication', name, namespace, { mtls: { mode } });
const sidecar = (name: string) => doc('networking.istio.io/v1', 'Sidecar', name, 'shop', { egress: [{ hosts: ['./*'] }] });
const refOf = (v: ReturnType<typeof doc>['value']) => ({ kind: v.kind, namespace: v.metadata.namespace, name: v.metadata.name });

/** The rules where one of several applies: Istio (and vmesh) accept the others, each with a warning naming the one used. */
const SINGLETONS = [
  {
    what: 'mesh-wide STRICT and DISABLE PeerAuthentications',
    docs: [pa('strict', DEFAULT_MESH_CONFIG.rootNamespace, 'STRICT'), pa('disable', DEFAULT_MESH_CONFIG.rootNamespace, 'DISABLE')],
  },
  { what: 'two namespace-wide PeerAuthentications of one namespace', docs: [pa('a', 'shop', 'STRICT'), pa('b', 'shop', 'PERMISSIVE')] },
  { what: 'two default Sidecars of one namespace', docs: [sidecar('a'), sidecar('b')] },
] as const;
const dr = (host: string) => ({
  label: 'dr',
  value: {
    apiVersion: 'networking.istio.io/v1',
    kind: 'DestinationRule',
    metadata: { name: 'reviews', namespace: 'default' },
    spec: { host },
  },
});

const conflicts = (r: ApplyResult) => r.warnings.filter((w) => w.startsWith('VMESH_WARN_CONFLICT')).length;

async function settled<T>(ps: Promise<T>[]): Promise<{ ok: T[]; failed: unknown[] }> {
  const all = await Promise.allSettled(ps);
  return {
    ok: all.flatMap((x) => (x.status === 'fulfilled' ? [x.value] : [])),
    failed: all.flatMap((x) => (x.status === 'rejected' ? [x.reason] : [])),
  };
}

for (const [name, make] of Object.entries(backends)) {
  describe(`concurrent config writes: ${name}`, () => {
    for (const c of SINGLETONS) {
      test(`${c.what} at once: both accepted, and the one ordered second is told which applies`, async () => {
        const b = await make();
        try {
          for (let round = 0; round < ROUNDS; round++) {
            const [c0, c1] = [b.configs[0], b.configs[1 % b.configs.length]] as ConfigStore[];
            const rs = await Promise.all([c0.applyObjects([c.docs[0]]), c1.applyObjects([c.docs[1]])]);
            // Serially, the first has nothing to conflict with; the second warns on itself (naming the winner).
            assert.deepEqual(rs.map(conflicts).sort(), [0, 1], `round ${round}: ${JSON.stringify(rs.map((r) => r.warnings))}`);
            await (round % 2 === 0 ? c0 : c1).deleteMany(c.docs.map((d) => refOf(d.value)));
          }
        } finally {
          await b.close();
        }
      });
    }

    test('one new resource written by 8 writers at once: exactly one created it', async () => {
      const b = await make();
      try {
        for (let round = 0; round < ROUNDS; round++) {
          const rs = await Promise.all(
            Array.from({ length: 8 }, (_, i) => (b.configs[i % b.configs.length] as ConfigStore).applyObjects([dr(`r${round}-${i}`)])),
          );
          const actions = rs.map((r) => r.results[0]?.action);
          assert.equal(actions.filter((a) => a === 'created').length, 1, `round ${round}: ${actions.join(' ')}`);
          assert.equal(actions.filter((a) => a === 'updated').length, 7, `round ${round}: ${actions.join(' ')}`);
          await b.configs[0]?.delete('DestinationRule', 'default', 'reviews');
        }
      } finally {
        await b.close();
      }
    });

    test('one resource deleted by 8 writers at once: exactly one deleted it, the others were told it is not there', async () => {
      const b = await make();
      try {
        for (let round = 0; round < ROUNDS; round++) {
          await b.configs[0]?.applyObjects([dr('reviews')]);
          // Every controller has seen it (a shared store's mirror follows within a round trip).
          for (const c of b.configs) await follows(c, 'DestinationRule', 'reviews');
          const r = await settled(
            Array.from({ length: 8 }, (_, i) =>
              (b.configs[i % b.configs.length] as ConfigStore).delete('DestinationRule', 'default', 'reviews'),
            ),
          );
          assert.equal(r.ok.length, 1, `round ${round}: ${r.failed.map(String).join('; ')}`);
          assert.ok(
            r.failed.every((e) => isVmeshError(e) && e.code === 'VMESH_ERR_NOT_FOUND'),
            r.failed.map(String).join('; '),
          );
          assert.deepEqual(await b.keys(), []);
        }
      } finally {
        await b.close();
      }
    });

    test('20 workloads of a new service registered at once: one ServiceEntry, made once, and all 20 WorkloadEntries', async () => {
      const b = await make();
      try {
        const rs = await Promise.all(
          Array.from({ length: 20 }, (_, i) =>
            (b.registries[i % b.registries.length] as VmRegistry).register({
              name: `ratings-${i}`,
              service: 'ratings',
              address: `198.18.1.${i + 1}`,
              ports: ['http:9080'],
              host: `vm${i}`,
            }),
          ),
        );
        assert.equal(rs.filter((r) => r.serviceEntryCreated).length, 1);
        const keys = await b.keys();
        assert.deepEqual(
          keys.filter((k) => k.startsWith('ServiceEntry/')),
          ['ServiceEntry/default/ratings'],
        );
        assert.equal(keys.filter((k) => k.startsWith('WorkloadEntry/default/ratings-')).length, 20);
      } finally {
        await b.close();
      }
    });

    test('a registration racing the deregistration of the last workload: never a workload without its ServiceEntry', async () => {
      const b = await make();
      const reg = (r: VmRegistry, n: string) =>
        r.register({ name: n, service: 'details', address: '198.18.2.1', ports: ['http:9080'], host: 'vm-a' });
      try {
        const [r0, r1] = [b.registries[0], b.registries[1 % b.registries.length]] as VmRegistry[];
        await reg(r0, 'details-0');
        for (let round = 1; round <= ROUNDS; round++) {
          const prev = `details-${round - 1}`;
          const next = `details-${round}`;
          for (const c of b.configs) await follows(c, 'WorkloadEntry', prev);
          // Both orders of the calls: the registration first and the deregistration first.
          const [d, r] =
            round % 2 === 0
              ? await Promise.all([r0.deregister('default', prev), reg(r1, next)])
              : await Promise.all([r1.deregister('default', prev), reg(r0, next)]).then(([x, y]) => [x, y] as const);
          const keys = await b.keys();
          assert.ok(keys.includes(`WorkloadEntry/default/${next}`), `round ${round}: ${keys.join(' ')}`);
          assert.ok(!keys.includes(`WorkloadEntry/default/${prev}`), `round ${round}: ${keys.join(' ')}`);
          assert.ok(keys.includes('ServiceEntry/default/details'), `round ${round}: the workload lost its ServiceEntry: ${keys.join(' ')}`);
          // A serial order: either the deregistration removed it and the registration made it again, or neither.
          assert.equal(d.serviceEntryRemoved, r.serviceEntryCreated, `round ${round}`);
        }
      } finally {
        await b.close();
      }
    });
  });
}

/** Waits until a controller holds the resource (one sharing a store reads it again, as followSharedStore has it do). */
async function follows(c: ConfigStore, kind: 'DestinationRule' | 'WorkloadEntry', name: string): Promise<void> {
  const deadline = Date.now() + 5000;
  for (;;) {
    c.resync(() => {});
    if (c.get(kind, 'default', name)) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${kind} default/${name} to reach every controller`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
