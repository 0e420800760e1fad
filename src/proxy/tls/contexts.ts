import { readFileSync } from 'node:fs';
import { isIP, type Socket } from 'node:net';
import { createSecureContext, type PeerCertificate, type SecureContext, type TLSSocket } from 'node:tls';
import { err, ok, type Result } from '../../lib/result.js';
import type { DownstreamTls, SecretStore, UpstreamTls } from '../proxy-config.js';

/**
 * SecureContexts built from the SecretStore, one per (certificate, trust bundle) pair, reused by every
 * connection and dropped when secrets rotate so new connections pick up the new material.
 */
export class TlsContexts {
  private readonly cache = new Map<string, Result<SecureContext, string>>();
  private readonly caFiles = new Map<string, Result<string, string>>();
  private readonly unsubscribe: () => void;

  constructor(private readonly secrets: SecretStore) {
    this.unsubscribe = secrets.onChange(() => this.cache.clear());
  }

  /** The server side of a filter chain's TLS. */
  server(tls: DownstreamTls): Result<SecureContext, string> {
    return this.build(`s\0${tls.certSecret}\0${tls.caSecret ?? ''}`, tls.certSecret, tls.caSecret, undefined, false);
  }

  /** The client side towards an upstream; without a CA secret or file the system's roots are trusted. */
  client(tls: UpstreamTls): Result<SecureContext, string> {
    return this.build(
      `c\0${tls.certSecret ?? ''}\0${tls.caSecret ?? ''}\0${tls.caFile ?? ''}`,
      tls.certSecret,
      tls.caSecret,
      tls.caFile,
      true,
    );
  }

  close(): void {
    this.unsubscribe();
    this.cache.clear();
  }

  private build(
    key: string,
    certSecret: string | undefined,
    caSecret: string | undefined,
    caFile: string | undefined,
    client: boolean,
  ): Result<SecureContext, string> {
    const hit = this.cache.get(key);
    if (hit) return hit;
    const made = this.make(certSecret, caSecret, caFile, client);
    // Failures are cached too (until the next rotation) so a missing secret costs one lookup, not one per connection.
    this.cache.set(key, made);
    return made;
  }

  private make(certSecret: string | undefined, caSecret: string | undefined, caFile: string | undefined, client: boolean) {
    let cert: { readonly certPem: string; readonly keyPem: string } | undefined;
    if (certSecret !== undefined) {
      cert = this.secrets.tlsCertificate(certSecret);
      if (!cert) return err(`TLS certificate secret "${certSecret}" is not in the secret store`);
    }
    let ca: string | undefined;
    if (caSecret !== undefined) {
      ca = this.secrets.trustedCa(caSecret);
      if (ca === undefined) return err(`trust bundle secret "${caSecret}" is not in the secret store`);
    } else if (caFile !== undefined) {
      const file = this.readCaFile(caFile);
      if (!file.ok) return file;
      ca = file.value;
    }
    if (!client && !cert) return err('server TLS needs a certificate');
    try {
      return ok(createSecureContext({ cert: cert?.certPem, key: cert?.keyPem, ca, minVersion: 'TLSv1.2' }));
    } catch (e) {
      return err(
        `cannot build a TLS context from secret "${certSecret ?? ''}" / CA "${caSecret ?? caFile ?? ''}": ${(e as Error).message}`,
      );
    }
  }

  /** External CA files are read once: they are not rotated through SDS. */
  private readCaFile(path: string): Result<string, string> {
    let r = this.caFiles.get(path);
    if (!r) {
      try {
        r = ok(readFileSync(path, 'utf8'));
      } catch (e) {
        r = err(`cannot read CA file ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      }
      this.caFiles.set(path, r);
    }
    return r;
  }
}

/** URI SANs of a peer certificate (`subjectaltname` is `URI:a, DNS:b, IP Address:c`). */
export function uriSans(cert: PeerCertificate | undefined): string[] {
  return sansOf(cert, 'URI:');
}

export function dnsSans(cert: PeerCertificate | undefined): string[] {
  return sansOf(cert, 'DNS:');
}

function sansOf(cert: PeerCertificate | undefined, prefix: string): string[] {
  const text = cert?.subjectaltname;
  if (!text) return [];
  const out: string[] = [];
  for (const part of text.split(', ')) if (part.startsWith(prefix)) out.push(part.slice(prefix.length));
  return out;
}

/** The SPIFFE id a verified peer presents (its first `spiffe://` URI SAN). */
export function peerSpiffeId(cert: PeerCertificate | undefined): string | undefined {
  return uriSans(cert).find((u) => u.startsWith('spiffe://'));
}

/**
 * Whether the handshake's peer certificate chained to our trust bundle. Node's own tls.Server asks the
 * native handle the same question (`verifyError()`); a TLSSocket made over an accepted socket has no
 * server to do it, so we do. Fails closed when the handle cannot tell.
 */
export function peerVerified(socket: TLSSocket): { readonly ok: boolean; readonly error?: string } {
  const handle = (socket as unknown as { _handle?: { verifyError?: () => Error | null | undefined } })._handle;
  if (!handle?.verifyError) return { ok: false, error: 'TLS handle gone' };
  const e = handle.verifyError();
  if (e) return { ok: false, error: (e as { code?: string }).code ?? e.message };
  return socket.getPeerCertificate() && Object.keys(socket.getPeerCertificate()).length > 0
    ? { ok: true }
    : { ok: false, error: 'no peer certificate' };
}

/** An SNI value Node accepts (RFC 6066 forbids IP addresses). */
export function sniFor(name: string | undefined): string | undefined {
  return name && isIP(name) === 0 ? name : undefined;
}

// TLSSocket has no TCP handle to send a reset on; remember the plain socket underneath for resets.
const rawSockets = new WeakMap<Socket, Socket>();

export function linkRawSocket(tlsSocket: TLSSocket, raw: Socket): void {
  rawSockets.set(tlsSocket, raw);
}

/** Closes with a TCP RST when the socket can (propagating a reset), else destroys it. */
export function resetSocket(socket: Socket): void {
  const raw = rawSockets.get(socket) ?? socket;
  if (!raw.destroyed) {
    try {
      raw.resetAndDestroy();
    } catch {
      raw.destroy();
    }
  }
  if (raw !== socket) socket.destroy();
}
