import type { ClientHttp2Session } from 'node:http2';
import type { Http2Keepalive } from '../proxy-config.js';

/**
 * Envoy's HTTP/2 connection_keepalive on one upstream session: a PING every interval (plus a random jitter, so
 * sessions opened together do not ping together); a PING unanswered for `timeoutMs` means the peer or the path is
 * gone, and `onDead` closes the session so the pool opens another. One timer per session, never per request;
 * unref'd, so it never holds the process open, and cleared when the session closes.
 */
export function startKeepalive(
  session: ClientHttp2Session,
  ka: Http2Keepalive,
  onDead: () => void,
  random: () => number = Math.random,
): void {
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const arm = (ms: number, fn: () => void) => {
    timer = setTimeout(fn, ms);
    timer.unref();
  };
  const next = () => arm(ka.intervalMs + Math.floor(random() * ((ka.intervalMs * ka.jitterPercent) / 100)), ping);
  const expire = () => {
    if (stopped) return;
    stopped = true;
    onDead();
  };
  const acked = (err: Error | null) => {
    if (stopped || err) return;
    clearTimeout(timer);
    next();
  };
  function ping(): void {
    if (stopped || session.destroyed || session.closed) return;
    arm(ka.timeoutMs, expire);
    // false: a PING could not be sent now (never more than this one is outstanding); try again next interval.
    if (!session.ping(acked)) {
      clearTimeout(timer);
      next();
    }
  }
  session.once('close', () => {
    stopped = true;
    clearTimeout(timer);
  });
  next();
}
