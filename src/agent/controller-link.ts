import type { HealthReportAck__Output as HealthReportAck } from '../api/controller-proto.js';
import { edgesFromSnapshot } from '../api/edges.js';
import { controllerChannelOptions, trustBundleSha256 } from '../ca/index.js';
import type { AgentConfig } from '../config/agent.js';
import { CONTROLLER_CHANNEL_OPTIONS } from '../lib/backoff.js';
import type { Logger } from '../lib/logger.js';
import { mergeSnapshots } from '../lib/metrics-registry.js';
import type { XdsSync } from '../xds/index.js';
import { type HostTls, renewIfDue } from './credentials.js';
import { HealthReporter } from './health-reporter.js';
import type { HostIdentities } from './host-identities.js';
import type { ProxyRunner } from './proxy-runner.js';
import { ReportHealthClient } from './report-client.js';

const RENEW_CHECK_MS = 30_000;

/**
 * The agent's standing with the controllers: health reports (with edge telemetry and what the proxy serves), the
 * host certificate's renewal, and a root rotation noticed in a report's answer.
 */
export class ControllerLink {
  // Made on start, so a startup that fails earlier leaves no channel open.
  private client: ReportHealthClient | undefined;
  private reporter: HealthReporter | undefined;
  private timer: NodeJS.Timeout | undefined;
  private refetched = { hash: '', at: 0 };
  private readonly renewed: Array<() => void> = [];
  private stopped = false;

  constructor(
    private readonly opts: {
      readonly cfg: AgentConfig;
      readonly logger: Logger;
      readonly controllers: string;
      readonly tls: HostTls;
      readonly sync: XdsSync;
      readonly identities: HostIdentities;
      readonly proxy: () => ProxyRunner | undefined;
    },
  ) {
    opts.identities.onServingChange(() => this.reporter?.reportSoon());
  }

  /** Called with new host credentials in place (the proxy presents the host certificate too). */
  onRenewed(f: () => void): void {
    this.renewed.push(f);
  }

  /** The local workloads the controller last named in an answer. */
  localWorkloads(): ReturnType<HealthReporter['localWorkloads']> {
    return this.reporter?.localWorkloads() ?? [];
  }

  start(): void {
    this.connect();
    this.timer = setInterval(() => this.renew(false), RENEW_CHECK_MS);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.reporter?.stop();
    this.client?.close();
  }

  private connect(): void {
    const client = this.newClient();
    this.client = client;
    this.reporter = this.newReporter(client);
    this.reporter.start();
  }

  private newClient(): ReportHealthClient {
    const { controllers, tls } = this.opts;
    return new ReportHealthClient(controllers, tls.channelCredentials, {
      ...controllerChannelOptions(controllers),
      'grpc.use_local_subchannel_pool': 1,
      ...CONTROLLER_CHANNEL_OPTIONS,
    });
  }

  private newReporter(client: ReportHealthClient): HealthReporter {
    const { logger, identities, proxy } = this.opts;
    return new HealthReporter({
      client,
      logger: logger.child({ component: 'health' }),
      onAck: (ack) => this.onAck(ack),
      bundleSha256: () => this.heldBundle(),
      // The same merged proxy snapshot /stats/prometheus renders, grouped by edge for the controller's mesh graph.
      edges: async () => edgesFromSnapshot(mergeSnapshots((await proxy()?.metrics()) ?? [])),
      serving: () => identities.serving(),
    });
  }

  /** The bundle this host holds everywhere (channels and proxy), reported so a root rotation knows who lags. */
  private heldBundle(): string {
    const held = this.opts.tls.creds.trustBundlePem;
    const served = this.opts.identities.identities.trustBundle();
    return served === undefined || served === held ? trustBundleSha256(held) : 'mixed';
  }

  private onAck(ack: HealthReportAck): void {
    // Another bundle on the controller is a root rotation: fetch everything again so the new root is trusted here.
    const want = ack.trustBundleSha256;
    const { refetched } = this;
    if (want && want !== this.heldBundle() && (refetched.hash !== want || Date.now() - refetched.at > 30_000)) {
      this.refetched = { hash: want, at: Date.now() };
      this.opts.logger.info({ trustBundleSha256: want }, 'the controller has a new trust bundle: fetching certificates again');
      this.opts.identities.identities.refreshAll();
      this.renew(true);
    }
  }

  private renew(force: boolean): void {
    const { cfg, logger, tls, sync } = this.opts;
    renewIfDue(cfg, tls.creds, logger, force)
      .then(async (next) => {
        if (!next) return;
        tls.update(next);
        for (const f of this.renewed) f();
        // An open connection keeps the certificate it was made with: reconnect so the controller sees the new one.
        sync.reconnect();
        await this.reporter?.stop();
        this.client?.close();
        // A renewal that lands while the agent stops opens nothing new.
        if (!this.stopped) this.connect();
      })
      .catch((e: unknown) => logger.warn({ err: e }, 'renewal check failed'));
  }
}
