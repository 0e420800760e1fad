import type { Cidr } from '../lib/addr.js';

export type CaptureBackend = 'nftables' | 'iptables';

/** `'*'` captures every port not excluded; a list captures only those ports. */
export type PortSelection = '*' | readonly number[];

/**
 * Everything the capture rules depend on. Built (and validated) by the config module; the rule
 * generators are pure functions of it.
 */
export interface CaptureConfig {
  readonly backend: CaptureBackend;
  /** The proxy's and agent's own traffic is never captured: it runs under this uid or gid. */
  readonly proxyUid: number;
  readonly proxyGid: number;
  /** More local users/groups whose traffic must go straight out (backup agents, monitoring...). */
  readonly excludeUids: readonly number[];
  readonly excludeGids: readonly number[];
  readonly outboundPort: number;
  readonly inboundPort: number;
  readonly dnsPort: number;
  /** Controller addresses: control traffic must survive a dead proxy, so it is never redirected. */
  readonly controllerAddresses: readonly Cidr[];
  readonly inbound: {
    readonly ports: PortSelection;
    readonly excludePorts: readonly number[];
  };
  readonly outbound: {
    /** Destinations whose TCP traffic goes through the proxy (`'*'` = all). */
    readonly includeCidrs: '*' | readonly Cidr[];
    readonly excludeCidrs: readonly Cidr[];
    /** Ports captured whatever the destination (Istio's --include-outbound-ports). */
    readonly includePorts: readonly number[];
    readonly excludePorts: readonly number[];
  };
  /** Redirect udp+tcp 53 from local processes to the agent's DNS proxy. */
  readonly captureDns: boolean;
  /** Capture SSH (port 22) too; off unless explicitly asked, so a broken proxy cannot lock operators out. */
  readonly captureSsh: boolean;
  readonly ipv6: boolean;
  /** Source address the proxy uses for inbound passthrough to local apps (Istio's 127.0.0.6). */
  readonly passthroughSource: string;
}

/** Ports of vmesh itself: never captured inbound, whatever the user lists. */
export const MESH_PORTS = Object.freeze({
  admin: 15000,
  outbound: 15001,
  inbound: 15006,
  controllerXdsPlain: 15010,
  controllerGrpc: 15012,
  controllerApi: 15014,
  health: 15020,
  dns: 15053,
});

export const SSH_PORT = 22;

/**
 * The name `capture verify` asks through port 53. The agent's DNS proxy answers it itself, at once (NXDOMAIN:
 * `.invalid` never exists), so an answer proves the redirect to the DNS proxy whatever the upstream resolvers do.
 */
export const CAPTURE_PROBE_NAME = 'vmesh-verify.invalid';
