import { unixPathProblem } from '../../api/unix-address.js';
import type { Address__Output } from '../../generated/envoy/config/core/v3/Address.js';
import type { ClusterLoadAssignment__Output } from '../../generated/envoy/config/endpoint/v3/ClusterLoadAssignment.js';
import type { Struct__Output } from '../../generated/google/protobuf/Struct.js';
import type { Decoded } from '../../xds/envoy-types.js';
import type { EndpointWorkload, UpstreamEndpoint } from '../proxy-config.js';
import { fail, list, msg, num, part, str, structString, wrapped } from './read.js';

/** Endpoint metadata Istio (and the translator) use to mark endpoints whose host runs a proxy: they get mTLS. */
const TLS_MODE_FILTER = 'envoy.transport_socket_match';

/** `istio.workload` = `name;namespace;canonical service;canonical revision;cluster`, plus `vmesh.io.service_account`. */
type FilterMetadata = Readonly<Record<string, Decoded<Struct__Output>>>;

function endpointWorkload(fm: FilterMetadata | undefined): EndpointWorkload | undefined {
  const meta = fm ? structString(fm.istio, 'workload') : undefined;
  if (!meta) return undefined;
  const [name = '', namespace = '', app = '', version = ''] = meta.split(';');
  if (!name || !namespace) return undefined;
  const sa = structString(fm?.['vmesh.io'], 'service_account');
  return { name, namespace, app: app || name, version: version || 'latest', ...(sa ? { serviceAccount: sa } : {}) };
}

/** Envoy takes HEALTHY and UNKNOWN (never health checked) as routable; the rest are not. */
const ROUTABLE = new Set(['HEALTHY', 'UNKNOWN', 0, 1]);

export interface EndpointOptions {
  /** common_lb_config.locality_weighted_lb_config: locality weights split the traffic first. */
  readonly localityWeighted: boolean;
}

type EndpointAddress = { address: string; port: number; pipe?: true };

/** A socket address, or a Pipe (a unix domain socket: `/path`, or `@name` in Linux's abstract namespace). */
function endpointAddress(ep: { readonly address?: Decoded<Address__Output> | null }, path: string): EndpointAddress {
  const addr = msg(ep.address, `${path}.address`);
  const pipe = msg(addr?.pipe, `${path}.address.pipe`);
  if (pipe) {
    const p = str(pipe.path, `${path}.address.pipe.path`);
    const problem = unixPathProblem(p);
    if (problem) fail(`${path}.address.pipe.path`, problem);
    return { address: p, port: 0, pipe: true };
  }
  const sa = msg(addr?.socket_address, `${path}.address.socket_address`);
  if (!sa) fail(`${path}.address`, 'only socket addresses and pipes are supported');
  const address = str(sa.address, `${path}.address.socket_address.address`);
  if (sa.port_specifier === 'named_port' || (typeof sa.named_port === 'string' && sa.named_port !== '')) {
    fail(`${path}.address.socket_address.named_port`, 'not supported');
  }
  const port = num(sa.port_value, `${path}.address.socket_address.port_value`);
  if (!address) fail(`${path}.address.socket_address.address`, 'empty address');
  if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`${path}.address.socket_address.port_value`, `${port} is not a port`);
  return { address, port };
}

/**
 * A ClusterLoadAssignment's endpoints, flattened: locality as `region/zone/sub_zone`, the locality's priority,
 * health, mTLS marking. With locality-weighted LB the locality weight is folded into the endpoint weights, so a
 * locality's endpoints together carry its share of the traffic.
 */
export function compileEndpoints(
  cla: Decoded<ClusterLoadAssignment__Output> | undefined,
  path: string,
  opts: EndpointOptions,
): UpstreamEndpoint[] {
  if (!cla) return [];
  const pre = path ? `${path}.` : '';
  const policy = msg(cla.policy, `${pre}policy`);
  const factor = wrapped(policy?.overprovisioning_factor, `${pre}policy.overprovisioning_factor`);
  if (factor !== undefined && factor !== 140) fail(`${pre}policy.overprovisioning_factor`, 'only the default 140 is supported');
  if (list(policy?.drop_overloads, `${pre}policy.drop_overloads`).length > 0) fail(`${pre}policy.drop_overloads`, 'not supported');
  const out: UpstreamEndpoint[] = [];
  list(cla.endpoints, `${pre}endpoints`).forEach((l, i) => {
    const lpath = `${pre}endpoints[${i}]`;
    const group = part(l, lpath);
    const loc = msg(group.locality, `${lpath}.locality`);
    const parts = [
      str(loc?.region, `${lpath}.locality.region`),
      str(loc?.zone, `${lpath}.locality.zone`),
      str(loc?.sub_zone, `${lpath}.locality.sub_zone`),
    ];
    const locality = parts.every((p) => p === '') ? '' : parts.join('/');
    const priority = num(group.priority, `${lpath}.priority`);
    const localityWeight = wrapped(group.load_balancing_weight, `${lpath}.load_balancing_weight`);
    const eps: UpstreamEndpoint[] = [];
    list(group.lb_endpoints, `${lpath}.lb_endpoints`).forEach((e, j) => {
      const epath = `${lpath}.lb_endpoints[${j}]`;
      const lbe = part(e, epath);
      const endpoint = msg(lbe.endpoint, `${epath}.endpoint`);
      if (!endpoint) fail(`${epath}.endpoint`, 'missing (named endpoints are not supported)');
      const { address, port, pipe } = endpointAddress(endpoint, `${epath}.endpoint`);
      const meta = msg(lbe.metadata, `${epath}.metadata`);
      const fm = msg(meta?.filter_metadata, `${epath}.metadata.filter_metadata`);
      const tlsMode = fm ? structString(fm[TLS_MODE_FILTER], 'tlsMode') : undefined;
      const status = lbe.health_status ?? 'UNKNOWN';
      const workload = endpointWorkload(fm);
      eps.push({
        address,
        port,
        ...(pipe ? { pipe } : {}),
        weight: wrapped(lbe.load_balancing_weight, `${epath}.load_balancing_weight`) ?? 1,
        healthy: ROUTABLE.has(status as string | number),
        locality,
        priority,
        mtls: tlsMode === 'istio',
        ...(workload ? { workload } : {}),
      });
    });
    if (opts.localityWeighted) {
      // Envoy drops localities without a weight when locality weighting is on.
      if (!localityWeight) return;
      const sum = eps.reduce((a, e) => a + e.weight, 0);
      for (const e of eps) out.push({ ...e, weight: sum > 0 ? (e.weight * localityWeight) / sum : 0 });
    } else out.push(...eps);
  });
  return out;
}
