import type { Cluster__Output } from '../../generated/envoy/config/cluster/v3/Cluster.js';
import type { ClusterLoadAssignment__Output } from '../../generated/envoy/config/endpoint/v3/ClusterLoadAssignment.js';
import type { Listener__Output } from '../../generated/envoy/config/listener/v3/Listener.js';
import type { RouteConfiguration__Output } from '../../generated/envoy/config/route/v3/RouteConfiguration.js';
import { normalizeIp } from '../../lib/addr.js';
import { err, ok, type Result } from '../../lib/result.js';
import type { AppliedConfig } from '../../xds/agent-sync.js';
import type { Decoded } from '../../xds/envoy-types.js';
import { CDS, EDS, LDS, RDS } from '../../xds/type-urls.js';
import type { ClusterConfig, ListenerConfig, ProxyConfig, RouteTable } from '../proxy-config.js';
import { compileCluster } from './clusters.js';
import { compileEndpoints } from './endpoints.js';
import { compileListener } from './listeners.js';
import { CompileError } from './read.js';
import { compileRouteTable } from './routes.js';

export { FILE_SECRET_PREFIX, fileSecretName, parseFileSecretName } from './tls.js';

/**
 * The applied xDS resources (plain decoded JSON, see XdsSync) -> the proxy's runtime config, as one pure step.
 * A resource that cannot be compiled fails the whole config with `<type> <name>: <field path>: why`, so the agent
 * NACKs the update and keeps running its last good config. Features the proxy does not implement are refused
 * only where ignoring them would change what traffic does.
 */

const LABELS: Readonly<Record<string, string>> = {
  [CDS]: 'Cluster',
  [EDS]: 'ClusterLoadAssignment',
  [LDS]: 'Listener',
  [RDS]: 'RouteConfiguration',
};

class ResourceFailure extends Error {}

/**
 * Each resource of one type, compiled by `f`. An applied resource is the decoder's output for `typeUrl` (or sparse
 * JSON from a test or an old cache): typed as that message, with every field still checked by the readers.
 */
function compileEach<M, T>(
  typeUrl: string,
  resources: AppliedConfig['resources'][string],
  f: (m: Decoded<M>, name: string) => T,
): Map<string, T> {
  const out = new Map<string, T>();
  for (const [name, r] of Object.entries(resources)) {
    try {
      if (!r || typeof r !== 'object') throw new CompileError('', 'not a message');
      out.set(name, f(r as Decoded<M>, name));
    } catch (e) {
      const why = e instanceof CompileError ? (e.path ? `${e.path}: ${e.why}` : e.why) : `internal error: ${(e as Error).message}`;
      throw new ResourceFailure(`${LABELS[typeUrl] ?? typeUrl} ${name}: ${why}`.replace(/\s*\n\s*/g, ' '));
    }
  }
  return out;
}

/** `address:port` as virtualByAddress keys it (lower case, IPv4-mapped IPv6 as IPv4). */
export function addressKey(address: string, port: number): string {
  return `${normalizeIp(address)}:${port}`;
}

export function compileProxyConfig(applied: AppliedConfig): Result<ProxyConfig, string> {
  const of = (t: string) => applied.resources[t] ?? {};
  try {
    const assignments = of(EDS);
    // Every ClusterLoadAssignment on its own first, so a broken one is named as itself.
    const clas = compileEach<ClusterLoadAssignment__Output, Decoded<ClusterLoadAssignment__Output>>(EDS, assignments, (m) => {
      compileEndpoints(m, '', { localityWeighted: false });
      return m;
    });
    const clusters: Map<string, ClusterConfig> = compileEach<Cluster__Output, ClusterConfig>(CDS, of(CDS), (m) =>
      compileCluster(m, (n) => clas.get(n)),
    );
    const routes = compileEach<RouteConfiguration__Output, RouteTable>(RDS, of(RDS), (m, name) => compileRouteTable(m, name));
    const compiled = compileEach<Listener__Output, ListenerConfig | string>(
      LDS,
      of(LDS),
      (m, name) =>
        compileListener(m, (t) => {
          if (routes.has(t.name)) throw new CompileError('', `inline route configuration name ${t.name} is taken`);
          routes.set(t.name, t);
        }) ?? name,
    );
    const listeners = new Map<string, ListenerConfig>();
    const virtualByAddress = new Map<string, ListenerConfig>();
    const bound = new Map<string, string>();
    for (const l of compiled.values()) {
      if (typeof l === 'string') continue;
      listeners.set(l.name, l);
      const key = addressKey(l.address, l.port);
      const other = l.bindToPort ? bound.get(key) : virtualByAddress.get(key)?.name;
      if (other !== undefined) return err(`Listener ${l.name}: address: ${key} is already used by listener ${other}`);
      if (l.bindToPort) bound.set(key, l.name);
      else virtualByAddress.set(key, l);
    }
    const version = [CDS, EDS, LDS, RDS].map((t) => applied.versions[t] ?? '').join('/');
    return ok({ version, listeners, virtualByAddress, clusters, routes });
  } catch (e) {
    if (e instanceof ResourceFailure) return err(e.message);
    throw e;
  }
}
