import { type WorkloadCert, WorkloadIdentities } from '../ca/index.js';
import type { Logger } from '../lib/logger.js';
import { uidSecretName } from '../proxy/runtime-types.js';
import type { AppliedConfig, SecretInput } from '../xds/index.js';
import { WDS } from '../xds/type-urls.js';
import type { HostCreds } from './credentials.js';
import { type CachedWorkload, IdentityCache, type IdentityState, nsSa, registryFrom, servedIdentities, uidMap } from './identity-cache.js';

type Served = ReturnType<typeof servedIdentities>;

/**
 * The workload identities this host serves: which SPIFFE ids are wanted (named by the proxy's config and by the
 * host's registry), their certificates, the uid each is presented for, and what the proxy serves now. Kept on disk,
 * so a restart with every controller down serves with the last run's registry and certificates.
 */
export class HostIdentities {
  readonly identities: WorkloadIdentities;
  private registry: readonly CachedWorkload[];
  private fromConfig = new Set<string>();
  private fromRegistry: Set<string>;
  // uid -> SPIFFE id of the workloads registered with a uid: connections their processes open present it.
  private byUid: Map<number, string>;
  private served: Served = [];
  private readonly changed: Array<() => void> = [];
  private readonly servingChanged: Array<() => void> = [];

  private constructor(
    private readonly cache: IdentityCache,
    saved: IdentityState,
    sign: (namespace: string, serviceAccount: string) => Promise<WorkloadCert>,
    logger: Logger,
  ) {
    this.registry = saved.workloads;
    this.fromRegistry = new Set(this.registry.map((w) => w.spiffeId));
    this.byUid = uidMap(this.registry);
    const kept = new Map(saved.certs.map((c) => [nsSa(c.spiffeId), c]));
    // Inbound chains name each workload's SPIFFE id, whose key the agent makes here and has signed; a captured
    // connection presents the identity of the workload (uid) that opened it.
    this.identities = new WorkloadIdentities({
      sign: (namespace, serviceAccount) => {
        // A certificate kept on disk is handed out once, as if just signed; it is renewed on its own schedule.
        const c = kept.get(`${namespace}/${serviceAccount}`);
        kept.delete(`${namespace}/${serviceAccount}`);
        return c ? Promise.resolve(c) : sign(namespace, serviceAccount);
      },
      logger,
      onChange: () => {
        this.save();
        for (const f of this.changed) f();
      },
    });
  }

  static async load(
    dataDir: string,
    sign: (namespace: string, serviceAccount: string) => Promise<WorkloadCert>,
    logger: Logger,
  ): Promise<HostIdentities> {
    const cache = new IdentityCache(dataDir, logger);
    return new HostIdentities(cache, await cache.load(), sign, logger);
  }

  /** Called when a certificate or the registry changes (what the proxy needs may have). */
  onChange(f: () => void): void {
    this.changed.push(f);
  }

  /** Called when what the proxy presents changes: `vmesh workload register` waits for it to be reported. */
  onServingChange(f: () => void): void {
    this.servingChanged.push(f);
  }

  /** The secret names the proxy's config refers to: their identities are wanted. */
  setFromConfig(names: ReadonlySet<string>): void {
    this.fromConfig = new Set(names);
    this.want();
  }

  configSecretNames(): readonly string[] {
    return [...this.fromConfig];
  }

  /**
   * The host's registry arrives as its WDS resource, pushed on every registration: the uid map is right as soon as
   * the certificate is, and a deregistered uid loses its identity with the same push.
   */
  applyRegistry(c: AppliedConfig): void {
    const next = registryFrom(Object.values(c.resources[WDS] ?? {})[0]);
    if (!next || JSON.stringify(next) === JSON.stringify(this.registry)) return;
    this.registry = next;
    this.save();
    this.fromRegistry = new Set(next.map((w) => w.spiffeId));
    this.byUid = uidMap(next);
    this.want();
    // Also when no uid changed: what the proxy presents (and reports) may have.
    for (const f of this.changed) f();
  }

  want(): void {
    this.identities.setWanted([...this.fromConfig, ...this.fromRegistry]);
  }

  /** Recomputes what the proxy presents, and tells whoever reports it when that changed. */
  publishServing(): void {
    const now = servedIdentities(this.registry, (id) => this.identities.get(id) !== undefined);
    if (JSON.stringify(now) === JSON.stringify(this.served)) return;
    this.served = now;
    for (const f of this.servingChanged) f();
  }

  serving(): Served {
    return this.served;
  }

  /** What the agent's SDS serves: one certificate per SPIFFE id, the host's as `default`, and the trust bundle. */
  secrets(creds: HostCreds): SecretInput[] {
    const byId = (c: WorkloadCert, name = c.spiffeId) => ({
      name,
      kind: 'certificate' as const,
      certChainPem: c.certChainPem,
      keyPem: c.keyPem,
    });
    return [
      ...this.identities.all().map((c) => byId(c)),
      // The proxy picks a captured connection's certificate by the uid that opened it.
      ...[...this.byUid].flatMap(([uid, id]) => {
        const c = this.identities.get(id);
        return c ? [byId(c, uidSecretName(uid))] : [];
      }),
      { name: 'default', kind: 'certificate', certChainPem: creds.certPem, keyPem: creds.keyPem },
      { name: 'ROOTCA', kind: 'trust', trustedCaPem: this.identities.trustBundle() ?? creds.trustBundlePem },
    ];
  }

  /** No more renewals; what changed is on disk. */
  async stop(): Promise<void> {
    this.identities.stop();
    await this.cache.flush();
  }

  private save(): void {
    this.cache.save(() => ({ workloads: this.registry, certs: this.identities.all() }));
  }
}
