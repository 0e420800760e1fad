import type { TransportSocket } from '../../generated/envoy/config/core/v3/TransportSocket.js';
import type { CommonTlsContext } from '../../generated/envoy/extensions/transport_sockets/tls/v3/CommonTlsContext.js';
import type { SdsSecretConfig } from '../../generated/envoy/extensions/transport_sockets/tls/v3/SdsSecretConfig.js';
import { SDS_CLUSTER, SDS_ROOT_CA } from './names.js';
import { typedConfig } from './typed-config.js';

type CombinedValidation = NonNullable<CommonTlsContext['combined_validation_context']>;

/**
 * SDS references to the agent's local secret server: the controller names secrets, the proxy fetches
 * them from its own host, so private keys never cross the network.
 */
export function sdsSecretConfig(name: string): SdsSecretConfig {
  return {
    name,
    sds_config: {
      api_config_source: {
        api_type: 'GRPC',
        transport_api_version: 'V3',
        grpc_services: [{ envoy_grpc: { cluster_name: SDS_CLUSTER } }],
      },
      resource_api_version: 'V3',
    },
  };
}

/** The trust bundle check: peers must chain to ROOTCA and, when given, carry one of these SPIFFE ids. */
function validationContext(spiffeIds: readonly string[]): CombinedValidation {
  return {
    default_validation_context:
      spiffeIds.length > 0 ? { match_typed_subject_alt_names: spiffeIds.map((id) => ({ san_type: 'URI', matcher: { exact: id } })) } : {},
    validation_context_sds_secret_config: sdsSecretConfig(SDS_ROOT_CA),
  };
}

/** Client side of mutual TLS to a meshed endpoint (Istio's ISTIO_MUTUAL). */
export function upstreamMtls(opts: {
  certSecret: string;
  sni: string;
  peerSpiffeIds: readonly string[];
  alpn?: readonly string[];
}): TransportSocket {
  return {
    name: 'envoy.transport_sockets.tls',
    typed_config: typedConfig('upstreamTlsContext', {
      sni: opts.sni,
      common_tls_context: {
        tls_certificate_sds_secret_configs: [sdsSecretConfig(opts.certSecret)],
        combined_validation_context: validationContext(opts.peerSpiffeIds),
        alpn_protocols: [...(opts.alpn ?? ['istio-peer-exchange', 'istio'])],
      },
    }),
  };
}

/** Server side of mutual TLS on the inbound listener; `requireClientCert` is true for mesh mTLS. */
export function downstreamMtls(opts: {
  certSecret: string;
  requireClientCert: boolean;
  peerSpiffeIds?: readonly string[];
}): TransportSocket {
  return {
    name: 'envoy.transport_sockets.tls',
    typed_config: typedConfig('downstreamTlsContext', {
      require_client_certificate: { value: opts.requireClientCert },
      common_tls_context: {
        tls_certificate_sds_secret_configs: [sdsSecretConfig(opts.certSecret)],
        combined_validation_context: validationContext(opts.peerSpiffeIds ?? []),
        alpn_protocols: ['h2', 'http/1.1'],
      },
    }),
  };
}
