import { connect } from 'node:net';
import type * as grpc from '@grpc/grpc-js';
import type {
  HealthReport,
  HealthReportAck__Output,
  LocalWorkload__Output,
  ServedIdentity,
  WorkloadHealth,
} from '../api/controller-proto.js';
import { edgeToMessage } from '../api/edge-messages.js';
import type { EdgeSample } from '../api/edges.js';
import { backoffDelay, sleep } from '../lib/backoff.js';
import type { Logger } from '../lib/logger.js';

export interface ProbeResult {
  readonly healthy: boolean;
  readonly detail: string;
}

/** A workload is healthy when every port it registered accepts a TCP connection. */
export async function tcpProbe(w: LocalWorkload__Output, timeoutMs = 1000): Promise<ProbeResult> {
  for (const [name, port] of Object.entries(w.ports)) {
    const r = await new Promise<string | undefined>((resolve) => {
      const s = connect({ host: w.address, port, timeout: timeoutMs });
      s.once('connect', () => {
        s.destroy();
        resolve(undefined);
      });
      s.once('timeout', () => {
        s.destroy();
        resolve('timeout');
      });
      s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    });
    if (r !== undefined) return { healthy: false, detail: `${name} ${w.address}:${port}: ${r}` };
  }
  return { healthy: true, detail: '' };
}

type ReportClient = grpc.Client & {
  ReportHealth(req: HealthReport, cb: (e: grpc.ServiceError | null, res?: HealthReportAck__Output) => void): void;
};

/**
 * The agent's side of ReportHealth: report, learn from the answer which workloads the host runs and
 * when to report next, probe them, repeat. Failures back off without losing the loop.
 */
export class HealthReporter {
  private statuses: WorkloadHealth[] = [];
  private workloads: LocalWorkload__Output[] = [];
  private readonly abort = new AbortController();
  private loop: Promise<void> | undefined;
  private probing: Promise<void> | undefined;

  constructor(
    private readonly opts: {
      readonly client: ReportClient;
      readonly logger: Logger;
      readonly probe?: (w: LocalWorkload__Output) => Promise<ProbeResult>;
      readonly defaultIntervalMs?: number;
      /**
       * How often the host's workloads are probed between reports (5 s by default). A change of any workload's
       * health is reported at once, so an app that starts or dies leaves or joins load balancing within one
       * probe period rather than up to two report intervals later.
       */
      readonly probeIntervalMs?: number;
      /** Every answer: the host's registered workloads and the controller's trust bundle hash. */
      readonly onAck?: (ack: HealthReportAck__Output) => void;
      /** The hash of the trust bundle this host holds, sent with every report. */
      readonly bundleSha256?: () => string;
      /** The host's edge telemetry, sent with every report (cumulative counters). */
      readonly edges?: () => Promise<readonly EdgeSample[]>;
      /** The identities the host's proxy presents now, sent with every report. */
      readonly serving?: () => readonly ServedIdentity[];
    },
  ) {}

  private wake: (() => void) | undefined;
  private nudged = false;

  /** Reports now rather than at the next interval: what the host serves changed, and someone may be waiting on it. */
  reportSoon(): void {
    this.nudged = true;
    this.wake?.();
  }

  start(): void {
    this.loop ??= this.run();
    this.probing ??= this.probeLoop();
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await Promise.all([this.loop, this.probing]);
  }

  localWorkloads(): readonly LocalWorkload__Output[] {
    return this.workloads;
  }

  /** One report and one round of probes; exported for tests and for an immediate report after start. */
  async reportOnce(): Promise<number> {
    const edges = await this.collectEdges();
    const report: HealthReport = {
      workloads: this.statuses,
      trustBundleSha256: this.opts.bundleSha256?.() ?? '',
      edges: edges.map(edgeToMessage),
      serving: [...(this.opts.serving?.() ?? [])],
    };
    const ack = await new Promise<HealthReportAck__Output>((resolve, reject) =>
      this.opts.client.ReportHealth(report, (e, res) => (e || !res ? reject(e) : resolve(res))),
    );
    this.workloads = ack.workloads;
    this.opts.onAck?.(ack);
    this.statuses = await this.probeAll(ack.workloads);
    return Number(ack.nextReportMs) || (this.opts.defaultIntervalMs ?? 10_000);
  }

  private probeAll(workloads: readonly LocalWorkload__Output[]): Promise<WorkloadHealth[]> {
    const probe = this.opts.probe ?? ((w: LocalWorkload__Output) => tcpProbe(w));
    return Promise.all(workloads.map(async (w) => ({ namespace: w.namespace, name: w.name, ...(await probe(w)) })));
  }

  /** Probes between reports; what differs from the statuses last computed is reported now. */
  private async probeLoop(): Promise<void> {
    while (await sleep(this.opts.probeIntervalMs ?? 5000, this.abort.signal)) {
      if (this.workloads.length === 0) continue;
      const next = await this.probeAll(this.workloads);
      const was = new Map(this.statuses.map((s) => [`${s.namespace}/${s.name}`, s.healthy]));
      if (next.some((s) => was.get(`${s.namespace}/${s.name}`) !== s.healthy)) {
        this.statuses = next;
        this.reportSoon();
      }
    }
  }

  /** Telemetry rides along with health: a proxy that cannot answer costs the graph a report, never the host its liveness. */
  private async collectEdges(): Promise<readonly EdgeSample[]> {
    if (!this.opts.edges) return [];
    try {
      return await this.opts.edges();
    } catch (e) {
      this.opts.logger.warn({ err: (e as Error).message }, 'edge telemetry not collected; reporting health without it');
      return [];
    }
  }

  private async run(): Promise<void> {
    let failures = 0;
    let wait = 0;
    while (!this.abort.signal.aborted) {
      await this.pause(wait);
      if (this.abort.signal.aborted) return;
      this.nudged = false;
      try {
        // A report sent before the workloads were known carried no probes: send the probed state at once.
        const knewNone = this.statuses.length === 0;
        const next = await this.reportOnce();
        failures = 0;
        wait = knewNone && this.statuses.length > 0 ? 0 : next;
      } catch (e) {
        failures++;
        wait = backoffDelay(failures, { baseMs: 500, maxMs: 3000 });
        this.opts.logger.warn({ err: (e as Error).message, retryInMs: wait }, 'health report failed');
      }
    }
  }

  /** Sleeps `ms`, or less when stopped or nudged (reportSoon). */
  private async pause(ms: number): Promise<void> {
    if (this.nudged) return;
    const woken = new AbortController();
    this.wake = () => woken.abort();
    const stop = () => woken.abort();
    this.abort.signal.addEventListener('abort', stop, { once: true });
    await sleep(ms, woken.signal);
    this.abort.signal.removeEventListener('abort', stop);
    this.wake = undefined;
  }
}
