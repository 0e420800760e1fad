import { createHash, createPublicKey, type KeyObject, sign, verify } from 'node:crypto';
import { isIP } from 'node:net';
import {
  bitString,
  bool,
  children,
  ctx,
  DerError,
  expect,
  namedBits,
  nullValue,
  octetString,
  oid,
  readBitString,
  readDer,
  readOid,
  seq,
  set,
  smallInt,
  Tag,
  type Tlv,
  time,
  uint,
  utf8,
} from './der.js';

/** X.509 pieces vmesh needs, built and read with node:crypto and the small DER module (no ASN.1 object model). */

export const Oid = {
  commonName: '2.5.4.3',
  organization: '2.5.4.10',
  subjectKeyId: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  authorityKeyId: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
} as const;

export const KeyUsageBit = { digitalSignature: 0, keyEncipherment: 2, keyCertSign: 5, cRLSign: 6 } as const;

// ---- PEM ----

export interface PemBlock {
  readonly label: string;
  readonly der: Buffer;
}

/**
 * The PEM blocks of `text`, as `BEGIN x ... END x` pairs read left to right. The markers are found in one pass
 * (a regex of bounded length per position) and each BEGIN is paired with the next END of its label by index, so
 * the cost is linear in the text. (A lazy `BEGIN (.*) ... END \1` regex rescans the rest of the text for every
 * unmatched BEGIN: a 1 MiB CSR of them froze the controller for seconds.)
 */
export function pemBlocks(text: string): PemBlock[] {
  const markers: Array<{ begin: boolean; label: string; start: number; end: number }> = [];
  const endsOf = new Map<string, number[]>();
  for (const m of text.matchAll(/-----(BEGIN|END) ([A-Z0-9 ]{1,64})-----/g)) {
    const label = m[2] ?? '';
    const begin = m[1] === 'BEGIN';
    if (!begin) {
      const ends = endsOf.get(label);
      if (ends) ends.push(markers.length);
      else endsOf.set(label, [markers.length]);
    }
    markers.push({ begin, label, start: m.index, end: m.index + m[0].length });
  }
  const next = new Map<string, number>();
  const out: PemBlock[] = [];
  let cursor = 0;
  for (const [i, mk] of markers.entries()) {
    if (!mk.begin || mk.start < cursor) continue;
    const ends = endsOf.get(mk.label) ?? [];
    let k = next.get(mk.label) ?? 0;
    while (k < ends.length && (ends[k] ?? 0) < i) k++;
    next.set(mk.label, k);
    const e = markers[ends[k] ?? -1];
    if (!e) continue;
    out.push({ label: mk.label, der: Buffer.from(text.slice(mk.end, e.start).replace(/\s+/g, ''), 'base64') });
    cursor = e.end;
  }
  return out;
}

export function derToPem(der: Uint8Array, label: string): string {
  const b64 = Buffer.from(der).toString('base64');
  return `-----BEGIN ${label}-----\n${b64.replace(/(.{64})/g, '$1\n').replace(/\n$/, '')}\n-----END ${label}-----\n`;
}

/** The certificates of a PEM bundle, each re-encoded canonically. */
export function splitCertificates(pem: string): string[] {
  return pemBlocks(pem)
    .filter((b) => b.label === 'CERTIFICATE')
    .map((b) => derToPem(b.der, 'CERTIFICATE'));
}

// ---- names, algorithms, keys ----

/** A Name from (attribute OID, value) pairs, one RDN each, in order. */
export function x500Name(attrs: ReadonlyArray<readonly [string, string]>): Buffer {
  return seq(...attrs.map(([o, v]) => set(seq(oid(o), utf8(v)))));
}

export interface SigningAlg {
  /** The DER AlgorithmIdentifier. */
  readonly algId: Buffer;
  /** Digest for crypto.sign; null for Ed25519. */
  readonly hash: string | null;
}

const SIG_ALGS: Record<string, { hash: string | null; keyType: string }> = {
  '1.2.840.10045.4.3.2': { hash: 'sha256', keyType: 'ec' },
  '1.2.840.10045.4.3.3': { hash: 'sha384', keyType: 'ec' },
  '1.2.840.10045.4.3.4': { hash: 'sha512', keyType: 'ec' },
  '1.2.840.113549.1.1.11': { hash: 'sha256', keyType: 'rsa' },
  '1.2.840.113549.1.1.12': { hash: 'sha384', keyType: 'rsa' },
  '1.2.840.113549.1.1.13': { hash: 'sha512', keyType: 'rsa' },
  '1.3.101.112': { hash: null, keyType: 'ed25519' },
};

/** The signature algorithm a CA key signs with; throws for key types a CA may not use. */
export function signingAlgFor(key: KeyObject): SigningAlg {
  const type = key.asymmetricKeyType;
  if (type === 'rsa') return { algId: seq(oid('1.2.840.113549.1.1.11'), nullValue()), hash: 'sha256' };
  if (type === 'ed25519') return { algId: seq(oid('1.3.101.112')), hash: null };
  if (type === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    if (curve === 'prime256v1') return { algId: seq(oid('1.2.840.10045.4.3.2')), hash: 'sha256' };
    if (curve === 'secp384r1') return { algId: seq(oid('1.2.840.10045.4.3.3')), hash: 'sha384' };
    if (curve === 'secp521r1') return { algId: seq(oid('1.2.840.10045.4.3.4')), hash: 'sha512' };
  }
  throw new Error(`unsupported signing key type ${type} ${key.asymmetricKeyDetails?.namedCurve ?? ''}`.trim());
}

/** Key types accepted in CSRs: EC P-256/P-384, RSA of 2048 bits or more, Ed25519. Returns why not, or undefined. */
export function unacceptableKey(key: KeyObject): string | undefined {
  const type = key.asymmetricKeyType;
  const d = key.asymmetricKeyDetails;
  if (type === 'ec') return d?.namedCurve === 'prime256v1' || d?.namedCurve === 'secp384r1' ? undefined : `EC curve ${d?.namedCurve}`;
  if (type === 'rsa') return (d?.modulusLength ?? 0) >= 2048 ? undefined : `RSA key of ${d?.modulusLength} bits (want >= 2048)`;
  if (type === 'ed25519') return undefined;
  return `key type ${type}`;
}

const ACCEPTED_CURVES: Readonly<Record<string, string>> = { '1.2.840.10045.3.1.7': 'prime256v1', '1.3.132.0.34': 'secp384r1' };

/**
 * unacceptableKey for an EC key node:crypto already parsed from `spki`, read from the SPKI's own named-curve
 * parameter (the curve OpenSSL used): asking the key object for its curve costs an OpenSSL query per CSR.
 * Explicit curve parameters are refused, as unacceptableKey refuses a curve without a name.
 */
function unacceptableEcSpki(spki: Buffer): string | undefined {
  const alg = children(
    expect(children(expect(readDer(spki), Tag.Sequence, 'SubjectPublicKeyInfo').content)[0], Tag.Sequence, 'algorithm').content,
  );
  const params = alg[1];
  const curve = params?.tag === Tag.Oid ? readOid(params) : undefined;
  return curve && ACCEPTED_CURVES[curve] ? undefined : `EC curve ${curve ?? '(explicit parameters)'}`;
}

/** SHA-1 of the subjectPublicKey bits (RFC 5280 4.2.1.2, method 1). */
export function keyIdentifier(spki: Buffer): Buffer {
  const parts = children(expect(readDer(spki), Tag.Sequence, 'SubjectPublicKeyInfo').content);
  return createHash('sha1')
    .update(readBitString(expect(parts[1], Tag.BitString, 'subjectPublicKey')))
    .digest();
}

/** SubjectPublicKeyInfo DER of a public key, or of a private key's public half. */
export function spkiOf(key: KeyObject): Buffer {
  return (key.type === 'private' ? createPublicKey(key) : key).export({ type: 'spki', format: 'der' });
}

export function ipBytes(ip: string): Buffer {
  if (isIP(ip) === 4) return Buffer.from(ip.split('.').map(Number));
  if (isIP(ip) !== 6) throw new Error(`not an IP address: ${ip}`);
  let text = ip.split('%')[0] ?? '';
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4?.[1]) {
    const b = ipBytes(v4[1]);
    text = `${text.slice(0, -v4[1].length)}${b.readUInt16BE(0).toString(16)}:${b.readUInt16BE(2).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const out = Buffer.alloc(16);
  for (const [i, g] of groups.entries()) out.writeUInt16BE(Number.parseInt(g, 16), i * 2);
  return out;
}

function ipText(b: Buffer): string {
  if (b.length === 4) return [...b].join('.');
  const groups: string[] = [];
  for (let i = 0; i + 1 < b.length; i += 2) groups.push(b.readUInt16BE(i).toString(16));
  return groups.join(':').replace(/(^|:)0(:0)+(:|$)/, '::');
}

// ---- CSR ----

export interface ParsedCsr {
  readonly info: Buffer;
  readonly spki: Buffer;
  readonly publicKey: KeyObject;
}

/** Parses a PKCS#10 request and checks its self-signature; throws DerError/Error with a reason. */
export function parseAndVerifyCsr(der: Buffer): ParsedCsr {
  const top = children(expect(readDer(der), Tag.Sequence, 'CertificationRequest').content);
  const info = expect(top[0], Tag.Sequence, 'certificationRequestInfo');
  const algOid = readOid(expect(children(expect(top[1], Tag.Sequence, 'signatureAlgorithm').content)[0], Tag.Oid, 'algorithm'));
  const signature = readBitString(expect(top[2], Tag.BitString, 'signature'));
  const fields = children(info.content);
  const version = expect(fields[0], Tag.Integer, 'version');
  if (version.content.length !== 1 || version.content[0] !== 0) throw new DerError('CSR version is not 1 (0)');
  expect(fields[1], Tag.Sequence, 'subject');
  const spki = expect(fields[2], Tag.Sequence, 'subjectPKInfo').raw;
  const alg = SIG_ALGS[algOid];
  if (!alg) throw new DerError(`unsupported signature algorithm ${algOid}`);
  const publicKey = createPublicKey({ key: spki, format: 'der', type: 'spki' });
  const why = publicKey.asymmetricKeyType === 'ec' ? unacceptableEcSpki(spki) : unacceptableKey(publicKey);
  if (why) throw new DerError(`unsupported public key: ${why}`);
  if (publicKey.asymmetricKeyType !== alg.keyType)
    throw new DerError(`signature algorithm ${algOid} does not match a ${publicKey.asymmetricKeyType} key`);
  let good = false;
  try {
    good = verify(alg.hash, info.raw, publicKey, signature);
  } catch {
    good = false;
  }
  if (!good) throw new DerError('the self-signature does not verify (tampered, or signed by another key)');
  return { info: info.raw, spki: Buffer.from(spki), publicKey };
}

/** A PKCS#10 request for `key`, subject CN=`commonName`, no attributes: the CA decides the identities. */
export function buildCsr(key: KeyObject, commonName: string): Buffer {
  const publicKey = createPublicKey(key);
  const info = seq(smallInt(0), x500Name([[Oid.commonName, commonName]]), spkiOf(publicKey), ctx(0, Buffer.alloc(0), true));
  const alg = signingAlgFor(key);
  return seq(info, alg.algId, bitString(sign(alg.hash, info, key)));
}

// ---- certificates ----

export interface SubjectAltNames {
  readonly uris?: readonly string[];
  readonly dnsNames?: readonly string[];
  readonly ips?: readonly string[];
}

export function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return critical ? seq(oid(id), bool(true), octetString(value)) : seq(oid(id), octetString(value));
}

export function sanExtension(names: SubjectAltNames, critical: boolean): Buffer {
  const general = [
    ...(names.dnsNames ?? []).map((d) => ctx(2, Buffer.from(d, 'ascii'), false)),
    ...(names.uris ?? []).map((u) => ctx(6, Buffer.from(u, 'ascii'), false)),
    ...(names.ips ?? []).map((ip) => ctx(7, ipBytes(ip), false)),
  ];
  return extension(Oid.subjectAltName, critical, seq(...general));
}

export function extKeyUsageExtension(oids: readonly string[]): Buffer {
  return extension(Oid.extKeyUsage, false, seq(...oids.map(oid)));
}

export function keyUsageExtension(bits: readonly number[]): Buffer {
  return extension(Oid.keyUsage, true, namedBits(bits));
}

export function basicConstraintsExtension(isCa: boolean): Buffer {
  return extension(Oid.basicConstraints, true, isCa ? seq(bool(true)) : seq());
}

export const subjectKeyIdExtension = (id: Buffer): Buffer => extension(Oid.subjectKeyId, false, octetString(id));
export const authorityKeyIdExtension = (id: Buffer): Buffer => extension(Oid.authorityKeyId, false, seq(ctx(0, id, false)));

export interface CertificateTemplate {
  readonly serial: Buffer;
  readonly issuer: Buffer;
  readonly subject: Buffer;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly spki: Buffer;
  readonly extensions: readonly Buffer[];
}

/** Encodes the TBSCertificate and signs it: one crypto.sign call, no ASN.1 object model. */
export function buildCertificate(t: CertificateTemplate, signer: { readonly key: KeyObject; readonly alg: SigningAlg }): Buffer {
  const tbs = seq(
    ctx(0, smallInt(2), true),
    uint(t.serial),
    signer.alg.algId,
    t.issuer,
    seq(time(t.notBefore), time(t.notAfter)),
    t.subject,
    t.spki,
    ctx(3, seq(...t.extensions), true),
  );
  return seq(tbs, signer.alg.algId, bitString(sign(signer.alg.hash, tbs, signer.key)));
}

export interface CertificateFields {
  readonly subject: Buffer;
  readonly spki: Buffer;
  readonly extensions: ReadonlyMap<string, { readonly critical: boolean; readonly value: Buffer }>;
}

export function readCertificate(der: Buffer): CertificateFields {
  const top = children(expect(readDer(der), Tag.Sequence, 'Certificate').content);
  const fields = children(expect(top[0], Tag.Sequence, 'tbsCertificate').content);
  const rest = fields[0]?.tag === 0xa0 ? fields.slice(1) : fields;
  // serial, signature, issuer, validity, subject, spki, then optional [1] [2] [3]
  const subject = expect(rest[4], Tag.Sequence, 'subject').raw;
  const spki = expect(rest[5], Tag.Sequence, 'subjectPublicKeyInfo').raw;
  const extensions = new Map<string, { critical: boolean; value: Buffer }>();
  const extField = rest.slice(6).find((t) => t.tag === 0xa3);
  if (extField) {
    for (const e of children(expect(children(extField.content)[0], Tag.Sequence, 'extensions').content)) {
      const parts = children(e.content);
      const id = readOid(expect(parts[0], Tag.Oid, 'extnID'));
      const critical = parts.length === 3 && parts[1]?.tag === Tag.Boolean && parts[1].content[0] !== 0;
      extensions.set(id, { critical, value: expect(parts[parts.length - 1], Tag.OctetString, 'extnValue').content });
    }
  }
  return { subject: Buffer.from(subject), spki: Buffer.from(spki), extensions };
}

export function subjectAltNames(cert: CertificateFields): { uris: string[]; dnsNames: string[]; ips: string[] } {
  const out = { uris: [] as string[], dnsNames: [] as string[], ips: [] as string[] };
  const ext = cert.extensions.get(Oid.subjectAltName);
  if (!ext) return out;
  for (const g of children(expect(readDer(ext.value), Tag.Sequence, 'GeneralNames').content) as Tlv[]) {
    if (g.tag === 0x82) out.dnsNames.push(g.content.toString('ascii'));
    else if (g.tag === 0x86) out.uris.push(g.content.toString('ascii'));
    else if (g.tag === 0x87) out.ips.push(ipText(g.content));
  }
  return out;
}

/** The certificate's subjectKeyIdentifier, or the RFC 5280 method-1 value when the extension is absent. */
export function subjectKeyId(cert: CertificateFields): Buffer {
  const ext = cert.extensions.get(Oid.subjectKeyId);
  return ext ? expect(readDer(ext.value), Tag.OctetString, 'SubjectKeyIdentifier').content : keyIdentifier(cert.spki);
}

/** Serial numbers as vmesh stores and compares them: lower-case hex, no leading zeros. */
export function canonicalSerial(hex: string): string {
  return BigInt(`0x${hex.replace(/[^0-9a-fA-F]/g, '') || '0'}`).toString(16);
}
