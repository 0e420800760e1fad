import type { MetricsRegistry } from '../lib/metrics-registry.js';
import type { StreamMetrics, StreamStatus } from './server-stream.js';
import { CDS, EDS, LDS, RDS, typeLabel } from './type-urls.js';

// istiod's buckets (seconds), so its dashboards' histogram_quantile panels read the same way.
const PUSH_TIME_BUCKETS = [0.01, 0.1, 1, 3, 5, 10, 20, 30];
const CONVERGENCE_BUCKETS = [0.1, 0.5, 1, 3, 5, 10, 20, 30];
const REJECT_GAUGES: ReadonlyArray<readonly [string, string]> = [
  [CDS, 'cds'],
  [EDS, 'eds'],
  [LDS, 'lds'],
  [RDS, 'rds'],
];

/** istiod's `type` label: cds, eds, lds, rds, sds, nds (vmesh's name table), or the message name. */
export const xdsTypeLabel = (typeUrl: string): string => typeLabel(typeUrl).toLowerCase();

/**
 * The xDS server's metrics under istiod's names (pilot_xds, pilot_xds_pushes, pilot_xds_push_time,
 * pilot_proxy_convergence_time, pilot_total_xds_rejects, pilot_xds_<type>_reject) plus vmesh_xds_connections by
 * stream kind. Streams report sends, ACKs and NACKs through it; connection gauges are read from the streams' status.
 */
export class XdsMetrics implements StreamMetrics {
  private readonly pushes;
  private readonly rejects;
  private readonly pushTime;
  private readonly convergence;

  constructor(registry: MetricsRegistry, streams: () => Iterable<StreamStatus & { readonly server: string }>) {
    this.pushes = registry.counter('pilot_xds_pushes', 'xDS responses sent, by type', ['type']);
    this.rejects = registry.counter('pilot_total_xds_rejects', 'xDS responses rejected by proxies (NACK), by type', ['type']);
    this.pushTime = registry.histogram(
      'pilot_xds_push_time',
      'Seconds from a new snapshot for a proxy to its response being written, by type',
      ['type'],
      PUSH_TIME_BUCKETS,
    );
    this.convergence = registry.histogram(
      'pilot_proxy_convergence_time',
      'Seconds from a new snapshot for a proxy to the proxy acknowledging the response built from it',
      [],
      CONVERGENCE_BUCKETS,
    );
    registry.gauge('pilot_xds', 'Proxies connected over xDS', [], () => [[[], [...streams()].length]]);
    registry.gauge(
      'vmesh_xds_connections',
      'Open xDS streams by kind (sotw, delta) and port (secure, plaintext)',
      ['mode', 'server'],
      () => {
        const n = new Map<string, number>();
        for (const s of streams()) n.set(`${s.mode}\u0001${s.server}`, (n.get(`${s.mode}\u0001${s.server}`) ?? 0) + 1);
        return [...n].map(([k, v]) => [k.split('\u0001'), v] as const);
      },
    );
    for (const [typeUrl, name] of REJECT_GAUGES) {
      registry.gauge(
        `pilot_xds_${name}_reject`,
        `Proxies whose latest ${name.toUpperCase()} response stands rejected`,
        ['node'],
        function* () {
          for (const s of streams()) if (s.types[typeUrl]?.nacked) yield [[s.nodeId], 1];
        },
      );
    }
  }

  sent(typeUrl: string, seconds: number): void {
    const type = xdsTypeLabel(typeUrl);
    this.pushes.get([type]).value++;
    this.pushTime.observe(this.pushTime.get([type]), seconds);
  }

  acked(_typeUrl: string, seconds: number): void {
    this.convergence.observe(this.convergence.get([]), seconds);
  }

  nacked(typeUrl: string): void {
    this.rejects.get([xdsTypeLabel(typeUrl)]).value++;
  }
}
