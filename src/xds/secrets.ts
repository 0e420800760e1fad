import type { ResourceInput } from './snapshot.js';

/** A secret as the agent's SDS serves it: a certificate chain with its key, or a trust bundle. */
export type SecretInput =
  | { readonly name: string; readonly kind: 'certificate'; readonly certChainPem: string; readonly keyPem: string }
  | { readonly name: string; readonly kind: 'trust'; readonly trustedCaPem: string };

/** Envoy's Secret message (transport_sockets.tls.v3.Secret) with inline bytes: it only travels over the host's own socket. */
export function secretMessage(s: SecretInput): ResourceInput {
  const bytes = (pem: string) => ({ inline_bytes: Buffer.from(pem) });
  return s.kind === 'certificate'
    ? {
        name: s.name,
        message: { name: s.name, tls_certificate: { certificate_chain: bytes(s.certChainPem), private_key: bytes(s.keyPem) } },
      }
    : { name: s.name, message: { name: s.name, validation_context: { trusted_ca: bytes(s.trustedCaPem) } } };
}

/** The other way: a decoded Secret back to PEM; undefined for kinds vmesh does not use. */
export function secretFromMessage(msg: unknown): SecretInput | undefined {
  const m = msg as {
    name?: string;
    tls_certificate?: { certificate_chain?: { inline_bytes?: unknown }; private_key?: { inline_bytes?: unknown } } | null;
    validation_context?: { trusted_ca?: { inline_bytes?: unknown } } | null;
  };
  const text = (b: unknown) => (b instanceof Uint8Array ? Buffer.from(b).toString('utf8') : undefined);
  if (!m?.name) return undefined;
  const chain = text(m.tls_certificate?.certificate_chain?.inline_bytes);
  const key = text(m.tls_certificate?.private_key?.inline_bytes);
  if (chain && key) return { name: m.name, kind: 'certificate', certChainPem: chain, keyPem: key };
  const ca = text(m.validation_context?.trusted_ca?.inline_bytes);
  if (ca) return { name: m.name, kind: 'trust', trustedCaPem: ca };
  return undefined;
}
