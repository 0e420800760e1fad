import { networkInterfaces as osInterfaces } from 'node:os';
import si from 'systeminformation';
import type { HostFacts } from '../api/host-record.js';

// Link-local addresses need a zone to be reachable and loopback is never an address another host can use.
function usable(ip: string): boolean {
  return ip !== '' && !/^fe[89ab][0-9a-f]:/i.test(ip) && ip !== '::1' && !ip.startsWith('127.');
}

/** What the agent reports about its host when it joins (informational: shown by the CLI and UI). */
export async function gatherHostFacts(): Promise<HostFacts> {
  const [os, cpu, mem, ifaces] = await Promise.all([si.osInfo(), si.cpu(), si.mem(), si.networkInterfaces()]);
  const ipv4 = new Set<string>();
  const ipv6 = new Set<string>();
  for (const i of Array.isArray(ifaces) ? ifaces : [ifaces]) {
    if (i.internal) continue;
    if (usable(i.ip4)) ipv4.add(i.ip4);
    if (usable(i.ip6)) ipv6.add(i.ip6.split('%')[0] ?? i.ip6);
  }
  // systeminformation reports one address per family and interface; secondary addresses come from node.
  for (const list of Object.values(osInterfaces())) {
    for (const a of list ?? []) {
      if (a.internal || !usable(a.address)) continue;
      (a.family === 'IPv4' ? ipv4 : ipv6).add(a.address);
    }
  }
  return {
    hostname: os.hostname,
    osDistro: os.distro,
    osRelease: os.release,
    kernel: os.kernel,
    arch: os.arch,
    cpuBrand: [cpu.manufacturer, cpu.brand].filter(Boolean).join(' '),
    cpuCores: cpu.cores,
    memoryTotalBytes: mem.total,
    ipv4: [...ipv4].sort(),
    ipv6: [...ipv6].sort(),
  };
}
