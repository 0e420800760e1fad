import { type CaptureBackend, type CaptureConfig, MESH_PORTS, type PortSelection } from '../api/capture.js';
import { ipFamily, parseCidr, parsePort } from '../lib/addr.js';
import { ErrorCode, vmeshError } from '../lib/errors.js';
import { boolOf, type ConfigSources, deepFreeze, idOf, listOf, pick } from './sources.js';

/** Istio's proxy uid/gid, so hosts migrating from Istio keep their exclusions. */
export const DEFAULT_PROXY_ID = 1337;
export const DEFAULT_PASSTHROUGH_SOURCE = '127.0.0.6';

const BACKENDS: readonly CaptureBackend[] = ['nftables', 'iptables'];

function ports(values: string[], what: string): number[] {
  return values.map((v) => parsePort(v, what));
}

function portSelection(value: unknown, what: string): PortSelection {
  const items = listOf(value);
  if (items.length === 0 || (items.length === 1 && items[0] === '*')) return '*';
  if (items.includes('*')) throw vmeshError(ErrorCode.InvalidConfig, `${what}: "*" cannot be combined with ports`);
  return ports(items, what);
}

/**
 * The capture settings of one host, merged from flags, environment and the agent config file's
 * `capture:` section, validated and frozen.
 */
export function loadCaptureConfig(src: ConfigSources): CaptureConfig {
  const get = (flag: string, env: string, key: string) => pick(src, flag, env, `capture.${key}`);

  const backend = String(get('backend', 'VMESH_CAPTURE_BACKEND', 'backend') ?? 'nftables');
  if (!BACKENDS.includes(backend as CaptureBackend)) {
    throw vmeshError(ErrorCode.InvalidConfig, `capture backend: unknown "${backend}", want one of ${BACKENDS.join(', ')}`);
  }

  const includeCidrsRaw = listOf(get('outboundCidrs', 'VMESH_CAPTURE_OUTBOUND_CIDRS', 'outbound.includeCidrs'));
  const passthrough = String(
    get('passthroughSource', 'VMESH_CAPTURE_PASSTHROUGH_SOURCE', 'passthroughSource') ?? DEFAULT_PASSTHROUGH_SOURCE,
  );
  if (ipFamily(passthrough) !== 'IPv4') {
    throw vmeshError(ErrorCode.InvalidAddress, `capture passthrough source: "${passthrough}" is not an IPv4 address`);
  }

  const cfg: CaptureConfig = {
    backend: backend as CaptureBackend,
    proxyUid: idOf(get('proxyUid', 'VMESH_PROXY_UID', 'proxyUid'), 'proxy uid', DEFAULT_PROXY_ID),
    proxyGid: idOf(get('proxyGid', 'VMESH_PROXY_GID', 'proxyGid'), 'proxy gid', DEFAULT_PROXY_ID),
    excludeUids: listOf(get('excludeUids', 'VMESH_CAPTURE_EXCLUDE_UIDS', 'excludeUids')).map((v) => idOf(v, 'exclude uid', 0)),
    excludeGids: listOf(get('excludeGids', 'VMESH_CAPTURE_EXCLUDE_GIDS', 'excludeGids')).map((v) => idOf(v, 'exclude gid', 0)),
    outboundPort: parsePort(get('outboundPort', 'VMESH_OUTBOUND_PORT', 'outboundPort') ?? MESH_PORTS.outbound, 'outbound port'),
    inboundPort: parsePort(get('inboundPort', 'VMESH_INBOUND_PORT', 'inboundPort') ?? MESH_PORTS.inbound, 'inbound port'),
    dnsPort: parsePort(get('dnsPort', 'VMESH_DNS_PORT', 'dnsPort') ?? MESH_PORTS.dns, 'DNS port'),
    controllerAddresses: listOf(get('controllerAddresses', 'VMESH_CONTROLLER_ADDRESSES', 'controllerAddresses')).map((v) =>
      parseCidr(v, 'controller address'),
    ),
    inbound: {
      ports: portSelection(get('inboundPorts', 'VMESH_CAPTURE_INBOUND_PORTS', 'inbound.ports'), 'inbound ports'),
      excludePorts: ports(
        listOf(get('excludeInboundPorts', 'VMESH_CAPTURE_EXCLUDE_INBOUND_PORTS', 'inbound.excludePorts')),
        'exclude inbound ports',
      ),
    },
    outbound: {
      includeCidrs:
        includeCidrsRaw.length === 0 || (includeCidrsRaw.length === 1 && includeCidrsRaw[0] === '*')
          ? '*'
          : includeCidrsRaw.map((v) => parseCidr(v, 'outbound include CIDR')),
      excludeCidrs: listOf(get('excludeOutboundCidrs', 'VMESH_CAPTURE_EXCLUDE_OUTBOUND_CIDRS', 'outbound.excludeCidrs')).map((v) =>
        parseCidr(v, 'outbound exclude CIDR'),
      ),
      includePorts: ports(
        listOf(get('includeOutboundPorts', 'VMESH_CAPTURE_INCLUDE_OUTBOUND_PORTS', 'outbound.includePorts')),
        'include outbound ports',
      ),
      excludePorts: ports(
        listOf(get('excludeOutboundPorts', 'VMESH_CAPTURE_EXCLUDE_OUTBOUND_PORTS', 'outbound.excludePorts')),
        'exclude outbound ports',
      ),
    },
    captureDns: boolOf(get('captureDns', 'VMESH_CAPTURE_DNS', 'dns'), 'capture DNS', true),
    captureSsh: boolOf(get('captureSsh', 'VMESH_CAPTURE_SSH', 'ssh'), 'capture SSH', false),
    ipv6: boolOf(get('ipv6', 'VMESH_CAPTURE_IPV6', 'ipv6'), 'capture IPv6', true),
    passthroughSource: passthrough,
  };
  checkConsistent(cfg);
  return deepFreeze(cfg);
}

function checkConsistent(cfg: CaptureConfig): void {
  const listeners = new Map<number, string>([
    [cfg.outboundPort, 'outbound port'],
    [cfg.inboundPort, 'inbound port'],
  ]);
  if (listeners.size < 2) throw vmeshError(ErrorCode.InvalidConfig, `capture: outbound and inbound port are both ${cfg.outboundPort}`);
  if (cfg.captureDns && listeners.has(cfg.dnsPort)) {
    throw vmeshError(ErrorCode.InvalidConfig, `capture: DNS port ${cfg.dnsPort} is also the ${listeners.get(cfg.dnsPort)}`);
  }
  if (cfg.inbound.ports !== '*' && cfg.inbound.ports.includes(cfg.inboundPort)) {
    throw vmeshError(ErrorCode.InvalidConfig, `capture inbound ports: ${cfg.inboundPort} is the proxy's own inbound port (a loop)`);
  }
}
