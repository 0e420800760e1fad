import type { HostStatus } from '../api/model.js';

export interface WorkloadHealthReport {
  readonly namespace: string;
  readonly name: string;
  readonly healthy: boolean;
}

export interface ServedIdentity {
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly uid?: number;
}

const servedKey = (i: ServedIdentity) => `${i.namespace}/${i.serviceAccount}|${i.uid ?? '-'}`;

/**
 * Workload health and host liveness as agents report them. A host that stops reporting for
 * `hostTimeoutMs` is not live, and its workloads leave load balancing until it reports again.
 */
export class HealthTracker {
  private readonly lastSeen = new Map<string, number>();
  private readonly workloads = new Map<string, boolean>();
  private readonly live = new Set<string>();
  /** Per host, `namespace/serviceAccount|uid` of every identity its proxy presents (uid `-` when none). */
  private readonly serving = new Map<string, ReadonlySet<string>>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly opts: {
      hostTimeoutMs: number;
      onChange: () => void;
      now?: () => number;
      /**
       * Controllers sharing a store: when any of them last heard from the host (written at most every `slackMs`).
       * A host whose agent moved to another controller has stopped reporting here, but is not silent.
       */
      seenElsewhere?: { at(host: string): number | undefined; readonly slackMs: number };
    },
  ) {}

  private now(): number {
    return (this.opts.now ?? Date.now)();
  }

  report(host: string, workloads: readonly WorkloadHealthReport[]): void {
    let changed = !this.live.has(host);
    this.lastSeen.set(host, this.now());
    this.live.add(host);
    for (const w of workloads) {
      const key = `${w.namespace}/${w.name}`;
      if (this.workloads.get(key) !== w.healthy) changed = true;
      this.workloads.set(key, w.healthy);
    }
    if (changed) this.opts.onChange();
  }

  /** What the host's agent said its proxy presents, replacing what it said before. */
  recordServing(host: string, identities: ReadonlyArray<ServedIdentity>): void {
    this.serving.set(host, new Set(identities.map(servedKey)));
  }

  /** The live host's proxy presents this identity (for this uid): a registration is in effect there. */
  serves(host: string, id: ServedIdentity): boolean {
    return this.live.has(host) && !!this.serving.get(host)?.has(servedKey(id));
  }

  /** Re-evaluates liveness; called periodically and by tests with an injected clock. */
  check(): void {
    let changed = false;
    for (const host of this.live) {
      if (this.now() - (this.lastSeen.get(host) ?? 0) > this.opts.hostTimeoutMs && !this.reportsElsewhere(host)) {
        this.live.delete(host);
        changed = true;
      }
    }
    if (changed) this.opts.onChange();
  }

  /** Another controller heard from the host after we last did, recently enough. */
  private reportsElsewhere(host: string): boolean {
    const e = this.opts.seenElsewhere;
    const at = e?.at(host);
    return (
      e !== undefined && at !== undefined && at > (this.lastSeen.get(host) ?? 0) && this.now() - at <= this.opts.hostTimeoutMs + e.slackMs
    );
  }

  /** `unknown` until the host's agent first reports; `silent` once it stopped. */
  hostState(host: string): 'live' | 'silent' | 'unknown' {
    return this.live.has(host) ? 'live' : this.lastSeen.has(host) ? 'silent' : 'unknown';
  }

  isHostLive(host: string): boolean {
    return this.live.has(host);
  }

  /** undefined when no agent has reported on this workload yet. */
  workloadHealthy(namespace: string, name: string): boolean | undefined {
    return this.workloads.get(`${namespace}/${name}`);
  }

  forgetHost(host: string): void {
    this.live.delete(host);
    this.lastSeen.delete(host);
    this.serving.delete(host);
    this.opts.onChange();
  }

  hosts(): HostStatus[] {
    return [...this.lastSeen.entries()].map(([name, lastSeen]) => ({ name, lastSeen, live: this.live.has(name) }));
  }

  start(intervalMs = Math.max(1000, Math.floor(this.opts.hostTimeoutMs / 3))): void {
    this.timer ??= setInterval(() => this.check(), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
