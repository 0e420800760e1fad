import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Cluster__Output } from '../../../../src/generated/envoy/config/cluster/v3/Cluster.js';
import { ProxyClusterManager } from '../../../../src/proxy/cluster/cluster-manager.js';
import { slowStartFactor } from '../../../../src/proxy/cluster/lb.js';
import { compileCluster } from '../../../../src/proxy/compile/clusters.js';
import type { ClusterConfig, SlowStart } from '../../../../src/proxy/proxy-config.js';
import { FileSecretStore } from '../../../../src/proxy/secret/file-store.js';
import { decodeAnyDeep } from '../../../../src/xds/decode-deep.js';
import type { Decoded } from '../../../../src/xds/envoy-types.js';
import { encodeAny } from '../../../../src/xds/index.js';
import { CLUSTER_TYPE_URL } from '../../../../src/xds/type-urls.js';
import { cluster, endpoint, logger, proxyConfig } from '../l4-fixture.js';

// Envoy's slow start (Istio's DestinationRule warmup): a host that joined less than a window ago weighs
// max(minWeightPercent, (age / window)^(1 / aggression)) of its weight, with a 1 s floor on the age.

const LINEAR: SlowStart = { windowMs: 100_000, aggression: 1, minWeightPercent: 10 };

describe('slowStartFactor', () => {
  test("Envoy's formula: minimum first, then the ramp, full weight at the end of the window", () => {
    assert.equal(slowStartFactor(0, LINEAR), 0.1, 'the 1 s floor gives 1 %, under the 10 % minimum');
    assert.equal(slowStartFactor(5_000, LINEAR), 0.1);
    assert.equal(slowStartFactor(25_000, LINEAR), 0.25);
    assert.equal(slowStartFactor(99_000, LINEAR), 0.99);
    assert.equal(slowStartFactor(100_000, LINEAR), 1);
    assert.equal(slowStartFactor(Number.POSITIVE_INFINITY, LINEAR), 1);
    // aggression 2: square root, faster at first; 0.5: square, slower
    assert.equal(slowStartFactor(25_000, { ...LINEAR, aggression: 2 }), 0.5);
    assert.equal(slowStartFactor(50_000, { ...LINEAR, aggression: 0.5 }), 0.25);
    assert.equal(slowStartFactor(1_000, { ...LINEAR, minWeightPercent: 0 }), 0.01, 'the age floor is one second');
    assert.equal(slowStartFactor(500, { windowMs: 800, aggression: 1, minWeightPercent: 0 }), 1, 'never above full weight');
  });
});

describe('ProxyClusterManager with slow start (injected clock)', () => {
  const secrets = new FileSecretStore();
  const shares = (cm: ProxyClusterManager, n = 1000) => {
    const out: Record<number, number> = {};
    for (let i = 0; i < n; i++) {
      const h = cm.pick('c', {});
      assert.ok(h);
      out[h.endpoint.port] = (out[h.endpoint.port] ?? 0) + 1;
    }
    return out;
  };

  for (const lb of ['ROUND_ROBIN', 'LEAST_REQUEST'] as const) {
    test(`${lb}: a new host ramps from the minimum to an equal share over the window`, () => {
      let now = 1_000_000;
      let r = 0;
      // a fixed sequence of "random" numbers, so LEAST_REQUEST's weighted draws are reproducible
      const random = () => {
        r = (r * 16807 + 12345) % 2147483647;
        return r / 2147483647;
      };
      const cm = new ProxyClusterManager({ secrets, logger, now: () => now, random });
      const base: ClusterConfig = cluster('c', [1001, 1002], { lb, slowStart: LINEAR });
      try {
        cm.update(proxyConfig('v1', [], [base]));
        // the first hosts joined together: they ramp alike, so the split stays even
        const first = shares(cm);
        assert.ok(Math.abs((first[1001] ?? 0) - 500) <= (lb === 'ROUND_ROBIN' ? 1 : 60), JSON.stringify(first));
        now += 200_000;
        cm.update(proxyConfig('v2', [], [{ ...base, endpoints: [endpoint(1001), endpoint(1002), endpoint(1003)] }]));
        const expectShare = (factor: number) => factor / (2 + factor);
        const tol = lb === 'ROUND_ROBIN' ? 0.005 : 0.05;
        for (const [age, factor] of [
          [0, 0.1],
          [50_000, 0.5],
          [90_000, 0.9],
          [100_000, 1],
        ] as const) {
          const at = now + age;
          const saved = now;
          now = at;
          const s = shares(cm, 2000);
          const got = (s[1003] ?? 0) / 2000;
          assert.ok(
            Math.abs(got - expectShare(factor)) <= tol,
            `at ${age} ms: share ${got}, want ${expectShare(factor)} (${JSON.stringify(s)})`,
          );
          now = saved;
        }
      } finally {
        cm.close();
      }
    });
  }

  test('without slow start a new host gets its full share at once', () => {
    let now = 0;
    const cm = new ProxyClusterManager({ secrets, logger, now: () => now });
    try {
      const base = cluster('c', [1001, 1002]);
      cm.update(proxyConfig('v1', [], [base]));
      now += 1000;
      cm.update(proxyConfig('v2', [], [{ ...base, endpoints: [endpoint(1001), endpoint(1002), endpoint(1003)] }]));
      assert.equal(shares(cm, 999)[1003], 333);
    } finally {
      cm.close();
    }
  });
});

describe('slow_start_config from CDS', () => {
  const compiled = (lbFields: Record<string, unknown>) => {
    const raw = {
      name: 'c',
      type: 'STATIC',
      connect_timeout: { seconds: 1 },
      load_assignment: { cluster_name: 'c', endpoints: [] },
      ...lbFields,
    };
    // What the agent applies: the decoder's output for the type, as compileProxyConfig reads it.
    return compileCluster(decodeAnyDeep(encodeAny(CLUSTER_TYPE_URL, raw)) as Decoded<Cluster__Output>, () => undefined);
  };

  test('round robin and least request read window, aggression and minimum, with Envoy defaults', () => {
    const slow = {
      slow_start_window: { seconds: 300 },
      aggression: { default_value: 2, runtime_key: 'k' },
      min_weight_percent: { value: 5 },
    };
    assert.deepEqual(compiled({ round_robin_lb_config: { slow_start_config: slow } }).slowStart, {
      windowMs: 300_000,
      aggression: 2,
      minWeightPercent: 5,
    });
    assert.deepEqual(
      compiled({ lb_policy: 'LEAST_REQUEST', least_request_lb_config: { slow_start_config: { slow_start_window: { seconds: 15 } } } })
        .slowStart,
      {
        windowMs: 15_000,
        aggression: 1,
        minWeightPercent: 10,
      },
    );
    assert.equal(compiled({ round_robin_lb_config: { slow_start_config: {} } }).slowStart, undefined, 'no window, no slow start');
    assert.equal(compiled({ lb_policy: 'RANDOM' }).slowStart, undefined);
  });
});
