import type { AgentConfig } from '../config/agent.js';
import type { Logger } from '../lib/logger.js';
import { err, ok, type Result } from '../lib/result.js';
import { MeshProxy } from '../proxy/proxy.js';
import type { ProxyConfig } from '../proxy/proxy-config.js';
import { readFileSecrets } from '../proxy/secret/file-secrets.js';
import { secretNames } from '../proxy/secret/names.js';
import type { AppliedConfig, XdsSync } from '../xds/index.js';
import { WDS } from '../xds/type-urls.js';
import type { HostTls } from './credentials.js';
import type { HostIdentities } from './host-identities.js';
import type { ProxyRunner } from './proxy-runner.js';

/**
 * What the proxy cannot compile is NACKed, and the last good config stays (in the proxy and on disk). The compiled
 * result is kept, so an in-process proxy applies it without compiling it again.
 */
export class ConfigCheck {
  private last: ProxyConfig | undefined;

  constructor(
    private readonly enabled: boolean,
    private readonly identities: HostIdentities,
  ) {}

  get compiled(): ProxyConfig | undefined {
    return this.last;
  }

  /** XdsSync's validator: the whole config as it would be with `next` in place of the type's resources. */
  validate(typeUrl: string, next: ReadonlyMap<string, unknown>, all: AppliedConfig): Result<void, string> {
    return this.enabled ? this.prepare({ ...all, resources: { ...all.resources, [typeUrl]: Object.fromEntries(next) } }) : ok(undefined);
  }

  prepare(c: AppliedConfig): Result<void, string> {
    const r = MeshProxy.prepare(c);
    if (!r.ok) return err(r.error);
    this.last = r.value;
    this.identities.setFromConfig(secretNames(r.value));
    return ok(undefined);
  }
}

const BURST_MS = 20;
const FILE_SECRETS_CHECK_MS = 30_000;

/** Hands the proxy the accepted config and its secrets, once per burst of changes. */
export class ProxyFeed {
  private timer: NodeJS.Timeout | undefined;
  private rereadTimer: NodeJS.Timeout | undefined;
  private started = false;
  private stopped = false;

  constructor(
    private readonly opts: {
      readonly cfg: AgentConfig;
      readonly logger: Logger;
      readonly sync: XdsSync;
      readonly check: ConfigCheck;
      readonly identities: HostIdentities;
      readonly tls: HostTls;
      readonly proxy: () => ProxyRunner | undefined;
    },
  ) {}

  /**
   * Follows xDS and identity changes, starting from the last good config on disk if there is one. The proxy gets
   * nothing until start(): it may not run yet.
   */
  async follow(): Promise<void> {
    const { cfg, logger, sync, check, identities } = this.opts;
    identities.onChange(() => this.schedule());
    sync.onChange((typeUrl, c) => {
      if (typeUrl === WDS) identities.applyRegistry(c);
      this.schedule();
    });
    if ((await sync.loadCached()) && cfg.proxy) {
      // Compiled again so the identities it names are wanted before any controller answers.
      const r = check.prepare(sync.config());
      if (!r.ok) logger.warn({ error: r.error }, 'the cached config does not compile; waiting for a controller');
    }
    identities.applyRegistry(sync.config());
    identities.want();
  }

  /** Feeds the proxy (now running, if the agent runs one) what it has and every change from now on. */
  start(): void {
    this.started = true;
    this.schedule();
    // Gateway credential files may have been replaced on disk: read them again.
    this.rereadTimer = setInterval(() => this.schedule(), FILE_SECRETS_CHECK_MS);
    this.rereadTimer.unref();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.rereadTimer);
  }

  /** Types arrive one response at a time, certificates one by one: pass them on once the burst is in. */
  schedule(): void {
    if (this.timer || !this.started || this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.update();
    }, BURST_MS);
  }

  private async update(): Promise<void> {
    const { cfg, logger, sync, check, identities, tls, proxy } = this.opts;
    if (!proxy()) return identities.publishServing();
    const files = identities.configSecretNames().filter((n) => n.startsWith('file'));
    const fileSecrets = await readFileSecrets(files, cfg.credentialsDir, logger);
    proxy()?.update(sync.config(), check.compiled, [...identities.secrets(tls.creds), ...fileSecrets]);
    identities.publishServing();
  }
}
