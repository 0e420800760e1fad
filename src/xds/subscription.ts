/**
 * One ADS stream's subscription to one resource type, shared by the SotW and delta streams (as go-control-plane's
 * stream/v3 Subscription): which names the client asked for, whether it asked for all of them (wildcard), and
 * the response of this type still awaiting its ACK/NACK. What the client holds is kept by each protocol, since
 * SotW replaces it per response and delta patches it per resource.
 */
export class Subscription {
  private all = false;
  private readonly named = new Set<string>();
  /**
   * A request has named resources: from then on an empty SotW list means "none", not the legacy wildcard
   * (go-control-plane's allowLegacyWildcard, inverted).
   */
  private explicit = false;
  /** The nonce of the last response of this type. */
  nonce: string | undefined;
  /** That response awaits its ACK/NACK; the next one waits for it. */
  outstanding = false;
  /** The snapshot version that response carried. */
  sentVersion: string | undefined;

  get wildcard(): boolean {
    return this.all;
  }

  /** The names subscribed to explicitly (a wildcard client may name some as well). */
  get names(): ReadonlySet<string> {
    return this.named;
  }

  /** Whether the subscription covers `name`, by name or wildcard. */
  covers(name: string): boolean {
    return this.all || this.named.has(name);
  }

  /**
   * SotW: a request's resource_names replace the subscription. `*` is the wildcard; an empty list is the legacy
   * wildcard until the client has named something. True when the subscription changed.
   */
  replace(names: readonly string[]): boolean {
    const wildcard = names.includes('*') || (names.length === 0 && !this.explicit);
    if (names.length > 0) this.explicit = true;
    const specific = new Set(names.filter((n) => n !== '*'));
    const changed = wildcard !== this.all || specific.size !== this.named.size || [...specific].some((n) => !this.named.has(n));
    this.all = wildcard;
    this.named.clear();
    for (const n of specific) this.named.add(n);
    return changed;
  }

  /** Delta: a first request that subscribes and unsubscribes nothing is the legacy wildcard. */
  legacyWildcard(): void {
    if (!this.explicit) this.all = true;
  }

  /** Delta: resource_names_subscribe, one name (`*`: the wildcard). */
  subscribe(name: string): void {
    this.explicit = true;
    if (name === '*') this.all = true;
    else this.named.add(name);
  }

  /** Delta: resource_names_unsubscribe, one name (`*`: the wildcard, keeping the names given explicitly). */
  unsubscribe(name: string): void {
    if (name === '*') this.all = false;
    else this.named.delete(name);
  }

  /** Records a response sent: its ACK/NACK is awaited before the next one. */
  sent(nonce: string, version: string): void {
    this.nonce = nonce;
    this.outstanding = true;
    this.sentVersion = version;
  }

  /** Whether a request with `nonce` answers the response in flight; if so, that response is no longer awaited. */
  answered(nonce: string): boolean {
    if (!nonce || !this.outstanding || nonce !== this.nonce) return false;
    this.outstanding = false;
    return true;
  }
}
