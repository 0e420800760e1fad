/**
 * What the CA issued to workloads since the controller started: a count and, per host, the newest expiry of
 * each identity (what `vmesh ca status` shows). Host certificates are tracked durably by the HostRegistry.
 */
export class IssuedCertificates {
  private count = 0;
  private readonly byHost = new Map<string, Map<string, Date>>();
  private readonly bundles = new Map<string, string>();

  /** The trust bundle hash a host's agent last reported holding. */
  recordBundle(host: string, sha256: string): void {
    this.bundles.set(host, sha256);
  }

  bundleOf(host: string): string | undefined {
    return this.bundles.get(host);
  }

  record(host: string, spiffeId: string, notAfter: Date): void {
    this.count++;
    const ids = this.byHost.get(host) ?? new Map<string, Date>();
    ids.set(spiffeId, notAfter);
    this.byHost.set(host, ids);
  }

  forgetHost(host: string): void {
    this.byHost.delete(host);
    this.bundles.delete(host);
  }

  issuedCount(): number {
    return this.count;
  }

  workloadsOf(host: string): Array<{ spiffeId: string; notAfter: string }> {
    return [...(this.byHost.get(host) ?? [])]
      .map(([spiffeId, d]) => ({ spiffeId, notAfter: d.toISOString() }))
      .sort((a, b) => a.spiffeId.localeCompare(b.spiffeId));
  }
}
