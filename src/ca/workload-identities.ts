import { backoffDelay } from '../lib/backoff.js';
import type { Logger } from '../lib/logger.js';
import { renewalTime } from './join-client.js';
import { parseSpiffeId } from './spiffe.js';
import type { WorkloadCert } from './workload-client.js';

export interface WorkloadIdentitiesOptions {
  /** Asks the controller to sign a fresh key for the identity (signWorkloadCert). */
  readonly sign: (namespace: string, serviceAccount: string) => Promise<WorkloadCert>;
  readonly logger: Logger;
  /** Called after any certificate or the trust bundle changed. */
  readonly onChange: () => void;
  readonly now?: () => number;
}

interface Entry {
  namespace: string;
  serviceAccount: string;
  cert?: WorkloadCert;
  timer?: NodeJS.Timeout;
  failures: number;
  inFlight: boolean;
}

// setTimeout's limit; longer waits are re-armed.
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * The agent's workload identities: one key and certificate per SPIFFE id wanted on this host, each renewed
 * at 50-80 % of its lifetime (jittered per certificate, so a fleet does not renew at once) with a fresh key.
 * Old certificates stay in use until their replacement arrives, so a failed renewal costs nothing until expiry.
 */
export class WorkloadIdentities {
  private readonly entries = new Map<string, Entry>();
  private bundlePem: string | undefined;
  private stopped = false;

  constructor(private readonly opts: WorkloadIdentitiesOptions) {}

  /** Sets the identities this host needs (SPIFFE ids of workloads); fetches new ones, forgets the rest. */
  setWanted(spiffeIds: Iterable<string>): void {
    const wanted = new Set<string>();
    for (const uri of spiffeIds) {
      const id = parseSpiffeId(uri);
      if (!id.ok || id.value.kind !== 'workload') continue;
      wanted.add(uri);
      if (!this.entries.has(uri)) {
        const e: Entry = { namespace: id.value.namespace, serviceAccount: id.value.serviceAccount, failures: 0, inFlight: false };
        this.entries.set(uri, e);
        this.fetch(uri, e);
      }
    }
    let dropped = false;
    for (const [uri, e] of this.entries) {
      if (wanted.has(uri)) continue;
      if (e.timer) clearTimeout(e.timer);
      this.entries.delete(uri);
      dropped = dropped || e.cert !== undefined;
    }
    if (dropped) this.opts.onChange();
  }

  /** Re-signs every identity now (the controller announced another trust bundle: a root rotation). */
  refreshAll(): void {
    for (const [uri, e] of this.entries) {
      if (e.timer) clearTimeout(e.timer);
      e.timer = undefined;
      this.fetch(uri, e);
    }
  }

  get(spiffeId: string): WorkloadCert | undefined {
    return this.entries.get(spiffeId)?.cert;
  }

  all(): WorkloadCert[] {
    return [...this.entries.values()].flatMap((e) => (e.cert ? [e.cert] : []));
  }

  /** The newest trust bundle any signing returned. */
  trustBundle(): string | undefined {
    return this.bundlePem;
  }

  stop(): void {
    this.stopped = true;
    for (const e of this.entries.values()) if (e.timer) clearTimeout(e.timer);
  }

  private fetch(uri: string, e: Entry): void {
    if (e.inFlight || this.stopped) return;
    e.inFlight = true;
    this.opts
      .sign(e.namespace, e.serviceAccount)
      .then((cert) => {
        if (this.entries.get(uri) !== e) return;
        e.cert = cert;
        e.failures = 0;
        this.bundlePem = cert.trustBundlePem;
        this.opts.logger.info({ spiffeId: uri, notAfter: cert.notAfter.toISOString() }, 'workload certificate issued');
        this.schedule(uri, e, renewalTime(cert.notBefore, cert.notAfter).getTime() - this.now());
        this.opts.onChange();
      })
      .catch((err: unknown) => {
        if (this.entries.get(uri) !== e) return;
        e.failures++;
        const wait = Math.max(500, backoffDelay(e.failures, { baseMs: 1000, maxMs: 60_000 }));
        this.opts.logger.warn({ spiffeId: uri, err: (err as Error).message, retryInMs: wait }, 'workload certificate not issued');
        this.schedule(uri, e, wait);
      })
      .finally(() => {
        e.inFlight = false;
      });
  }

  private schedule(uri: string, e: Entry, ms: number): void {
    if (this.stopped) return;
    if (e.timer) clearTimeout(e.timer);
    const wait = Math.max(0, ms);
    e.timer = setTimeout(
      () => {
        e.timer = undefined;
        if (wait > MAX_TIMER_MS) this.schedule(uri, e, wait - MAX_TIMER_MS);
        else this.fetch(uri, e);
      },
      Math.min(wait, MAX_TIMER_MS),
    );
    e.timer.unref();
  }

  private now(): number {
    return (this.opts.now ?? Date.now)();
  }
}
