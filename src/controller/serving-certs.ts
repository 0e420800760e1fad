import { hostname, networkInterfaces } from 'node:os';
import type { CertificateAuthority, ServerCertificate } from '../ca/index.js';
import type { ControllerConfig } from '../config/controller.js';

/** Every name and address the controller may be reached by goes into its TLS certificate. */
function serverNames(cfg: ControllerConfig): { dnsNames: string[]; ips: string[] } {
  const ips = new Set(['127.0.0.1', '::1']);
  const dnsNames = new Set(['localhost', hostname().toLowerCase()]);
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) if (!a.address.startsWith('fe80')) ips.add(a.address);
  for (const a of cfg.advertise) (/^[\d.]+$|:/.test(a) ? ips : dnsNames).add(a.replace(/:\d+$/, ''));
  return { dnsNames: [...dnsNames], ips: [...ips] };
}

/**
 * The certificate the controller serves gRPC and HTTPS with, issued by its CA. A rotation step (here, or taken by
 * another controller sharing the store) issues another, and every server takes it up.
 */
export class ServingCertificates {
  private cert: ServerCertificate;
  private readonly listeners: Array<(cert: ServerCertificate) => void> = [];

  constructor(
    private readonly cfg: ControllerConfig,
    private readonly ca: CertificateAuthority,
  ) {
    this.cert = ca.issueServerCert(serverNames(cfg));
  }

  get current(): ServerCertificate {
    return this.cert;
  }

  onChange(f: (cert: ServerCertificate) => void): void {
    this.listeners.push(f);
  }

  reissue(): void {
    this.cert = this.ca.issueServerCert(serverNames(this.cfg));
    for (const f of this.listeners) f(this.cert);
  }
}
