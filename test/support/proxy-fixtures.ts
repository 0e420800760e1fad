import { socketAddr, toRemote } from '../../src/lib/addr.js';
/**
 * What proxy tests and benchmarks build the same way: a node's config as its proxy runs it (translated, encoded
 * to protobuf, decoded and compiled, as the agent applies it) and a finished request's stats.
 */
import { compileProxyConfig } from '../../src/proxy/compile/index.js';
import type { RequestStats } from '../../src/proxy/http/types.js';
import type { ProxyConfig } from '../../src/proxy/proxy-config.js';
import type { AppliedConfig } from '../../src/xds/agent-sync.js';
import { decodeAnyDeep } from '../../src/xds/decode-deep.js';
import { makeSnapshot } from '../../src/xds/snapshot.js';
import { translateNode } from '../../src/xds/translate/index.js';
import type { TranslateInput } from '../../src/xds/translate/input.js';
import { CDS, EDS, LDS, RDS } from '../../src/xds/type-urls.js';

/** The translator's output for `input`, through encode and decode, compiled; throws with the compiler's error. */
export function compileTranslated(input: TranslateInput): ProxyConfig {
  const snap = makeSnapshot('v1', translateNode(input));
  const resources: Record<string, Record<string, unknown>> = {};
  for (const t of [CDS, EDS, LDS, RDS]) {
    resources[t] = Object.fromEntries([...(snap.resources.get(t) ?? new Map())].map(([n, r]) => [n, decodeAnyDeep(r.any)]));
  }
  const applied: AppliedConfig = {
    versions: { [CDS]: '1', [EDS]: '1', [LDS]: '1', [RDS]: '1' },
    resources,
    updatedAt: new Date(0).toISOString(),
  };
  const r = compileProxyConfig(applied);
  if (!r.ok) throw new Error(`the proxy refused the translated config: ${r.error}`);
  return r.value;
}

/** A finished outbound request to reviews on the bookinfo fixture's h1, with `over` applied. */
export function requestStats(over: Partial<RequestStats> = {}): RequestStats {
  return {
    method: 'GET',
    path: '/reviews/1',
    authority: 'reviews:9080',
    protocol: 'HTTP/1.1',
    status: 200,
    responseFlags: '-',
    bytesIn: 0,
    bytesOut: 120,
    durationMs: 3.2,
    upstreamHost: '198.18.0.12:9081',
    cluster: 'outbound|9080||reviews.default.mesh',
    routeName: 'default',
    peerIdentity: undefined,
    downstreamRemote: toRemote(socketAddr('198.18.0.11', 40000)),
    requestId: 'req-1',
    attempts: 1,
    statPrefix: 'outbound_240.240.0.4_9080',
    grpc: false,
    ...over,
  };
}
