import type { HostFacts, HostRecord } from '../api/host-record.js';
import { checkHostName } from '../api/host-record.js';
import { ErrorCode, type VmeshError, vmeshError } from '../lib/errors.js';
import { err, ok, type Result } from '../lib/result.js';
import type { Store, StoreValue } from '../store/store.js';
import { canonicalSerial } from './x509.js';

const PREFIX = 'hosts/';
/** Live certificates remembered per host: a renewal leaves the previous one valid until it is replaced on the agent. */
const MAX_LIVE_CERTS = 4;
/** lastSeen is rewritten at most this often: every store write rewrites the whole state file. */
const TOUCH_INTERVAL_MS = 30_000;

interface CertRef {
  readonly serial: string;
  readonly notAfter: string;
}

/** The stored form: the public record plus the serials that authenticate (live) or are refused (revoked). */
interface StoredHost extends HostRecord {
  readonly liveCerts: readonly CertRef[];
  readonly revokedCerts: readonly CertRef[];
}

function toRecord(h: StoredHost): HostRecord {
  const { liveCerts: _live, revokedCerts: _revoked, ...rec } = h;
  return rec;
}

/** Joined hosts (hosts/<name> in the controller's store) and the certificates that may speak for them. */
export class HostRegistry {
  constructor(
    private readonly store: Store,
    private readonly now: () => number = Date.now,
  ) {}

  private stored(name: string, from: Pick<Store, 'get'> = this.store): StoredHost | undefined {
    const v = from.get(PREFIX + name) as StoredHost | undefined;
    if (v !== undefined && (typeof v !== 'object' || typeof v.name !== 'string' || !Array.isArray(v.liveCerts))) {
      throw vmeshError(ErrorCode.StoreFailed, `store: host record ${PREFIX}${name} is malformed`);
    }
    return v;
  }

  /**
   * Rewrites the host's record from its current value, read inside the store's transaction: with controllers
   * sharing a store, a record computed from a stale read (a touch racing a removal elsewhere) would undo a write.
   * `next` returns undefined to write nothing; it may run more than once.
   */
  private async update(name: string, next: (prev: StoredHost | undefined) => StoredHost | undefined): Promise<StoredHost | undefined> {
    let out: StoredHost | undefined;
    await this.store.txn((s) => {
      out = next(this.stored(name, s));
      return out ? [{ op: 'put', key: PREFIX + name, value: out as unknown as StoreValue }] : [];
    });
    return out;
  }

  private unexpired(refs: readonly CertRef[]): CertRef[] {
    const now = this.now();
    return refs.filter((r) => Date.parse(r.notAfter) > now);
  }

  /** Records a (re-)joined host with its first certificate; re-joining clears `revoked` but old revoked serials stay refused. */
  async register(input: { name: string; facts: HostFacts; certSerial: string; certNotAfter: Date }): Promise<HostRecord> {
    checkHostName(input.name, 'host name');
    const serial = canonicalSerial(input.certSerial);
    const now = new Date(this.now()).toISOString();
    const h = await this.update(input.name, (prev) => ({
      name: input.name,
      facts: input.facts,
      certSerial: serial,
      certNotAfter: input.certNotAfter.toISOString(),
      joinedAt: now,
      lastSeen: now,
      revoked: false,
      // A re-join replaces the host's identity: certificates from before it no longer authenticate.
      liveCerts: [{ serial, notAfter: input.certNotAfter.toISOString() }],
      revokedCerts: this.unexpired([...(prev?.revokedCerts ?? []), ...(prev && !prev.revoked ? prev.liveCerts : [])]),
    }));
    return toRecord(h as StoredHost);
  }

  /** Adds a renewed certificate; the host must exist and not be revoked. */
  async recordCertificate(name: string, cert: { serial: string; notAfter: Date }): Promise<HostRecord> {
    const ref = { serial: canonicalSerial(cert.serial), notAfter: cert.notAfter.toISOString() };
    const h = await this.update(name, (prev) => {
      if (!prev) throw vmeshError(ErrorCode.NotFound, `host "${name}" is not registered`);
      if (prev.revoked) throw vmeshError(ErrorCode.HostRevoked, `host "${name}" was removed; it must re-join with a new token`);
      return {
        ...prev,
        certSerial: ref.serial,
        certNotAfter: ref.notAfter,
        lastSeen: new Date(this.now()).toISOString(),
        liveCerts: this.unexpired([...prev.liveCerts, ref]).slice(-MAX_LIVE_CERTS),
        revokedCerts: this.unexpired(prev.revokedCerts),
      };
    });
    return toRecord(h as StoredHost);
  }

  get(name: string): HostRecord | undefined {
    const h = this.stored(name);
    return h && toRecord(h);
  }

  list(): HostRecord[] {
    return this.store.list(PREFIX).map(({ value }) => toRecord(value as unknown as StoredHost));
  }

  /** Revokes the host: every certificate it holds is refused (VMESH_ERR_HOST_REVOKED) until it re-joins with a new token. */
  async remove(name: string): Promise<void> {
    await this.update(name, (prev) => {
      if (!prev) throw vmeshError(ErrorCode.NotFound, `host "${name}" is not registered`);
      if (prev.revoked) return undefined;
      return {
        ...prev,
        revoked: true,
        revokedAt: new Date(this.now()).toISOString(),
        liveCerts: [],
        revokedCerts: this.unexpired([...prev.revokedCerts, ...prev.liveCerts]),
      };
    });
  }

  /** Notes that the host was seen; cheap to call on every request. */
  async touch(name: string): Promise<void> {
    const due = (prev: StoredHost | undefined) => !!prev && !(prev.lastSeen && this.now() - Date.parse(prev.lastSeen) < TOUCH_INTERVAL_MS);
    if (!due(this.stored(name))) return;
    await this.update(name, (prev) => (prev && due(prev) ? { ...prev, lastSeen: new Date(this.now()).toISOString() } : undefined));
  }

  /**
   * Whether a certificate with `serial` may speak for host `name`: revoked ones are VMESH_ERR_HOST_REVOKED
   * (PERMISSION_DENIED), unknown hosts or serials VMESH_ERR_UNAUTHENTICATED.
   */
  checkCertificate(name: string, serial: string): Result<HostRecord, VmeshError> {
    const h = this.stored(name);
    const s = canonicalSerial(serial);
    if (!h) return err(vmeshError(ErrorCode.Unauthenticated, `host "${name}" is not registered (certificate serial ${s})`));
    if (h.revoked || h.revokedCerts.some((r) => r.serial === s)) {
      return err(
        vmeshError(ErrorCode.HostRevoked, `host "${name}": certificate ${s} was revoked (host removed); re-join with a new token`),
      );
    }
    if (!h.liveCerts.some((r) => r.serial === s)) {
      return err(vmeshError(ErrorCode.Unauthenticated, `host "${name}": certificate serial ${s} is not one the controller issued to it`));
    }
    return ok(toRecord(h));
  }
}
