import { evaluateTag, type TagAttribute, type TagAttributes } from '../../api/tag-expression.js';
import type { StatsConfig } from '../proxy-config.js';

/** A request's or connection's values for the stats config's tag expressions, and the config they go with. */
export interface MetricTags {
  readonly config: StatsConfig;
  readonly values: readonly string[];
}

/** `address:port` (IPv6 in brackets or not) -> [address, port]. */
export function splitHostPort(hostPort: string | undefined): [string, number] | undefined {
  if (!hostPort) return undefined;
  const i = hostPort.lastIndexOf(':');
  if (i <= 0) return undefined;
  const port = Number(hostPort.slice(i + 1));
  const host = hostPort.slice(0, i).replace(/^\[(.*)\]$/, '$1');
  return Number.isInteger(port) ? [host, port] : undefined;
}

/** Attributes of the connection alone (all a TCP connection has), shared by requests. */
export interface ConnectionAttributes {
  readonly source?: { readonly address: string; readonly port: number };
  readonly destination?: { readonly address: string; readonly port: number };
  readonly mtls: boolean;
  readonly serverName: string | undefined;
  readonly upstreamHost: string | undefined;
  readonly cluster: string | undefined;
}

export function connectionAttribute(c: ConnectionAttributes, name: TagAttribute): string | number | boolean | undefined {
  switch (name) {
    case 'source.address':
      return c.source?.address;
    case 'source.port':
      return c.source?.port;
    case 'destination.address':
      return c.destination?.address;
    case 'destination.port':
      return c.destination?.port;
    case 'connection.mtls':
      return c.mtls;
    case 'connection.requested_server_name':
      return c.serverName;
    case 'upstream.address':
      return splitHostPort(c.upstreamHost)?.[0];
    case 'upstream.port':
      return splitHostPort(c.upstreamHost)?.[1];
    case 'xds.cluster_name':
      return c.cluster;
    default:
      return undefined;
  }
}

/** Evaluates every expression of `config` once; absent values become Istio's `unknown`. */
export function metricTags(config: StatsConfig, attrs: TagAttributes): MetricTags {
  return { config, values: config.expressions.map((e) => evaluateTag(e, attrs)) };
}
