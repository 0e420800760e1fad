import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createBalancer, hash32, Maglev, prioritize } from '../../../../src/proxy/cluster/lb.js';
import type { ClusterConfig, LbPolicy, UpstreamEndpoint } from '../../../../src/proxy/proxy-config.js';
import type { UpstreamHost } from '../../../../src/proxy/runtime-types.js';

function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function host(i: number, weight = 1, priority = 0, healthy = true): UpstreamHost {
  const endpoint: UpstreamEndpoint = { address: `10.0.0.${i}`, port: 8080, weight, healthy, locality: '', priority, mtls: false };
  return { key: `10.0.0.${i}:8080`, endpoint };
}

function cluster(lb: LbPolicy, ringSize?: number): ClusterConfig {
  return {
    name: 'c',
    discovery: 'EDS',
    endpoints: [],
    lb,
    ...(ringSize !== undefined ? { ringSize } : {}),
    connectTimeoutMs: 1000,
    http2: false,
    circuitBreaker: { maxConnections: 1, maxPendingRequests: 1, maxRequests: 1, maxRetries: 1 },
    blackhole: false,
  };
}

function counts(picks: Iterable<UpstreamHost | undefined>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const p of picks) out[p?.key ?? 'none'] = (out[p?.key ?? 'none'] ?? 0) + 1;
  return out;
}

const keys = (n: number) => Array.from({ length: n }, (_, i) => `user-${i}`);

describe('ROUND_ROBIN', () => {
  test('weighted: exact proportions over 1000 picks, smoothly interleaved, even with a new array per pick', () => {
    const hosts = [host(1, 5), host(2, 3), host(3, 2)];
    for (const fresh of [false, true]) {
      const b = createBalancer(cluster('ROUND_ROBIN'));
      const picks = Array.from({ length: 1000 }, () => b.pick(fresh ? [...hosts] : hosts, {}));
      assert.deepEqual(counts(picks), { '10.0.0.1:8080': 500, '10.0.0.2:8080': 300, '10.0.0.3:8080': 200 });
      let run = 1;
      let longest = 1;
      for (let i = 1; i < picks.length; i++) {
        run = picks[i] === picks[i - 1] ? run + 1 : 1;
        longest = Math.max(longest, run);
      }
      assert.ok(longest <= 2, `smooth WRR never repeats a 5/10 host more than twice in a row (saw ${longest})`);
    }
  });

  test('equal weights cycle in order; one host and no hosts', () => {
    const hosts = [host(1), host(2), host(3)];
    const b = createBalancer(cluster('ROUND_ROBIN'));
    assert.deepEqual(
      Array.from({ length: 6 }, () => b.pick(hosts, {})?.key),
      ['10.0.0.1:8080', '10.0.0.2:8080', '10.0.0.3:8080', '10.0.0.1:8080', '10.0.0.2:8080', '10.0.0.3:8080'],
    );
    assert.equal(b.pick([host(9)], {})?.key, '10.0.0.9:8080');
    assert.equal(b.pick([], {}), undefined);
  });
});

describe('LEAST_REQUEST', () => {
  test('power of two choices: of two hosts always the less loaded, of many never the most loaded', () => {
    const b = createBalancer(cluster('LEAST_REQUEST'));
    const random = rng(1);
    const load: Record<string, number> = { '10.0.0.1:8080': 10, '10.0.0.2:8080': 0 };
    const two = [host(1), host(2)];
    for (let i = 0; i < 200; i++) assert.equal(b.pick(two, { inflight: (k) => load[k] ?? 0, random })?.key, '10.0.0.2:8080');
    const many = [host(1), host(2), host(3), host(4), host(5)];
    const inflight = (k: string) => (k === '10.0.0.5:8080' ? 50 : k === '10.0.0.1:8080' ? 0 : 5);
    const c = counts(Array.from({ length: 5000 }, () => b.pick(many, { inflight, random })));
    assert.equal(c['10.0.0.5:8080'], undefined);
    // The idle host wins whenever it is one of the two choices: 2/5 of picks, twice its uniform share.
    assert.ok((c['10.0.0.1:8080'] ?? 0) > 1750, JSON.stringify(c));
  });

  test('weighted: load is compared per unit of weight', () => {
    const b = createBalancer(cluster('LEAST_REQUEST'));
    const hosts = [host(1, 4), host(2, 1)];
    // 3 in flight on a weight-4 host is lighter than 1 on a weight-1 host.
    const inflight = (k: string) => (k === '10.0.0.1:8080' ? 3 : 1);
    const random = rng(2);
    const c = counts(Array.from({ length: 1000 }, () => b.pick(hosts, { inflight, random })));
    assert.ok((c['10.0.0.1:8080'] ?? 0) > 950, JSON.stringify(c));
  });
});

describe('RANDOM', () => {
  test('weighted random follows the weights', () => {
    const b = createBalancer(cluster('RANDOM'));
    const random = rng(3);
    const c = counts(Array.from({ length: 20_000 }, () => b.pick([host(1, 1), host(2, 3)], { random })));
    const share = (c['10.0.0.2:8080'] ?? 0) / 20_000;
    assert.ok(Math.abs(share - 0.75) < 0.02, `share ${share}`);
  });
});

/** Where each key lands, by host key. */
function placement(b: ReturnType<typeof createBalancer>, hosts: UpstreamHost[], ks: string[]): string[] {
  return ks.map((k) => b.pick(hosts, { hashKey: k })?.key ?? 'none');
}

for (const [policy, size] of [
  ['RING_HASH', 1024],
  ['MAGLEV', 65537],
] as const) {
  describe(policy, () => {
    const hosts = Array.from({ length: 10 }, (_, i) => host(i + 1));
    const ks = keys(20_000);

    test('the same key always reaches the same host, whatever the host order', () => {
      const b = createBalancer(cluster(policy, size));
      const first = placement(b, hosts, ks);
      assert.deepEqual(placement(b, hosts, ks), first);
      const other = createBalancer(cluster(policy, size));
      assert.deepEqual(placement(other, [...hosts].reverse(), ks), first);
    });

    test('keys spread over the hosts', () => {
      const c = counts(placement(createBalancer(cluster(policy, size)), hosts, ks).map((k) => ({ key: k }) as UpstreamHost));
      const mean = ks.length / hosts.length;
      for (const [k, n] of Object.entries(c)) assert.ok(n > mean * 0.6 && n < mean * 1.4, `${k}: ${n} keys (mean ${mean})`);
    });

    test('removing a host moves few keys: those it had, and at most a little more', () => {
      const b = createBalancer(cluster(policy, size));
      const before = placement(b, hosts, ks);
      const removed = hosts[3]?.key;
      const after = placement(
        b,
        hosts.filter((h) => h.key !== removed),
        ks,
      );
      let moved = 0;
      let movedFromOthers = 0;
      before.forEach((h, i) => {
        if (h === after[i]) return;
        moved++;
        if (h !== removed) movedFromOthers++;
      });
      const onRemoved = before.filter((h) => h === removed).length;
      assert.ok(moved >= onRemoved, 'every key of the removed host moved');
      // 1/N of the keys must move; ring hash moves nothing else, Maglev a few percent more.
      const bound = policy === 'RING_HASH' ? 0 : 0.03 * ks.length;
      assert.ok(movedFromOthers <= bound, `${movedFromOthers} keys of surviving hosts moved (bound ${bound})`);
      assert.ok(moved / ks.length < 1 / hosts.length + 0.05, `moved ${moved / ks.length}`);
    });

    test('weights skew the share', () => {
      const weighted = [host(1, 3), host(2, 1), host(3, 1), host(4, 1)];
      const c = counts(placement(createBalancer(cluster(policy, size)), weighted, ks).map((k) => ({ key: k }) as UpstreamHost));
      const share = (c['10.0.0.1:8080'] ?? 0) / ks.length;
      assert.ok(Math.abs(share - 0.5) < 0.06, `weight 3 of 6 took ${share}`);
    });

    test('without a hash key the pick is random', () => {
      const b = createBalancer(cluster(policy, size));
      const random = rng(5);
      const c = counts(Array.from({ length: 4000 }, () => b.pick(hosts, { random })));
      assert.equal(Object.keys(c).length, hosts.length);
    });
  });
}

describe('hash32 and Maglev sizes', () => {
  test('hash32 is stable and spreads similar keys', () => {
    assert.equal(hash32('user-1'), hash32('user-1'));
    const buckets = new Array<number>(16).fill(0);
    for (const k of keys(16_000)) buckets[hash32(k) % 16] = (buckets[hash32(k) % 16] ?? 0) + 1;
    for (const n of buckets) assert.ok(n > 800 && n < 1200, `bucket ${n}`);
  });

  test('a composite table size is raised to a prime (a probe sequence could cycle otherwise)', () => {
    const b = new Maglev(100);
    assert.ok(b.pick([host(1), host(2), host(3)], { hashKey: 'k' }));
  });
});

describe('prioritize', () => {
  const always = () => 0.5;

  test('all of priority 0 healthy: the same array comes back', () => {
    const hosts = [host(1), host(2)];
    assert.equal(
      prioritize(hosts, (h) => h.endpoint.healthy, always),
      hosts,
    );
  });

  test('a level at ≥ 1/1.4 health keeps all its load; below, the rest spills to the next level', () => {
    const hosts = [host(1, 1, 0), host(2, 1, 0), host(3, 1, 0), host(4, 1, 0, false), host(5, 1, 1), host(6, 1, 1)];
    // 3 of 4 healthy: 1.4 × 75% ≥ 100%: no spill.
    for (let i = 0; i < 100; i++) {
      const r = prioritize(
        hosts,
        (h) => h.endpoint.healthy,
        () => i / 100,
      );
      assert.deepEqual(
        r.map((h) => h.key),
        ['10.0.0.1:8080', '10.0.0.2:8080', '10.0.0.3:8080'],
      );
    }
    // 2 of 4 healthy: level 0 takes 70%, level 1 30%.
    const half = [host(1, 1, 0), host(2, 1, 0), host(3, 1, 0, false), host(4, 1, 0, false), host(5, 1, 1), host(6, 1, 1)];
    let p0 = 0;
    for (let i = 0; i < 1000; i++) {
      const r = prioritize(
        half,
        (h) => h.endpoint.healthy,
        () => (i + 0.5) / 1000,
      );
      if (r[0]?.endpoint.priority === 0) p0++;
      assert.ok(r.every((h) => h.endpoint.healthy));
    }
    assert.equal(p0, 700);
  });

  test('no healthy host at level 0: level 1 takes everything; none anywhere: nothing', () => {
    const hosts = [host(1, 1, 0, false), host(2, 1, 1), host(3, 1, 2)];
    assert.deepEqual(
      prioritize(hosts, (h) => h.endpoint.healthy, always).map((h) => h.key),
      ['10.0.0.2:8080'],
    );
    assert.deepEqual(
      prioritize([host(1, 1, 0, false), host(2, 1, 1, false)], (h) => h.endpoint.healthy, always),
      [],
    );
  });

  test('degraded everywhere: load is scaled to the total health', () => {
    // Level 0: 1/4 healthy (35%), level 1: 1/4 healthy (35%); total 70% scales to 50/50.
    const hosts = [...[1, 2, 3, 4].map((i) => host(i, 1, 0, i === 1)), ...[5, 6, 7, 8].map((i) => host(i, 1, 1, i === 5))];
    let p0 = 0;
    for (let i = 0; i < 1000; i++)
      if (
        prioritize(
          hosts,
          (h) => h.endpoint.healthy,
          () => (i + 0.5) / 1000,
        )[0]?.endpoint.priority === 0
      )
        p0++;
    assert.equal(p0, 500);
  });
});
