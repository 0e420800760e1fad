import type { Resource } from '../../api/resource.js';
import { wasmFailsClosed } from '../../api/resources/extensions-wasm-plugin.js';
import type { Filter } from '../../generated/envoy/config/listener/v3/Filter.js';
import type { HttpFilter as EnvoyHttpFilter } from '../../generated/envoy/extensions/filters/network/http_connection_manager/v3/HttpFilter.js';
import type { Any } from '../../generated/google/protobuf/Any.js';
import type { TranslateInput } from './input.js';
import { type PolicySubject, policyApplies } from './policy-scope.js';
import { typedConfig } from './typed-config.js';

/**
 * WasmPlugin without a Wasm VM. Istio serves each plugin as an extension config its agent downloads; when the
 * module cannot be had, the agent puts an RBAC filter in the plugin's place: deny-all (rules with no policy)
 * unless the plugin says FAIL_OPEN, then allow-all. vmesh's proxy can never load one, so the translator writes
 * that substitute itself, where istiod would have put the plugin: in the HTTP filters (type HTTP, the default)
 * or the network filters (type NETWORK) of the listeners it selects. FAIL_OPEN's allow-all filter does nothing,
 * so it is left out.
 */

/** Istio's stat prefix of the substitute deny filter (pkg/wasm), so its counters read the same. */
const DENY_STAT_PREFIX = 'wasm-default-deny';

/** Where a listener's traffic sits for a plugin's `match.mode`: a sidecar's inbound side is SERVER, outbound and gateways CLIENT. */
export interface WasmSite {
  readonly mode: 'SERVER' | 'CLIENT';
  /** Inbound: the workload port; outbound: the service port; gateway: the server port. */
  readonly port: number;
  /** The workloads behind the listener (inbound), or the node itself (outbound, gateway): any one selected is enough. */
  readonly subjects: readonly PolicySubject[];
}

type Plugin = Resource<'WasmPlugin'>;
/** http-filters.ts' HttpFilter (which imports this module, hence spelled out). */
type HttpFilter = EnvoyHttpFilter & { readonly name: string; readonly typed_config: Any };

const PHASES = ['AUTHN', 'AUTHZ', 'STATS', 'UNSPECIFIED_PHASE'] as const;

function matchesTraffic(p: Plugin, site: WasmSite): boolean {
  const selectors = p.spec.match ?? [];
  if (selectors.length === 0) return true;
  return selectors.some((s) => {
    const mode = s.mode ?? 'UNDEFINED';
    const modeOk = mode === 'UNDEFINED' || mode === 'CLIENT_AND_SERVER' || mode === site.mode;
    const ports = s.ports ?? [];
    return modeOk && (ports.length === 0 || ports.some((x) => x.number === site.port));
  });
}

/**
 * The fail-closed plugins of one listener and type, in Istio's order: by phase (AUTHN, AUTHZ, STATS, then
 * unspecified), higher priority first, then by namespace/name.
 */
export function failClosedPlugins(input: TranslateInput, site: WasmSite, types: readonly ('HTTP' | 'NETWORK')[]): Plugin[] {
  const key = (p: Plugin) => `${p.metadata.namespace}/${p.metadata.name}`;
  const phase = (p: Plugin) => PHASES.indexOf(p.spec.phase ?? 'UNSPECIFIED_PHASE');
  return input.config.wasmPlugins
    .filter((p) => types.includes(p.spec.type === 'NETWORK' ? 'NETWORK' : 'HTTP') && wasmFailsClosed(p.spec))
    .filter((p) => matchesTraffic(p, site) && site.subjects.some((s) => policyApplies(input, p, s)))
    .sort(
      (a, b) => phase(a) - phase(b) || (b.spec.priority ?? 0) - (a.spec.priority ?? 0) || (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0),
    );
}

/** Istio's name of a plugin's filter: the extension config it would have loaded. */
function filterName(p: Plugin): string {
  return `extensions.istio.io/wasmplugin/${p.metadata.namespace}.${p.metadata.name}`;
}

/**
 * The deny-all HTTP filters standing in for the plugins that select this HTTP listener. Istio puts NETWORK
 * plugins in front of the HTTP connection manager too; vmesh's proxy takes no network RBAC there, so their
 * substitute is the HTTP one: every request is refused (403) where Envoy would close the connection.
 */
export function wasmHttpFilters(input: TranslateInput, site: WasmSite): HttpFilter[] {
  return failClosedPlugins(input, site, ['HTTP', 'NETWORK']).map((p) => ({
    name: filterName(p),
    typed_config: typedConfig('httpRbac', { rules: {}, rules_stat_prefix: DENY_STAT_PREFIX }),
  }));
}

/** The deny-all network filters standing in for the NETWORK plugins that select this listener. */
export function wasmNetworkFilters(input: TranslateInput, site: WasmSite): Filter[] {
  return failClosedPlugins(input, site, ['NETWORK']).map((p) => ({
    name: filterName(p),
    typed_config: typedConfig('networkRbac', { rules: {}, stat_prefix: DENY_STAT_PREFIX }),
  }));
}
