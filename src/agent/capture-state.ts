import { installCapture, openCaptureSession, removeCapture } from '../capture/install.js';
import { assignPassthroughSourceV6 } from '../capture/passthrough-source.js';
import { dnsOnlyCapture } from '../capture/plan.js';
import { routeVipRange } from '../capture/vip-route.js';
import type { AgentConfig } from '../config/agent.js';
import { ErrorCode, VmeshError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import type { NftSession } from '../lib/native.js';
import { takeProxyGroup } from './proxy-group.js';
import type { ProxyRunner } from './proxy-runner.js';

type Captured = 'none' | 'dns' | 'full' | 'full-v4';

/**
 * The host's capture, following the proxy. TCP capture is on exactly while the proxy listens on the outbound port:
 * redirecting to nothing would cut the host off. Until then (no controller, no cached config) traffic flows as if
 * vmesh were absent; once every proxy worker is down, only DNS stays captured (the DNS proxy is the agent's own).
 * Either way virtual IPs are refused at once by their local route. IPv6 is redirected only while the proxy listens
 * on IPv6 too ('full-v4' otherwise): a host without IPv6, or whose [::] ports are taken, keeps its IPv6 traffic
 * direct rather than refused.
 */
export class CaptureState {
  private captured: Captured = 'none';
  private armed = false;
  private chain: Promise<void> = Promise.resolve();
  // The netlink socket that owns the capture table for this agent's life: if the agent dies by any cause, the
  // kernel deletes the table with it, so the host resolves names and connects as if vmesh were absent.
  private session: NftSession | undefined;

  constructor(
    private readonly cfg: AgentConfig,
    private readonly logger: Logger,
    private readonly proxy: () => ProxyRunner | undefined,
  ) {
    if (!cfg.capture) return;
    takeProxyGroup(cfg.captureConfig.proxyGid, logger);
    this.session = openCaptureSession(cfg.captureConfig.backend);
    if (!this.session) {
      // iptables has nothing like an owned table: say once what removes the rules if this process is killed.
      logger.info(
        { backend: cfg.captureConfig.backend },
        'iptables capture outlives this agent if it is killed: systemd (ExecStopPost) removes it then; without systemd run "vmesh capture remove", or use the nftables backend',
      );
    }
  }

  /**
   * A crashed agent's rules may still be in place, redirecting to a proxy that is gone: until this agent's proxy
   * listens, traffic flows as if vmesh were absent. Installing later replaces the table in one go anyway. A table
   * owned by another live agent cannot be taken over: two agents would fight over one host's capture.
   */
  async clearStale(): Promise<void> {
    if (!this.cfg.capture) return;
    await removeCapture(this.cfg.captureConfig.backend, this.session).catch((e: unknown) => {
      if (e instanceof VmeshError && e.code === ErrorCode.Conflict) throw e;
      this.logger.warn({ err: e }, 'stale capture not removed');
    });
  }

  /** From now on capture follows the proxy's listeners (until disarm). */
  arm(): void {
    this.armed = true;
    this.sync();
  }

  /** Brings capture in line with what the proxy listens on now; changes run one at a time, in order. */
  sync(): void {
    this.chain = this.chain.then(() => this.step());
  }

  private async step(): Promise<void> {
    const cc = this.cfg.captureConfig;
    const outbound = this.proxy()
      ?.listening()
      .find((l) => l.port === cc.outboundPort);
    const full = cc.ipv6 && outbound?.ipv6 ? 'full' : 'full-v4';
    const fallback = this.captured !== 'none' && cc.captureDns ? 'dns' : 'none';
    const want = !this.cfg.capture || !this.armed ? this.captured : outbound ? full : fallback;
    if (want === this.captured) return;
    try {
      if (want === 'full' || want === 'full-v4') {
        await routeVipRange();
        if (want === 'full') {
          await assignPassthroughSourceV6().catch((e: unknown) =>
            this.logger.warn({ err: e }, 'inbound IPv6 passthrough goes out from the host address instead of ::6'),
          );
        }
        await installCapture({ ...cc, ipv6: want === 'full' }, this.session);
        this.logger.info({ backend: cc.backend, ipv6: want === 'full' }, 'capture installed');
      } else if (want === 'dns') {
        // One transaction replaces the table: DNS capture never has a gap.
        await installCapture(dnsOnlyCapture(cc), this.session);
        this.logger.warn('no proxy listens on the outbound port: TCP capture removed until it is back; DNS stays captured');
      } else {
        await removeCapture(cc.backend, this.session);
        this.logger.warn('no proxy listens on the outbound port: capture removed until it is back');
      }
      this.captured = want;
    } catch (e) {
      this.logger.error({ err: e }, 'capture change failed');
    }
  }

  /** Capture comes off and stays off: nothing is redirected to a proxy that is about to go. */
  async disarm(): Promise<void> {
    this.armed = false;
    await this.chain;
    if (this.captured === 'none') return;
    await removeCapture(this.cfg.captureConfig.backend, this.session).catch((e: unknown) =>
      this.logger.warn({ err: e }, 'capture removal failed'),
    );
    this.captured = 'none';
  }

  /** Gives the capture table's netlink session back (the kernel drops a table it still owns); idempotent. */
  close(): void {
    this.session?.close();
    this.session = undefined;
  }
}
