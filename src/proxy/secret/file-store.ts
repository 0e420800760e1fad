import { readFile } from 'node:fs/promises';
import { ErrorCode, vmeshError } from '../../lib/errors.js';
import type { SecretInput } from '../../xds/index.js';
import type { SecretStore } from '../proxy-config.js';

export interface PemCertificate {
  readonly certPem: string;
  readonly keyPem: string;
}

export interface SecretFiles {
  /** SDS name → certificate chain file and key file. */
  readonly certificates?: Readonly<Record<string, { readonly certFile: string; readonly keyFile: string }>>;
  /** SDS name (e.g. ROOTCA) → trust bundle file. */
  readonly trustedCas?: Readonly<Record<string, string>>;
}

/**
 * A SecretStore over PEM strings or files: for tests, and for the proxy until the agent's local SDS serves
 * it. Setting or reloading a secret notifies subscribers, so TLS contexts are rebuilt for new connections.
 */
export class FileSecretStore implements SecretStore {
  private readonly certs = new Map<string, PemCertificate>();
  private readonly cas = new Map<string, string>();
  private readonly listeners = new Set<() => void>();
  private files: SecretFiles = {};

  constructor(init: { certificates?: Readonly<Record<string, PemCertificate>>; trustedCas?: Readonly<Record<string, string>> } = {}) {
    for (const [name, c] of Object.entries(init.certificates ?? {})) this.certs.set(name, c);
    for (const [name, pem] of Object.entries(init.trustedCas ?? {})) this.cas.set(name, pem);
  }

  /** Loads the files now; `reload()` reads them again (e.g. after a renewal rewrote them). */
  static async fromFiles(files: SecretFiles): Promise<FileSecretStore> {
    const store = new FileSecretStore();
    store.files = files;
    await store.reload();
    return store;
  }

  tlsCertificate(name: string): PemCertificate | undefined {
    return this.certs.get(name);
  }

  certificateNames(): string[] {
    return [...this.certs.keys()];
  }

  trustedCa(name: string): string | undefined {
    return this.cas.get(name);
  }

  onChange(cb: () => void): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }

  setCertificate(name: string, cert: PemCertificate): void {
    this.certs.set(name, cert);
    this.notify();
  }

  setTrustedCa(name: string, pem: string): void {
    this.cas.set(name, pem);
    this.notify();
  }

  /** Makes the store hold exactly these secrets (what the agent's SDS sent); notifies once if anything changed. */
  replaceAll(secrets: readonly SecretInput[]): void {
    const certs = new Map<string, PemCertificate>();
    const cas = new Map<string, string>();
    for (const s of secrets) {
      if (s.kind === 'certificate') certs.set(s.name, { certPem: s.certChainPem, keyPem: s.keyPem });
      else cas.set(s.name, s.trustedCaPem);
    }
    const same =
      certs.size === this.certs.size &&
      cas.size === this.cas.size &&
      [...certs].every(([n, c]) => this.certs.get(n)?.certPem === c.certPem && this.certs.get(n)?.keyPem === c.keyPem) &&
      [...cas].every(([n, pem]) => this.cas.get(n) === pem);
    if (same) return;
    this.certs.clear();
    this.cas.clear();
    for (const [n, c] of certs) this.certs.set(n, c);
    for (const [n, pem] of cas) this.cas.set(n, pem);
    this.notify();
  }

  delete(name: string): void {
    const hadCert = this.certs.delete(name);
    const hadCa = this.cas.delete(name);
    if (hadCert || hadCa) this.notify();
  }

  /** Re-reads the files given to `fromFiles`; notifies only when something changed. */
  async reload(): Promise<void> {
    let changed = false;
    for (const [name, f] of Object.entries(this.files.certificates ?? {})) {
      const [certPem, keyPem] = await Promise.all([readPem(f.certFile, name), readPem(f.keyFile, name)]);
      const old = this.certs.get(name);
      if (old?.certPem !== certPem || old.keyPem !== keyPem) {
        this.certs.set(name, { certPem, keyPem });
        changed = true;
      }
    }
    for (const [name, file] of Object.entries(this.files.trustedCas ?? {})) {
      const pem = await readPem(file, name);
      if (this.cas.get(name) !== pem) {
        this.cas.set(name, pem);
        changed = true;
      }
    }
    if (changed) this.notify();
  }

  private notify(): void {
    for (const cb of this.listeners) cb();
  }
}

async function readPem(path: string, secret: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    throw vmeshError(
      ErrorCode.InvalidConfig,
      `secret "${secret}": cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      {
        secret,
        path,
      },
    );
  }
}
