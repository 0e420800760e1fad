import { X509Certificate } from 'node:crypto';
import type { SecretInput } from '../xds/index.js';

/** What the local SDS serves under a name, without any key: whose certificate, valid until when, or the trust bundle's size. */
export function describeSecret(x: SecretInput): {
  name: string;
  kind: string;
  spiffeId?: string;
  notAfter?: string;
  serial?: string;
  roots?: number;
} {
  if (x.kind === 'trust') return { name: x.name, kind: x.kind, roots: (x.trustedCaPem.match(/-----BEGIN CERTIFICATE-----/g) ?? []).length };
  const cert = new X509Certificate(x.certChainPem);
  const spiffeId = /URI:(spiffe:\/\/[^,\s]+)/.exec(cert.subjectAltName ?? '')?.[1];
  return {
    name: x.name,
    kind: x.kind,
    ...(spiffeId ? { spiffeId } : {}),
    notAfter: new Date(cert.validTo).toISOString(),
    serial: cert.serialNumber,
  };
}
