import type { CaptureConfig } from '../api/capture.js';
import { ErrorCode, vmeshError } from '../lib/errors.js';
import { type NftSession, openNftSession } from '../lib/native.js';
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

/**
 * The tie between capture and one long-lived process (the agent): with nftables, a libnftables session whose
 * socket owns the table, so the kernel deletes the table the moment the process is gone, however it ends.
 * iptables has no such thing: its rules stay until someone removes them (undefined here).
 */
export function openCaptureSession(backend: CaptureConfig['backend']): NftSession | undefined {
  requireRoot('capture');
  return backend === 'nftables' ? openNftSession() : undefined;
}

/**
 * Installs (or replaces) the capture rules atomically; a rejected rule set leaves the old one in place.
 * Without a session (the CLI) the rules are persistent: they stay until `vmesh capture remove`.
 */
export async function installCapture(cfg: CaptureConfig, session?: NftSession): Promise<void> {
  requireRoot('capture install');
  const plan = planCapture(cfg);
  if (cfg.backend === 'nftables') installNft(plan, session);
  else await installIptables(plan, ['ipv4', 'ipv6']);
}

export async function removeCapture(backend: CaptureConfig['backend'] | 'all', session?: NftSession): Promise<void> {
  requireRoot('capture remove');
  if (backend === 'nftables' || backend === 'all') removeNft(session);
  if (backend === 'iptables' || backend === 'all') await removeIptables(['ipv4', 'ipv6']);
}
