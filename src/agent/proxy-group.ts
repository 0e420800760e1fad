import { ErrorCode, vmeshError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';

/**
 * Capture lets the proxy group's traffic through uncaptured, so the agent (and the workers it forks) must run
 * with it. Started as root with another group, the agent takes it itself, before it opens any socket.
 */
export function takeProxyGroup(proxyGid: number, logger: Logger): void {
  const gid = process.getegid?.();
  if (gid === proxyGid) return;
  if (process.getuid?.() === 0 && process.setgid && process.setgroups) {
    process.setgroups([proxyGid]);
    process.setgid(proxyGid);
    logger.info({ from: gid, gid: proxyGid }, 'agent runs as root: switched to the proxy group, whose traffic capture lets through');
    return;
  }
  throw vmeshError(
    ErrorCode.InvalidConfig,
    `agent runs with group ${gid}, but capture excludes group ${proxyGid}: its own traffic would be captured (run it as root, or with Group=${proxyGid}, or --no-capture)`,
  );
}
