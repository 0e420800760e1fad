import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  randomBytes,
  X509Certificate,
} from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { writeFileAtomic } from '../lib/atomic-file.js';
import { ErrorCode, vmeshError } from '../lib/errors.js';
import { Limits } from '../lib/limits.js';
import type { Logger } from '../lib/logger.js';
import { readBitString, readDer } from './der.js';
import { controllerSpiffeId, isValidTrustDomain } from './spiffe.js';
import {
  authorityKeyIdExtension,
  basicConstraintsExtension,
  buildCertificate,
  canonicalSerial,
  derToPem,
  extKeyUsageExtension,
  KeyUsageBit,
  keyIdentifier,
  keyUsageExtension,
  Oid,
  parseAndVerifyCsr,
  pemBlocks,
  readCertificate,
  type SigningAlg,
  sanExtension,
  signingAlgFor,
  spkiOf,
  splitCertificates,
  subjectKeyId,
  subjectKeyIdExtension,
  x500Name,
} from './x509.js';

export type CertUsage = 'client' | 'server' | 'both';

export interface SignOptions {
  readonly uris?: readonly string[];
  readonly dnsNames?: readonly string[];
  readonly ips?: readonly string[];
  readonly ttlSeconds: number;
  readonly usage: CertUsage;
}

export interface SignedCertificate {
  readonly certPem: string;
  /** Lower-case hex, no leading zeros (what X509Certificate.serialNumber gives, canonicalised). */
  readonly serial: string;
  readonly notAfter: Date;
}

export interface ServerCertificate extends SignedCertificate {
  readonly keyPem: string;
  /** Leaf then the CA certificates: what the server presents, so a joining agent can find and pin the CA. */
  readonly chainPem: string;
}

export interface CaOptions {
  /** `<dataDir>/ca`: holds ca-key.pem (0600) and ca-cert.pem (0644) of a CA vmesh created. */
  readonly dir: string;
  readonly trustDomain: string;
  /** Bring-your-own CA (--ca-cert/--ca-key): used as they are, never written. Extra certificates after the first are its issuers. */
  readonly certFile?: string;
  readonly keyFile?: string;
  readonly logger: Logger;
  /** Clock for tests; Date.now by default. */
  readonly now?: () => number;
}

const ROOT_TTL_SECONDS = 10 * 365 * 24 * 3600;
const BACKDATE_MS = 60_000;
const DEFAULT_SERVER_TTL_SECONDS = 365 * 24 * 3600;
const MAX_ENCODED_EXTENSIONS = 8192;

function randomSerial(): Buffer {
  for (;;) {
    const b = randomBytes(16);
    if (b.some((x) => x !== 0)) return b;
  }
}

function badInput(what: string, value: string): never {
  throw vmeshError(ErrorCode.InvalidResource, `certificate request: ${what} "${value}" is not valid`, { value });
}

function checkSans(o: SignOptions): void {
  for (const u of o.uris ?? []) if (!/^[a-z][a-z0-9+.-]*:[!-~]+$/i.test(u)) badInput('URI SAN', u);
  for (const d of o.dnsNames ?? []) if (!/^(\*\.)?[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(d)) badInput('DNS SAN', d);
  for (const ip of o.ips ?? []) if (!isIP(ip)) badInput('IP SAN', ip);
  if ((o.uris?.length ?? 0) + (o.dnsNames?.length ?? 0) + (o.ips?.length ?? 0) === 0) {
    throw vmeshError(ErrorCode.InvalidResource, 'certificate request: no subject alternative names given (the CA must name the identity)');
  }
  if (!Number.isInteger(o.ttlSeconds) || o.ttlSeconds <= 0) badInput('ttlSeconds', String(o.ttlSeconds));
}

/**
 * The controller's certificate authority. All signing goes through `signCsr`/`issueServerCert`, which build
 * the TBSCertificate in DER directly and sign it with node:crypto (fast enough for bulk workload issuance).
 */
export class CertificateAuthority {
  private cert!: X509Certificate;
  private alg!: SigningAlg;
  private subject!: Buffer;
  private keyId!: Buffer;
  private hash!: string;
  private bundle!: string[];
  private key!: KeyObject;
  /** Roots trusted but not signing: the next root while a rotation is staged, the previous one after it. */
  private trust: { readonly next?: Root; readonly previous?: X509Certificate } = {};
  // Derived from the bundle and the rotation when either changes, not per signing or per authenticated call.
  private nextCert: X509Certificate | undefined;
  private bundlePem = '';
  private intermediatesPem = '';
  private generation = 0;
  private readonly extensionDer = new Map<string, Buffer>();
  private validToMs = 0;
  /** Where a CA vmesh created lives; undefined for a CA given by --ca-cert/--ca-key (never rotated here). */
  private dir: string | undefined;
  private issuedSinceStart = 0;

  private constructor(
    readonly trustDomain: string,
    bundle: string[],
    key: KeyObject,
    private readonly now: () => number,
  ) {
    this.useSigner(bundle, key);
  }

  private get rotation(): { readonly next?: Root; readonly previous?: X509Certificate } {
    return this.trust;
  }

  private set rotation(r: { readonly next?: Root; readonly previous?: X509Certificate }) {
    this.trust = r;
    this.nextCert = r.next ? new X509Certificate(r.next.certPem) : undefined;
    this.trustChanged();
  }

  private trustChanged(): void {
    const extra = [this.trust.next?.certPem, this.trust.previous?.toString()].filter((p): p is string => !!p);
    this.bundlePem = [...this.bundle, ...extra].join('');
    // A self-signed CA is a root: peers have it in their bundle, so it is not sent. An intermediate is.
    this.intermediatesPem = this.bundle
      .filter((pem) => {
        const c = new X509Certificate(pem);
        return c.subject !== c.issuer;
      })
      .join('');
    this.generation++;
  }

  /**
   * Changes whenever the certificates this CA trusts or signs with change (a rotation step, a reload): what
   * `issued` answered for a certificate holds as long as this number stays the same.
   */
  get trustGeneration(): number {
    return this.generation;
  }

  private useSigner(bundle: string[], key: KeyObject): void {
    this.bundle = bundle;
    this.key = key;
    this.cert = new X509Certificate(bundle[0] ?? '');
    this.alg = signingAlgFor(key);
    const fields = readCertificate(this.cert.raw);
    this.subject = fields.subject;
    this.keyId = subjectKeyId(fields);
    this.hash = `sha256:${createHash('sha256').update(fields.spki).digest('hex')}`;
    this.validToMs = Date.parse(this.cert.validTo);
    this.extensionDer.clear();
    this.trustChanged();
  }

  /** The signing CA certificate (PEM). */
  get certPem(): string {
    return this.bundle[0] ?? '';
  }

  static async loadOrCreate(opts: CaOptions): Promise<CertificateAuthority> {
    const now = opts.now ?? Date.now;
    if (!isValidTrustDomain(opts.trustDomain)) {
      throw vmeshError(ErrorCode.InvalidConfig, `trust domain "${opts.trustDomain}" has characters outside [a-z0-9._-]`);
    }
    if (opts.certFile !== undefined || opts.keyFile !== undefined) {
      if (!opts.certFile || !opts.keyFile) throw vmeshError(ErrorCode.InvalidConfig, 'CA: --ca-cert and --ca-key must be given together');
      const [certText, keyText] = await Promise.all([readText(opts.certFile), readText(opts.keyFile)]);
      const ca = CertificateAuthority.fromPem(opts.trustDomain, certText, keyText, `${opts.certFile} / ${opts.keyFile}`, now);
      opts.logger.info({ certFile: opts.certFile, caHash: ca.caHash() }, 'using the CA given by --ca-cert/--ca-key');
      return ca;
    }
    const keyPath = join(opts.dir, 'ca-key.pem');
    const certPath = join(opts.dir, 'ca-cert.pem');
    const haveCert = existsSync(certPath);
    const haveKey = existsSync(keyPath);
    if (haveCert && !haveKey) {
      throw vmeshError(
        ErrorCode.InvalidConfig,
        `CA certificate ${certPath} exists but its key ${keyPath} is missing: restore the key, or move the certificate away to create a new CA (every host must then re-join)`,
      );
    }
    if (haveCert && haveKey) {
      await completeInterruptedActivation(opts.dir);
      const mode = (await stat(keyPath)).mode & 0o777;
      if (mode & 0o077) opts.logger.warn({ keyPath, mode: mode.toString(8) }, 'CA key is readable by group/others: chmod 600 it');
      const ca = CertificateAuthority.fromPem(opts.trustDomain, await readText(certPath), await readText(keyPath), certPath, now);
      if (!ca.cert.subject.includes(`CN=vmesh root ${opts.trustDomain}`)) {
        opts.logger.warn({ subject: ca.cert.subject, trustDomain: opts.trustDomain }, 'CA was created for another trust domain');
      }
      await ca.loadRotation(opts.dir);
      opts.logger.info({ certPath, caHash: ca.caHash(), rotation: ca.rotationState().phase }, 'loaded CA');
      return ca;
    }
    // A key without a certificate is a creation a crash interrupted: nobody can trust it yet, so start over.
    if (haveKey) opts.logger.warn({ keyPath }, 'CA key without certificate (interrupted creation): creating a new CA');
    const { keyPem, certPem } = createRoot(opts.trustDomain, now());
    await mkdir(opts.dir, { recursive: true, mode: 0o700 });
    await writeFileAtomic(keyPath, keyPem, 0o600);
    await writeFileAtomic(certPath, certPem, 0o644);
    const ca = CertificateAuthority.fromPem(opts.trustDomain, certPem, keyPem, certPath, now);
    ca.dir = opts.dir;
    opts.logger.info({ certPath, caHash: ca.caHash() }, 'created a new CA');
    return ca;
  }

  private static fromPem(td: string, certText: string, keyText: string, where: string, now: () => number): CertificateAuthority {
    const certs = splitCertificates(certText);
    const first = certs[0];
    if (!first) throw vmeshError(ErrorCode.InvalidConfig, `CA ${where}: no PEM CERTIFICATE found`);
    let cert: X509Certificate;
    let key: KeyObject;
    try {
      cert = new X509Certificate(first);
      key = createPrivateKey(keyText);
    } catch (e) {
      throw vmeshError(ErrorCode.InvalidConfig, `CA ${where}: cannot parse: ${(e as Error).message}`);
    }
    if (!cert.ca) throw vmeshError(ErrorCode.InvalidConfig, `CA ${where}: certificate is not a CA (basicConstraints CA:false)`);
    if (!spkiOf(createPublicKey(key)).equals(spkiOf(cert.publicKey))) {
      throw vmeshError(ErrorCode.InvalidConfig, `CA ${where}: the private key does not belong to the certificate`);
    }
    if (Date.parse(cert.validTo) <= now()) throw vmeshError(ErrorCode.InvalidConfig, `CA ${where}: certificate expired at ${cert.validTo}`);
    const ku = readCertificate(cert.raw).extensions.get(Oid.keyUsage);
    if (ku) {
      const bits = readBitString(readDer(ku.value));
      if (!((bits[0] ?? 0) & (0x80 >> KeyUsageBit.keyCertSign))) {
        throw vmeshError(ErrorCode.InvalidConfig, `CA ${where}: keyUsage lacks keyCertSign`);
      }
    }
    try {
      return new CertificateAuthority(td, certs, key, now);
    } catch (e) {
      throw vmeshError(ErrorCode.InvalidConfig, `CA ${where}: ${(e as Error).message}`);
    }
  }

  /**
   * The CA certificate(s) peers trust: the signing CA first, then its issuers if it has any, then a root being
   * rotated in or out. The order changes when a rotation activates, so the bundle's hash tells agents to fetch again.
   */
  trustBundlePem(): string {
    return this.bundlePem;
  }

  private async loadRotation(dir: string): Promise<void> {
    this.dir = dir;
    const f = rotationFiles(dir);
    const next =
      existsSync(f.nextCert) && existsSync(f.nextKey)
        ? { certPem: await readText(f.nextCert), keyPem: await readText(f.nextKey) }
        : undefined;
    const previous = existsSync(f.previousCert) ? new X509Certificate(await readText(f.previousCert)) : undefined;
    this.rotation = { ...(next ? { next } : {}), ...(previous ? { previous } : {}) };
  }

  /** Reads the CA files again: another controller sharing the store took a rotation step and they were replaced. */
  async reload(): Promise<void> {
    const dir = this.rotatableDir();
    const certPath = join(dir, 'ca-cert.pem');
    const fresh = CertificateAuthority.fromPem(
      this.trustDomain,
      await readText(certPath),
      await readText(join(dir, 'ca-key.pem')),
      certPath,
      this.now,
    );
    await fresh.loadRotation(dir);
    // Swapped in one step: signing never mixes the old root with the new rotation state.
    this.useSigner(fresh.bundle, fresh.key);
    this.rotation = fresh.rotation;
  }

  /** Where a root rotation stands, and the roots involved (for `vmesh ca status`). */
  rotationState(): RotationState {
    const info = (c: X509Certificate): RootInfo => ({
      caHash: `sha256:${createHash('sha256').update(readCertificate(c.raw).spki).digest('hex')}`,
      subject: c.subject,
      notBefore: new Date(c.validFrom).toISOString(),
      notAfter: new Date(c.validTo).toISOString(),
    });
    const { next, previous } = this.rotation;
    return {
      phase: next ? 'staged' : previous ? 'activated' : 'none',
      rotatable: this.dir !== undefined,
      current: info(this.cert),
      ...(next ? { next: info(new X509Certificate(next.certPem)) } : {}),
      ...(previous ? { previous: info(previous) } : {}),
      issuedSinceStart: this.issuedSinceStart,
    };
  }

  /**
   * Root rotation, step 1: a new root is made and trusted next to the current one, which keeps signing. Agents
   * fetch the new bundle (its hash is in every health answer) before anything is signed by the new root.
   */
  async stageRoot(): Promise<void> {
    const dir = this.rotatableDir();
    if (this.rotation.next) throw vmeshError(ErrorCode.Conflict, 'root rotation: a new root is already staged; activate it next');
    if (this.rotation.previous)
      throw vmeshError(ErrorCode.Conflict, 'root rotation: the previous root is still trusted; finish that rotation first');
    const next = createRoot(this.trustDomain, this.now());
    const f = rotationFiles(dir);
    await writeFileAtomic(f.nextKey, next.keyPem, 0o600);
    await writeFileAtomic(f.nextCert, next.certPem, 0o644);
    this.rotation = { next };
  }

  /** Step 2: the staged root signs from now on; the old one stays trusted until its certificates are replaced. */
  async activateRoot(): Promise<void> {
    const dir = this.rotatableDir();
    const next = this.rotation.next;
    if (!next) throw vmeshError(ErrorCode.Conflict, 'root rotation: no new root is staged (run `vmesh ca rotate-root` first)');
    const f = rotationFiles(dir);
    const oldCert = this.cert;
    await writeFileAtomic(f.previousCert, oldCert.toString(), 0o644);
    // Key first, then certificate: a crash between the two is completed at the next start (completeInterruptedActivation).
    await rename(f.nextKey, join(dir, 'ca-key.pem'));
    await rename(f.nextCert, join(dir, 'ca-cert.pem'));
    this.useSigner([next.certPem], createPrivateKey(next.keyPem));
    this.rotation = { previous: oldCert };
  }

  /** Step 3: the previous root is no longer trusted. */
  async retirePreviousRoot(): Promise<void> {
    const dir = this.rotatableDir();
    if (!this.rotation.previous) throw vmeshError(ErrorCode.Conflict, 'root rotation: no previous root is trusted');
    await rm(rotationFiles(dir).previousCert, { force: true });
    this.rotation = {};
  }

  private rotatableDir(): string {
    if (!this.dir) {
      throw vmeshError(ErrorCode.InvalidConfig, 'root rotation: this CA was given with --ca-cert/--ca-key; rotate it where it is managed');
    }
    return this.dir;
  }

  /** A leaf certificate with the intermediates peers need to chain it to a root in the bundle. */
  chainPem(leafPem: string): string {
    return leafPem + this.intermediatesPem;
  }

  /** kubeadm's discovery hash: `sha256:` + hex SHA-256 of the CA certificate's SubjectPublicKeyInfo DER. */
  caHash(): string {
    return this.hash;
  }

  /** Whether `cert` was signed by this CA's key (chain building across several CAs is TLS's job). */
  issued(cert: X509Certificate): boolean {
    const by = (ca: X509Certificate | undefined) => !!ca && cert.checkIssued(ca) && cert.verify(ca.publicKey);
    // During a rotation, certificates of the other root are still this CA's.
    return by(this.cert) || by(this.rotation.previous) || by(this.nextCert);
  }

  /** Parses a PEM CSR and checks its self-signature; throws VMESH_ERR_CSR_INVALID with the reason. */
  checkCsr(csrPem: string): { readonly spki: Buffer; readonly publicKey: KeyObject } {
    if (typeof csrPem !== 'string' || csrPem.length > Limits.csrPemBytes) {
      const size = typeof csrPem === 'string' ? `${csrPem.length} characters` : typeof csrPem;
      throw vmeshError(ErrorCode.CsrInvalid, `CSR: ${size}, over the ${Limits.csrPemBytes}-byte limit for a PEM certificate request`);
    }
    const blocks = pemBlocks(csrPem).filter((b) => b.label === 'CERTIFICATE REQUEST' || b.label === 'NEW CERTIFICATE REQUEST');
    if (blocks.length !== 1 || !blocks[0]) {
      throw vmeshError(ErrorCode.CsrInvalid, `CSR: want exactly one PEM "CERTIFICATE REQUEST" block, got ${blocks.length}`);
    }
    try {
      return parseAndVerifyCsr(blocks[0].der);
    } catch (e) {
      throw vmeshError(ErrorCode.CsrInvalid, `CSR: ${(e as Error).message}`);
    }
  }

  /**
   * Signs the CSR's public key after verifying its self-signature. The CSR's subject and requested SANs are
   * ignored: the certificate carries exactly `opts`' names (the CA decides identities) and an empty subject.
   */
  signCsr(csrPem: string, opts: SignOptions): SignedCertificate {
    checkSans(opts);
    const { spki, publicKey } = this.checkCsr(csrPem);
    return this.issue(spki, publicKey.asymmetricKeyType === 'rsa', opts);
  }

  /** The controller's own serving certificate for 15012/15014; the key is made here and only returned. */
  issueServerCert(
    names: { readonly dnsNames?: readonly string[]; readonly ips?: readonly string[] },
    ttlSeconds = DEFAULT_SERVER_TTL_SECONDS,
  ): ServerCertificate {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const opts: SignOptions = { ...names, uris: [controllerSpiffeId(this.trustDomain)], ttlSeconds, usage: 'server' };
    checkSans(opts);
    const signed = this.issue(spkiOf(publicKey), false, opts);
    const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    return { ...signed, keyPem, chainPem: signed.certPem + this.trustBundlePem() };
  }

  /**
   * The DER of extensions that repeat from one certificate to the next (the usage ones, the issuer's key id, a
   * workload identity's SANs), encoded once: at fleet rates the encoding cost more than the signature.
   * Bounded (a fleet has a bounded set of identities) and emptied when the signer changes.
   */
  private encoded(key: string, encode: () => Buffer): Buffer {
    let der = this.extensionDer.get(key);
    if (!der) {
      der = encode();
      if (this.extensionDer.size >= MAX_ENCODED_EXTENSIONS) this.extensionDer.clear();
      this.extensionDer.set(key, der);
    }
    return der;
  }

  private fixedExtensions(usage: SignOptions['usage'], rsa: boolean): Buffer[] {
    const eku = usage === 'client' ? [Oid.clientAuth] : usage === 'server' ? [Oid.serverAuth] : [Oid.serverAuth, Oid.clientAuth];
    const usageBits = rsa ? [KeyUsageBit.digitalSignature, KeyUsageBit.keyEncipherment] : [KeyUsageBit.digitalSignature];
    return [
      this.encoded('bc', () => basicConstraintsExtension(false)),
      this.encoded(`ku ${rsa}`, () => keyUsageExtension(usageBits)),
      this.encoded(`eku ${usage}`, () => extKeyUsageExtension(eku)),
    ];
  }

  private issue(spki: Buffer, rsa: boolean, opts: SignOptions): SignedCertificate {
    this.issuedSinceStart++;
    const serial = randomSerial();
    const now = this.now();
    // Whole seconds, as the certificate encodes it, so the reported notAfter is the certificate's own.
    const notAfter = new Date(Math.floor(Math.min(now + opts.ttlSeconds * 1000, this.validToMs) / 1000) * 1000);
    const der = buildCertificate(
      {
        serial,
        issuer: this.subject,
        subject: x500Name([]),
        notBefore: new Date(now - BACKDATE_MS),
        notAfter,
        spki,
        extensions: [
          ...this.fixedExtensions(opts.usage, rsa),
          // RFC 5280 4.2.1.6: with an empty subject the SAN extension is critical.
          this.encoded(`san ${JSON.stringify([opts.dnsNames, opts.uris, opts.ips])}`, () => sanExtension(opts, true)),
          subjectKeyIdExtension(keyIdentifier(spki)),
          this.encoded('aki', () => authorityKeyIdExtension(this.keyId)),
        ],
      },
      { key: this.key, alg: this.alg },
    );
    return { certPem: derToPem(der, 'CERTIFICATE'), serial: canonicalSerial(serial.toString('hex')), notAfter };
  }
}

interface Root {
  readonly certPem: string;
  readonly keyPem: string;
}

export interface RootInfo {
  readonly caHash: string;
  readonly subject: string;
  readonly notBefore: string;
  readonly notAfter: string;
}

export interface RotationState {
  /** none; staged (next root trusted, current signs); activated (next signs, previous still trusted). */
  readonly phase: 'none' | 'staged' | 'activated';
  readonly rotatable: boolean;
  readonly current: RootInfo;
  readonly next?: RootInfo;
  readonly previous?: RootInfo;
  readonly issuedSinceStart: number;
}

function rotationFiles(dir: string) {
  return {
    nextKey: join(dir, 'ca-next-key.pem'),
    nextCert: join(dir, 'ca-next-cert.pem'),
    previousCert: join(dir, 'ca-previous-cert.pem'),
  };
}

/** An activation cut between its two renames left the new key beside the old certificate: finish it. */
async function completeInterruptedActivation(dir: string): Promise<void> {
  const f = rotationFiles(dir);
  if (!existsSync(f.nextCert) || existsSync(f.nextKey)) return;
  const key = createPrivateKey(await readText(join(dir, 'ca-key.pem')));
  const next = new X509Certificate(await readText(f.nextCert));
  if (spkiOf(createPublicKey(key)).equals(spkiOf(next.publicKey))) await rename(f.nextCert, join(dir, 'ca-cert.pem'));
}

async function readText(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    throw vmeshError(ErrorCode.InvalidConfig, `CA: cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

function createRoot(trustDomain: string, now: number): { keyPem: string; certPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const name = x500Name([
    [Oid.organization, 'vmesh'],
    [Oid.commonName, `vmesh root ${trustDomain}`],
  ]);
  const spki = spkiOf(publicKey);
  const der = buildCertificate(
    {
      serial: randomSerial(),
      issuer: name,
      subject: name,
      notBefore: new Date(now - BACKDATE_MS),
      notAfter: new Date(now + ROOT_TTL_SECONDS * 1000),
      spki,
      extensions: [
        basicConstraintsExtension(true),
        keyUsageExtension([KeyUsageBit.keyCertSign, KeyUsageBit.cRLSign]),
        subjectKeyIdExtension(keyIdentifier(spki)),
      ],
    },
    { key: privateKey, alg: signingAlgFor(privateKey) },
  );
  return { keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), certPem: derToPem(der, 'CERTIFICATE') };
}
