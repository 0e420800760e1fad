import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseSpiffeId, type WorkloadCert } from '../ca/index.js';
import { writeFileAtomic } from '../lib/atomic-file.js';
import type { Logger } from '../lib/logger.js';

/** A workload registered on this host, as the controller last listed it: its identity, and the uid it runs as. */
export interface CachedWorkload {
  readonly spiffeId: string;
  readonly uid?: number;
}

/**
 * What the agent knows of its workloads' identities besides the xDS config: the registry the controller last
 * answered with, and the workload keys and certificates. Kept in the data dir (0600, like the host key: the keys
 * never leave this host), so an agent restarted while every controller is down still serves mutual TLS with the
 * right identities until the certificates expire.
 */
export interface IdentityState {
  readonly workloads: readonly CachedWorkload[];
  readonly certs: readonly WorkloadCert[];
}

interface StoredCert {
  spiffeId: string;
  keyPem: string;
  certChainPem: string;
  trustBundlePem: string;
  notBefore: string;
  notAfter: string;
}

const FILE = 'workload-identities.json';
const SAVE_DELAY_MS = 100;

export class IdentityCache {
  private timer: NodeJS.Timeout | undefined;
  private saving: Promise<void> = Promise.resolve();
  private pending: (() => IdentityState) | undefined;

  constructor(
    private readonly dir: string,
    private readonly logger: Logger,
  ) {}

  /** The saved state; certificates that expired, or whose key does not match, are left out. */
  async load(now = Date.now()): Promise<IdentityState> {
    let doc: { workloads?: CachedWorkload[]; certs?: StoredCert[] };
    try {
      doc = JSON.parse(await readFile(join(this.dir, FILE), 'utf8'));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT')
        this.logger.warn({ err: (e as Error).message }, 'workload identities on disk unreadable');
      return { workloads: [], certs: [] };
    }
    const certs: WorkloadCert[] = [];
    for (const c of doc.certs ?? []) {
      try {
        const leaf = new X509Certificate(c.certChainPem);
        if (!leaf.checkPrivateKey(createPrivateKey(c.keyPem))) continue;
        const cert = { ...c, notBefore: new Date(c.notBefore), notAfter: new Date(c.notAfter) };
        if (cert.notAfter.getTime() > now) certs.push(cert);
      } catch {
        /* a damaged entry is fetched again */
      }
    }
    const workloads = (doc.workloads ?? []).filter((w) => typeof w.spiffeId === 'string');
    this.logger.info({ certificates: certs.length, workloads: workloads.length }, 'workload identities loaded from disk');
    return { workloads, certs };
  }

  /** Saves soon (changes come in bursts); `state` is read when the write happens. */
  save(state: () => IdentityState): void {
    this.pending = state;
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.saving = this.saving.then(() => this.write());
    }, SAVE_DELAY_MS);
  }

  async flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
      this.saving = this.saving.then(() => this.write());
    }
    await this.saving;
  }

  private async write(): Promise<void> {
    const state = this.pending?.();
    if (!state) return;
    const certs: StoredCert[] = state.certs.map((c) => ({
      spiffeId: c.spiffeId,
      keyPem: c.keyPem,
      certChainPem: c.certChainPem,
      trustBundlePem: c.trustBundlePem,
      notBefore: c.notBefore.toISOString(),
      notAfter: c.notAfter.toISOString(),
    }));
    try {
      await writeFileAtomic(join(this.dir, FILE), JSON.stringify({ workloads: state.workloads, certs }), 0o600);
    } catch (e) {
      this.logger.warn({ err: (e as Error).message }, 'could not save the workload identities');
    }
  }
}

/** The host's registry from its WDS resource (vmesh.v1.HostWorkloads); undefined when none was pushed. */
export function registryFrom(message: unknown): CachedWorkload[] | undefined {
  const list = (message as { workloads?: Array<{ spiffe_id?: string; uid?: number; has_uid?: boolean }> } | undefined)?.workloads;
  if (!Array.isArray(list)) return undefined;
  return list.flatMap((w) =>
    typeof w.spiffe_id === 'string' && w.spiffe_id !== '' ? [{ spiffeId: w.spiffe_id, ...(w.has_uid ? { uid: Number(w.uid) } : {}) }] : [],
  );
}

/** What the proxy presents: each registered identity whose certificate it holds, for the uid that runs it. */
export function servedIdentities(
  workloads: readonly CachedWorkload[],
  hasCert: (spiffeId: string) => boolean,
): Array<{ spiffeId: string; uid: number; hasUid: boolean }> {
  const seen = new Map<string, { spiffeId: string; uid: number; hasUid: boolean }>();
  for (const w of workloads) {
    if (!hasCert(w.spiffeId)) continue;
    seen.set(`${w.spiffeId}|${w.uid ?? '-'}`, { spiffeId: w.spiffeId, uid: w.uid ?? 0, hasUid: w.uid !== undefined });
  }
  return [...seen.values()].sort((a, b) => (a.spiffeId + a.uid < b.spiffeId + b.uid ? -1 : 1));
}

/** uid -> SPIFFE id of the workloads registered with a uid. */
export function uidMap(workloads: readonly CachedWorkload[]): Map<number, string> {
  return new Map(workloads.flatMap((w) => (w.uid !== undefined ? [[w.uid, w.spiffeId] as const] : [])));
}

/** `namespace/serviceAccount` of a workload SPIFFE id. */
export function nsSa(spiffeId: string): string {
  const id = parseSpiffeId(spiffeId);
  return id.ok && id.value.kind === 'workload' ? `${id.value.namespace}/${id.value.serviceAccount}` : spiffeId;
}
