import type { TransportSocket__Output } from '../../generated/envoy/config/core/v3/TransportSocket.js';
import type { CertificateValidationContext__Output } from '../../generated/envoy/extensions/transport_sockets/tls/v3/CertificateValidationContext.js';
import type { CommonTlsContext__Output } from '../../generated/envoy/extensions/transport_sockets/tls/v3/CommonTlsContext.js';
import type { DownstreamTlsContext__Output } from '../../generated/envoy/extensions/transport_sockets/tls/v3/DownstreamTlsContext.js';
import type { UpstreamTlsContext__Output } from '../../generated/envoy/extensions/transport_sockets/tls/v3/UpstreamTlsContext.js';
import type { Decoded, DecodedAny } from '../../xds/envoy-types.js';
import { TypedConfigUrl } from '../../xds/type-urls.js';
import type { DownstreamTls, UpstreamTls } from '../proxy-config.js';
import { fail, list, msg, part, refuseSet, str, typedAs, typeUrlOf, wrappedBool } from './read.js';

type CommonMsg = Partial<Decoded<CommonTlsContext__Output>>;

/**
 * Envoy TLS contexts (transport_sockets.tls.v3) as the proxy's UpstreamTls / DownstreamTls. Certificates are
 * named, never inlined: SDS secret names as they are, and files (gateway `tls_certificates`, CA `trusted_ca`
 * filenames) as `file:` secret names (see fileSecretName) that the SecretStore reads from disk.
 */

export const FILE_SECRET_PREFIX = 'file:';

/** `file:<cert path>` or `file:<cert path>:<key path>` (paths URI-encoded, so a `:` in a path stays unambiguous). */
export function fileSecretName(certPath: string, keyPath?: string): string {
  const key = keyPath === undefined ? '' : `:${encodeURIComponent(keyPath)}`;
  return `${FILE_SECRET_PREFIX}${encodeURIComponent(certPath)}${key}`;
}

/** The paths behind a `file:` secret name; undefined for SDS names. */
export function parseFileSecretName(name: string): { readonly certPath: string; readonly keyPath?: string } | undefined {
  if (!name.startsWith(FILE_SECRET_PREFIX)) return undefined;
  const [cert = '', key] = name.slice(FILE_SECRET_PREFIX.length).split(':');
  return key === undefined
    ? { certPath: decodeURIComponent(cert) }
    : { certPath: decodeURIComponent(cert), keyPath: decodeURIComponent(key) };
}

const RAW_BUFFER = 'type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer';

/** A transport socket: 'raw' (plaintext), or the TLS context message. */
export function transportSocket(
  v: Decoded<TransportSocket__Output> | null | undefined,
  path: string,
  want: 'upstream' | 'downstream',
): DecodedAny | 'raw' {
  const ts = msg(v, path);
  if (!ts) return 'raw';
  const typed = msg(ts.typed_config, `${path}.typed_config`);
  const url = typeUrlOf(typed);
  if (url === RAW_BUFFER || (url === '' && str(ts.name, `${path}.name`) === 'envoy.transport_sockets.raw_buffer')) return 'raw';
  const expected = want === 'upstream' ? TypedConfigUrl.upstreamTlsContext : TypedConfigUrl.downstreamTlsContext;
  if (url !== expected || !typed) fail(`${path}.typed_config`, `transport socket ${url || str(ts.name, 'name')} is not supported`);
  return typed;
}

function certificateName(common: CommonMsg, path: string, required: boolean): string | undefined {
  const sds = list(common.tls_certificate_sds_secret_configs, `${path}.tls_certificate_sds_secret_configs`);
  const files = list(common.tls_certificates, `${path}.tls_certificates`);
  if (sds.length + files.length > 1) fail(path, 'more than one certificate is not supported');
  refuseSet(common, ['tls_certificate_provider_instance', 'tls_certificate_certificate_provider_instance', 'custom_handshaker'], path);
  const first = sds[0];
  if (first !== undefined) return str(msg(first, `${path}.tls_certificate_sds_secret_configs[0]`)?.name, 'name');
  const file = msg(files[0], `${path}.tls_certificates[0]`);
  if (file) {
    const chain = msg(file.certificate_chain, `${path}.tls_certificates[0].certificate_chain`);
    const key = msg(file.private_key, `${path}.tls_certificates[0].private_key`);
    const certPath = str(chain?.filename, 'filename');
    const keyPath = str(key?.filename, 'filename');
    if (!certPath || !keyPath) fail(`${path}.tls_certificates[0]`, 'only certificate and key files are supported (no inline data)');
    return fileSecretName(certPath, keyPath);
  }
  if (required) fail(path, 'no certificate');
  return undefined;
}

interface Validation {
  readonly caSecret?: string;
  readonly caFile?: string;
  readonly sans: string[];
}

function validationContext(
  vc: Decoded<CertificateValidationContext__Output>,
  path: string,
  out: { caFile?: string; sans: string[] },
): void {
  refuseSet(
    vc,
    ['verify_certificate_spki', 'verify_certificate_hash', 'crl', 'custom_validator_config', 'allow_expired_certificate'],
    path,
  );
  const ca = msg(vc.trusted_ca, `${path}.trusted_ca`);
  if (ca) {
    const file = str(ca.filename, `${path}.trusted_ca.filename`);
    if (!file) fail(`${path}.trusted_ca`, 'only a CA file is supported (no inline data)');
    out.caFile = file;
  }
  list(vc.match_typed_subject_alt_names, `${path}.match_typed_subject_alt_names`).forEach((s, i) => {
    const p = `${path}.match_typed_subject_alt_names[${i}]`;
    const exact = msg(msg(s, p)?.matcher, `${p}.matcher`)?.exact;
    if (typeof exact !== 'string') fail(`${p}.matcher`, 'only exact SAN matches are supported');
    out.sans.push(exact);
  });
  list(vc.match_subject_alt_names, `${path}.match_subject_alt_names`).forEach((s, i) => {
    const exact = msg(s, `${path}.match_subject_alt_names[${i}]`)?.exact;
    if (typeof exact !== 'string') fail(`${path}.match_subject_alt_names[${i}]`, 'only exact SAN matches are supported');
    out.sans.push(exact);
  });
  if (vc.trust_chain_verification === 'ACCEPT_UNTRUSTED') fail(`${path}.trust_chain_verification`, 'ACCEPT_UNTRUSTED is not supported');
}

function validation(common: CommonMsg, path: string): Validation {
  const out: { caSecret?: string; caFile?: string; sans: string[] } = { sans: [] };
  const combined = msg(common.combined_validation_context, `${path}.combined_validation_context`);
  if (combined) {
    const dflt = msg(combined.default_validation_context, `${path}.combined_validation_context.default_validation_context`);
    if (dflt) validationContext(dflt, `${path}.combined_validation_context.default_validation_context`, out);
    const sds = msg(
      combined.validation_context_sds_secret_config,
      `${path}.combined_validation_context.validation_context_sds_secret_config`,
    );
    if (sds) out.caSecret = str(sds.name, 'name');
  }
  const vc = msg(common.validation_context, `${path}.validation_context`);
  if (vc) validationContext(vc, `${path}.validation_context`, out);
  const sds = msg(common.validation_context_sds_secret_config, `${path}.validation_context_sds_secret_config`);
  if (sds) out.caSecret = str(sds.name, 'name');
  return out;
}

/** TLS versions and ciphers other than the defaults would be silently ignored: refused until the proxy config carries them. */
function refuseTlsParams(common: CommonMsg, path: string): void {
  const p = msg(common.tls_params, `${path}.tls_params`);
  if (!p) return;
  const limited = (v: unknown) => v !== undefined && v !== null && v !== 'TLS_AUTO' && v !== 0;
  if (limited(p.tls_minimum_protocol_version) || limited(p.tls_maximum_protocol_version))
    fail(`${path}.tls_params`, 'TLS version limits are not supported');
  refuseSet(p, ['cipher_suites', 'ecdh_curves', 'signature_algorithms'], `${path}.tls_params`);
}

function alpn(common: CommonMsg, path: string): string[] {
  return list(common.alpn_protocols, `${path}.alpn_protocols`).map((a, i) => str(a, `${path}.alpn_protocols[${i}]`));
}

/** UpstreamTlsContext -> UpstreamTls (no CA: the server certificate is not verified, as in Envoy). */
export function upstreamTls(typed: DecodedAny, path: string): UpstreamTls {
  const ctx = typedAs<UpstreamTlsContext__Output>(typed, TypedConfigUrl.upstreamTlsContext, path);
  const cpath = `${path}.common_tls_context`;
  const common = part(ctx.common_tls_context, cpath);
  refuseTlsParams(common, cpath);
  const certSecret = certificateName(common, cpath, false);
  const v = validation(common, cpath);
  const sni = str(ctx.sni, `${path}.sni`);
  return {
    ...(sni ? { sni } : {}),
    ...(certSecret !== undefined ? { certSecret } : {}),
    ...(v.caSecret !== undefined ? { caSecret: v.caSecret } : {}),
    ...(v.caFile !== undefined ? { caFile: v.caFile } : {}),
    peerSans: v.sans,
    alpn: alpn(common, cpath),
  };
}

/** DownstreamTlsContext -> DownstreamTls. Client certificate pins (SANs) cannot be expressed yet and are refused. */
export function downstreamTls(typed: DecodedAny, path: string): DownstreamTls {
  const ctx = typedAs<DownstreamTlsContext__Output>(typed, TypedConfigUrl.downstreamTlsContext, path);
  const cpath = `${path}.common_tls_context`;
  const common = part(ctx.common_tls_context, cpath);
  refuseTlsParams(common, cpath);
  refuseSet(ctx, ['require_sni', 'full_scan_certs_on_sni_mismatch'], path);
  const certSecret = certificateName(common, cpath, true) ?? '';
  const v = validation(common, cpath);
  if (v.sans.length > 0) fail(`${cpath}`, 'client certificate SAN pins are not supported');
  const caSecret = v.caSecret ?? (v.caFile !== undefined ? fileSecretName(v.caFile) : undefined);
  return {
    certSecret,
    ...(caSecret !== undefined ? { caSecret } : {}),
    requireClientCert: wrappedBool(ctx.require_client_certificate, `${path}.require_client_certificate`) ?? false,
    alpn: alpn(common, cpath),
  };
}
