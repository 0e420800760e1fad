/**
 * Caps on what one network peer may make the controller hold or compute, in one place so the README's
 * "Security model and limits" can be checked against the code. Each is sized from the largest legitimate
 * request, with room to spare; a peer over a cap gets a one-line error naming it.
 */
export const Limits = {
  /**
   * A CSR in PEM. A P-256 CSR is ~0.5 KiB and an RSA-4096 one ~1.8 KiB; 8 KiB leaves room for extensions a
   * client may add and bounds the DER the CA parses.
   */
  csrPemBytes: 8 * 1024,
  /** Join's token text: `vmesh1.` + 6 + 64 (longest secret the format allows) + 64 hex, rounded up. */
  joinTokenChars: 256,
  /** Join's host name: a DNS name is at most 253 characters. */
  hostNameChars: 253,
  /**
   * Largest gRPC message the controller's TLS port (15012) reads. A delta ADS reconnect from a host of a large
   * mesh (initial_resource_versions for ~10k clusters and endpoints, ~100 bytes each) is the largest; grpc's
   * own default, made explicit.
   */
  grpcMessageBytes: 4 * 1024 * 1024,
  /** The plaintext xDS port (15010): proxyless clients send a node and the names they watch. */
  plaintextGrpcMessageBytes: 1024 * 1024,
  /** HTTP/2 streams one connection may have open at once (grpc-go and Envoy allow 100 by default for upstreams). */
  streamsPerConnection: 128,
  /** A connection with no stream open for this long is closed (GOAWAY); an agent's connection always has its ADS stream. */
  connectionIdleMs: 120_000,
  /** A TLS handshake on 15012 or 15014 not finished by then is closed (Node's default is 120 s). */
  tlsHandshakeMs: 10_000,
  /** An ADS stream whose first request (the node) has not arrived by then is closed with DEADLINE_EXCEEDED. */
  firstRequestMs: 10_000,
  /** ADS streams one peer address may hold before its first request authenticates it. */
  pendingStreamsPerPeer: 32,
  /** Authenticated ADS streams per node id (an agent keeps one; a restart briefly overlaps the old one). */
  streamsPerNode: 8,
  /** An xDS node id (Envoy's `sidecar~ip~pod.ns~ns.svc.cluster.local` is ~100). */
  nodeIdChars: 1024,
  /** Plaintext xDS: streams per peer address, authenticated or not (no identity to count by). */
  plaintextStreamsPerPeer: 256,
  /** HTTPS API request body. */
  apiBodyBytes: 4 * 1024 * 1024,
  /**
   * Nesting depth of YAML/JSON config (collections inside collections). The deepest Istio resources (an
   * EnvoyFilter patch) nest ~20; the YAML composer recurses per level, and 100k levels abort V8.
   */
  configDepth: 100,
  /** YAML documents in one config input; more is not a config but a flood. */
  configDocuments: 10_000,
  /** The config reader's thread: its heap ceiling, and how long one input may take to read (16 MiB of dense config, the most one apply takes: ~20 s). */
  configParseHeapMb: 512,
  /** Syntax errors reported for one config input: garbage has one per token. */
  configIssues: 100,
  configParseMs: 60_000,
} as const;

/** grpc-js server options that enforce the caps above on the controller's TLS (15012) or plaintext xDS (15010) port. */
export function grpcServerOptions(port: 'tls' | 'plaintext'): Record<string, number> {
  return {
    'grpc.max_receive_message_length': port === 'tls' ? Limits.grpcMessageBytes : Limits.plaintextGrpcMessageBytes,
    'grpc.max_concurrent_streams': Limits.streamsPerConnection,
    'grpc.max_connection_idle_ms': Limits.connectionIdleMs,
  };
}
