import type { Logger } from '../lib/logger.js';

/**
 * For the long-running commands (controller, agent): print one JSON ready line on stdout for systemd and
 * scripts, then run until SIGTERM or SIGINT and stop cleanly.
 */
export async function serveUntilSignal(ready: Record<string, unknown>, stop: () => Promise<void>, logger: Logger): Promise<void> {
  process.stdout.write(`${JSON.stringify({ ready: true, ...ready })}\n`);
  await new Promise<void>((resolve) => {
    const onSignal = (sig: string) => {
      logger.info({ signal: sig }, 'stopping');
      stop().then(resolve, resolve);
    };
    process.once('SIGTERM', () => onSignal('SIGTERM'));
    process.once('SIGINT', () => onSignal('SIGINT'));
  });
}
