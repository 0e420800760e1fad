import type { TLSSocket } from 'node:tls';
import { evaluateTag, type TagAttribute, type TagAttributes } from '../../api/tag-expression.js';
import type { OrigDstAddr, RemoteAddr } from '../../lib/addr.js';
import type { StatsConfig } from '../proxy-config.js';
import type { ConnectionContext } from '../runtime-types.js';

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

/** What a request (the Exchange) offers for its attributes. */
export interface RequestFacts {
  readonly method: string;
  readonly authority: string;
  readonly path: string;
  readonly scheme: string;
  readonly protocol: string;
  readonly requestId: string | undefined;
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly status: number;
  readonly routeName: string | undefined;
  readonly upstreamHost: string | undefined;
  readonly cluster: string | undefined;
  readonly peerIdentity: string | undefined;
  readonly remote: RemoteAddr;
  readonly originalDst: OrigDstAddr;
  readonly conn: Pick<ConnectionContext, 'tls' | 'socket'>;
  header(name: string): string | undefined;
}

export function requestAttribute(x: RequestFacts, name: TagAttribute): string | number | boolean | undefined {
  switch (name) {
    case 'request.method':
      return x.method;
    case 'request.host':
      return x.authority;
    case 'request.path':
      return x.path;
    case 'request.url_path': {
      const q = x.path.indexOf('?');
      return q < 0 ? x.path : x.path.slice(0, q);
    }
    case 'request.scheme':
      return x.scheme;
    case 'request.protocol':
      return x.protocol;
    case 'request.id':
      return x.requestId ?? x.header('x-request-id');
    case 'request.useragent':
      return x.header('user-agent');
    case 'request.referer':
      return x.header('referer');
    case 'request.size':
      return x.bytesIn;
    case 'response.code':
      return x.status;
    case 'response.size':
      return x.bytesOut;
    case 'xds.route_name':
      return x.routeName;
    default:
      return connectionAttribute(
        {
          source: x.remote,
          destination: x.originalDst,
          mtls: x.peerIdentity !== undefined,
          serverName: x.conn.tls ? (x.conn.socket as TLSSocket).servername || undefined : undefined,
          upstreamHost: x.upstreamHost,
          cluster: x.cluster,
        },
        name,
      );
  }
}

/** Evaluates every expression of `config` once; absent values become Istio's `unknown`. */
export function metricTags(config: StatsConfig, attrs: TagAttributes): MetricTags {
  return { config, values: config.expressions.map((e) => evaluateTag(e, attrs)) };
}
