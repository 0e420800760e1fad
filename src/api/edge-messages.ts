import type { EdgeStats, EdgeStats__Output } from './controller-proto.js';
import { type EdgeSample, MAX_EDGES } from './edges.js';

/** Longest label and bucket list accepted from a report: a host's telemetry must not grow the controller unbounded. */
const MAX_TEXT = 512;
const MAX_BUCKETS = 64;

export function edgeToMessage(e: EdgeSample): EdgeStats {
  return { ...e, durationCounts: [...e.durationCounts], durationBounds: [...e.durationBounds] };
}

/** A non-negative finite count from a uint64 (a string, as proto-loader gives longs), else 0. */
function count(v: string | number | undefined): number {
  const n = Number(v ?? 0);
  return Number.isFinite(n) && n > 0 ? n : 0;
}

function text(v: string | undefined): string {
  return (v ?? '').slice(0, MAX_TEXT) || 'unknown';
}

/** Telemetry is informational (never used to authorize anything), but it is bounded and its enums checked. */
export function edgesFromMessages(ms: readonly EdgeStats__Output[] | undefined): EdgeSample[] {
  return (ms ?? []).slice(0, MAX_EDGES).map((m) => {
    const bounds = (m.durationBounds ?? []).slice(0, MAX_BUCKETS).map(Number);
    const counts = (m.durationCounts ?? []).map(count);
    const histogramOk = counts.length === bounds.length + 1 && bounds.every((b) => Number.isFinite(b));
    return {
      reporter: m.reporter === 'source' ? 'source' : 'destination',
      sourceWorkload: text(m.sourceWorkload),
      sourceNamespace: text(m.sourceNamespace),
      sourcePrincipal: text(m.sourcePrincipal),
      destinationService: text(m.destinationService),
      destinationWorkload: text(m.destinationWorkload),
      destinationNamespace: text(m.destinationNamespace),
      security: m.security === 'mutual_tls' || m.security === 'none' ? m.security : 'unknown',
      protocol: m.protocol === 'grpc' || m.protocol === 'tcp' ? m.protocol : 'http',
      requests: count(m.requests),
      errors: count(m.errors),
      durationCounts: histogramOk ? counts : [],
      durationBounds: histogramOk ? bounds : [],
      tcpSentBytes: count(m.tcpSentBytes),
      tcpReceivedBytes: count(m.tcpReceivedBytes),
      tcpConnectionsOpened: count(m.tcpConnectionsOpened),
    };
  });
}
