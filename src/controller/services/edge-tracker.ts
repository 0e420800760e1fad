import { type EdgeProtocol, type EdgeSample, type GraphEdge, type GraphNode, histogramQuantile, type MeshGraph } from '../../api/edges.js';

interface Report {
  readonly at: number;
  readonly edges: readonly EdgeSample[];
}

/** One sample's change over a host's last report interval, plus its totals. */
interface Window {
  readonly sample: EdgeSample;
  readonly seconds: number;
  readonly requests: number;
  readonly errors: number;
  readonly counts: readonly number[];
}

interface Acc {
  source: string;
  target: string;
  protocol: EdgeProtocol;
  perSecond: number;
  windowRequests: number;
  windowErrors: number;
  counts: number[];
  bounds: readonly number[];
  mtls: boolean;
  requests: number;
  errors: number;
}

export interface EdgeTrackerOptions {
  /** How often agents report; a host silent for more than three intervals leaves the graph. */
  readonly reportIntervalMs: number;
  /**
   * A report closer than this to the host's latest one replaces it: an agent reports twice at once when it first
   * learns its workloads, and rates over a few milliseconds would be noise.
   */
  readonly minWindowMs?: number;
}

const sampleKey = (e: EdgeSample) =>
  [
    e.reporter,
    e.sourceNamespace,
    e.sourceWorkload,
    e.sourcePrincipal,
    e.destinationService,
    e.destinationNamespace,
    e.destinationWorkload,
    e.security,
    e.protocol,
  ].join('\u0001');

/** A counter's increase, as Prometheus' rate() treats a reset: a value below the previous one restarted at 0. */
const increase = (now: number, before: number | undefined) => (before === undefined || now < before ? now : now - before);

const isUnknown = (v: string) => v === '' || v === 'unknown';

function workloadNode(namespace: string, name: string): GraphNode {
  if (isUnknown(name)) return { id: 'unknown', kind: 'unknown', name: 'unknown', namespace: isUnknown(namespace) ? '' : namespace };
  return { id: `workload:${namespace}/${name}`, kind: 'workload', name, namespace };
}

function serviceNode(host: string): GraphNode {
  if (isUnknown(host)) return { id: 'unknown', kind: 'unknown', name: 'unknown', namespace: '' };
  const m = /^([^.]+)\.([^.]+)\.(mesh|svc\.cluster\.local)$/.exec(host);
  return { id: `service:${host}`, kind: 'service', name: m?.[1] ?? host, namespace: m?.[2] ?? '' };
}

/**
 * The controller's view of traffic between workloads, from the edge samples agents send with their health
 * reports. Rates come from a host's last two reports, so the controller needs no time series store.
 */
export class EdgeTracker {
  private readonly reports = new Map<string, Report[]>();

  constructor(private readonly opts: EdgeTrackerOptions) {}

  record(host: string, at: number, edges: readonly EdgeSample[]): void {
    const list = this.reports.get(host) ?? [];
    const last = list[list.length - 1];
    if (last && at - last.at < (this.opts.minWindowMs ?? 1000)) list.pop();
    list.push({ at, edges });
    this.reports.set(host, list.slice(-2));
  }

  forget(host: string): void {
    this.reports.delete(host);
  }

  /** Hosts whose reports are held (a controller metric). */
  hosts(): number {
    return this.reports.size;
  }

  /** Edge samples in the hosts' latest reports. */
  samples(): number {
    let n = 0;
    for (const r of this.reports.values()) n += r[r.length - 1]?.edges.length ?? 0;
    return n;
  }

  graph(now: number): MeshGraph {
    const windows: Window[] = [];
    for (const [host, list] of this.reports) {
      const last = list[list.length - 1];
      if (!last || now - last.at > 3 * this.opts.reportIntervalMs) {
        this.reports.delete(host);
        continue;
      }
      windows.push(...hostWindows(list));
    }
    // The destination's proxy saw the request arrive (and the policy it applied); the caller's report counts
    // only for calls no destination reported, e.g. to services outside the mesh.
    const seenByDestination = new Set(windows.filter((w) => w.sample.reporter === 'destination').map((w) => pairKey(w.sample)));
    const used = windows.filter((w) => w.sample.reporter === 'destination' || !seenByDestination.has(pairKey(w.sample)));

    const nodes = new Map<string, GraphNode>();
    const edges = new Map<string, Acc>();
    const add = (from: GraphNode, to: GraphNode, w: Window) => {
      nodes.set(from.id, from);
      nodes.set(to.id, to);
      const id = `${from.id}->${to.id}|${w.sample.protocol}`;
      let a = edges.get(id);
      if (!a) {
        a = {
          source: from.id,
          target: to.id,
          protocol: w.sample.protocol,
          perSecond: 0,
          windowRequests: 0,
          windowErrors: 0,
          counts: [],
          bounds: w.sample.durationBounds,
          mtls: true,
          requests: 0,
          errors: 0,
        };
        edges.set(id, a);
      }
      const tcp = w.sample.protocol === 'tcp';
      // TCP edges have no requests: their rate is connections opened per second.
      const total = tcp ? w.sample.tcpConnectionsOpened : w.sample.requests;
      a.perSecond += w.seconds > 0 ? w.requests / w.seconds : 0;
      a.windowRequests += w.requests;
      a.windowErrors += w.errors;
      a.requests += total;
      a.errors += tcp ? 0 : w.sample.errors;
      a.mtls &&= w.sample.security === 'mutual_tls';
      if (a.counts.length === 0) a.bounds = w.sample.durationBounds;
      if (sameBounds(a.bounds, w.sample.durationBounds)) {
        for (const [i, c] of w.counts.entries()) a.counts[i] = (a.counts[i] ?? 0) + c;
      }
    };
    for (const w of used) {
      const svc = serviceNode(w.sample.destinationService);
      add(workloadNode(w.sample.sourceNamespace, w.sample.sourceWorkload), svc, w);
      // A destination outside the mesh has no workload name: the service is where the edge ends.
      if (!isUnknown(w.sample.destinationWorkload)) add(svc, workloadNode(w.sample.destinationNamespace, w.sample.destinationWorkload), w);
    }
    return {
      generatedAt: new Date(now).toISOString(),
      nodes: [...nodes.values()].sort((a, b) => a.id.localeCompare(b.id)),
      edges: [...edges.entries()]
        .sort(([a], [b]) => a.localeCompare(b))
        .map(
          ([id, a]): GraphEdge => ({
            id,
            source: a.source,
            target: a.target,
            protocol: a.protocol,
            rps: a.perSecond,
            errorRate: a.windowRequests > 0 ? a.windowErrors / a.windowRequests : 0,
            p99Ms: histogramQuantile(0.99, a.bounds, a.counts),
            mtls: a.mtls,
            requests: a.requests,
            errors: a.errors,
          }),
        ),
    };
  }
}

const pairKey = (e: EdgeSample) => `${e.sourceNamespace}/${e.sourceWorkload}\u0001${e.destinationService}`;

function sameBounds(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/**
 * Each sample of the host's latest report against the one before. With a single report there is no interval:
 * the rate is 0, and error rate and latency are over everything since the agent started.
 */
function hostWindows(list: readonly Report[]): Window[] {
  const last = list[list.length - 1] as Report;
  const prev = list.length > 1 ? list[0] : undefined;
  const before = new Map((prev?.edges ?? []).map((e) => [sampleKey(e), e]));
  const seconds = prev ? (last.at - prev.at) / 1000 : 0;
  return last.edges.map((e) => {
    const p = before.get(sampleKey(e));
    const tcp = e.protocol === 'tcp';
    const requests = tcp ? increase(e.tcpConnectionsOpened, p?.tcpConnectionsOpened) : increase(e.requests, p?.requests);
    const reset = p !== undefined && (tcp ? e.tcpConnectionsOpened < p.tcpConnectionsOpened : e.requests < p.requests);
    const base = reset || !p || !sameBounds(p.durationBounds, e.durationBounds) ? undefined : p;
    return {
      sample: e,
      seconds,
      requests,
      errors: tcp ? 0 : increase(e.errors, base?.errors),
      counts: e.durationCounts.map((c, i) => increase(c, base?.durationCounts[i])),
    };
  });
}
