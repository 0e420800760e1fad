import type { CaptureConfig } from '../api/capture.js';
import { ErrorCode, vmeshError } from '../lib/errors.js';
import { installIptables, removeIptables } from './apply-iptables.js';
import { installNft, removeNft } from './apply-nft.js';
import { planCapture } from './plan.js';
import { renderIptablesInstall } from './render-iptables.js';
import { renderNftInstall } from './render-nft.js';

export function requireRoot(what: string): void {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw vmeshError(ErrorCode.NotPrivileged, `${what} needs root (CAP_NET_ADMIN to change netfilter rules): run it with sudo`);
  }
}

/** What install would apply, exactly: the nftables JSON batch, or iptables-restore input per family. */
export function renderCapture(
  cfg: CaptureConfig,
): { backend: 'nftables'; batch: unknown } | { backend: 'iptables'; ipv4: string; ipv6: string } {
  const plan = planCapture(cfg);
  if (cfg.backend === 'nftables') return { backend: 'nftables', batch: renderNftInstall(plan) };
  return { backend: 'iptables', ipv4: renderIptablesInstall(plan, 'ipv4'), ipv6: renderIptablesInstall(plan, 'ipv6') };
}

/** Installs (or replaces) the capture rules atomically; a rejected rule set leaves the old one in place. */
export async function installCapture(cfg: CaptureConfig): Promise<void> {
  requireRoot('capture install');
  const plan = planCapture(cfg);
  if (cfg.backend === 'nftables') installNft(plan);
  else await installIptables(plan, ['ipv4', 'ipv6']);
}

export async function removeCapture(backend: CaptureConfig['backend'] | 'all'): Promise<void> {
  requireRoot('capture remove');
  if (backend === 'nftables' || backend === 'all') removeNft();
  if (backend === 'iptables' || backend === 'all') await removeIptables(['ipv4', 'ipv6']);
}
