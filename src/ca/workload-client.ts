import { createHash, X509Certificate } from 'node:crypto';
import type * as grpc from '@grpc/grpc-js';
import type { SignWorkloadResponse__Output } from '../api/controller-proto.js';
import { ErrorCode, vmeshError } from '../lib/errors.js';
import { channelCredentials, checkIssued, newKey, unary } from './join-client.js';
import { parseSpiffeId } from './spiffe.js';
import { buildCsr, derToPem, readCertificate, splitCertificates, subjectAltNames } from './x509.js';

/** A workload certificate as the agent holds it: the key was made on this host and never left it. */
export interface WorkloadCert {
  readonly spiffeId: string;
  readonly keyPem: string;
  /** Leaf first, then intermediates. */
  readonly certChainPem: string;
  readonly trustBundlePem: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

export interface SignWorkloadOptions {
  readonly address: string;
  /** The host's credentials authenticate the call (mutual TLS); the controller signs only this host's workloads. */
  readonly host: { readonly keyPem: string; readonly certPem: string; readonly trustBundlePem: string };
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly timeoutMs?: number;
  /** An open vmesh.v1.Controller client (mutual TLS with the host certificate) to reuse; else a channel per call. */
  readonly client?: grpc.Client;
}

/** Makes a key here, sends only a CSR, and checks that what comes back is for that key and names the identity asked for. */
export async function signWorkloadCert(opts: SignWorkloadOptions): Promise<WorkloadCert> {
  const key = newKey();
  const csrPem = derToPem(buildCsr(key, `${opts.serviceAccount}.${opts.namespace}`), 'CERTIFICATE REQUEST');
  const what = `SignWorkload ${opts.namespace}/${opts.serviceAccount} on ${opts.address}`;
  const res = await unary<SignWorkloadResponse__Output>({
    address: opts.address,
    credentials: channelCredentials(opts.host.trustBundlePem, opts.host),
    method: 'SignWorkload',
    request: { namespace: opts.namespace, serviceAccount: opts.serviceAccount, csrPem },
    timeoutMs: opts.timeoutMs ?? 15_000,
    ...(opts.client ? { client: opts.client } : {}),
  });
  const leafPem = splitCertificates(res.certChainPem)[0];
  if (!leafPem) throw vmeshError(ErrorCode.Internal, `${what}: the controller returned no certificate`);
  // The chain's intermediates join the bundle for the check: the leaf may be signed by an intermediate CA.
  const notAfter = checkIssued(leafPem, res.certChainPem + res.trustBundlePem, key, undefined, what);
  const leaf = new X509Certificate(leafPem);
  const ids = subjectAltNames(readCertificate(leaf.raw)).uris.map(parseSpiffeId);
  const id = ids.find((r) => r.ok && r.value.kind === 'workload');
  if (!id?.ok || id.value.kind !== 'workload' || id.value.namespace !== opts.namespace || id.value.serviceAccount !== opts.serviceAccount) {
    throw vmeshError(ErrorCode.Internal, `${what}: the returned certificate names another identity`);
  }
  return {
    spiffeId: id.value.uri,
    keyPem: key.export({ type: 'pkcs8', format: 'pem' }).toString(),
    certChainPem: res.certChainPem,
    trustBundlePem: res.trustBundlePem,
    notBefore: new Date(leaf.validFrom),
    notAfter,
  };
}

/** The hash the controller announces for its trust bundle (HealthReportAck.trust_bundle_sha256). */
export function trustBundleSha256(bundlePem: string): string {
  return createHash('sha256').update(bundlePem.replace(/\r\n/g, '\n').trim()).digest('hex');
}
