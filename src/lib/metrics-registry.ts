/**
 * A small metrics registry: counters, gauges and histograms keyed by a tuple of label values. It is made to be
 * snapshotted as plain JSON (a proxy worker answers the agent's `{kind:'metrics'}` with one), merged by summing
 * (the agent adds up its workers) and rendered as Prometheus text. Callers on a hot path look a series up once
 * and keep it: recording is then a field increment, with no label strings built per event.
 */

export type MetricType = 'counter' | 'gauge' | 'histogram';

export interface CounterSeries {
  value: number;
}

export interface HistogramSeries {
  /** Per-bucket (non-cumulative) counts; the last slot is +Inf. */
  readonly counts: number[];
  sum: number;
  count: number;
}

/** A family as it crosses the process boundary. */
export interface FamilySnapshot {
  readonly name: string;
  readonly help: string;
  readonly type: MetricType;
  readonly labelNames: readonly string[];
  readonly buckets?: readonly number[];
  readonly series: ReadonlyArray<{
    readonly labels: readonly string[];
    /** This series' own label names, when they differ from the family's (Telemetry tag overrides). */
    readonly labelNames?: readonly string[];
    readonly value?: number;
    readonly counts?: readonly number[];
    readonly sum?: number;
    readonly count?: number;
  }>;
}

export type MetricsSnapshot = readonly FamilySnapshot[];

const SEP = '\u0001';
/** Between a series' own label names and its values in a key; never in a label name. */
const NAMES_SEP = '\u0002';

function seriesKey(labels: readonly string[], names: readonly string[] | undefined): string {
  return names ? `${names.join(SEP)}${NAMES_SEP}${labels.join(SEP)}` : labels.join(SEP);
}

abstract class Family<S> {
  protected readonly series = new Map<string, { labels: readonly string[]; names?: readonly string[]; s: S }>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
  ) {}

  /**
   * The series for these label values (in labelNames order, or in `names` order for a series whose labels differ
   * from the family's), made on first use. Keep it: this builds a key.
   */
  get(labels: readonly string[], names?: readonly string[]): S {
    const key = seriesKey(labels, names);
    let e = this.series.get(key);
    if (!e) {
      e = { labels: [...labels], ...(names ? { names: [...names] } : {}), s: this.make() };
      this.series.set(key, e);
    }
    return e.s;
  }

  size(): number {
    return this.series.size;
  }

  protected abstract make(): S;
  abstract snapshot(): FamilySnapshot;
}

const named = (names: readonly string[] | undefined) => (names ? { labelNames: names } : {});

export class Counter extends Family<CounterSeries> {
  protected make(): CounterSeries {
    return { value: 0 };
  }
  snapshot(): FamilySnapshot {
    const series = [...this.series.values()].map((e) => ({ labels: e.labels, ...named(e.names), value: e.s.value }));
    return { name: this.name, help: this.help, type: 'counter', labelNames: this.labelNames, series };
  }
}

export class Histogram extends Family<HistogramSeries> {
  constructor(
    name: string,
    help: string,
    labelNames: readonly string[],
    readonly buckets: readonly number[],
  ) {
    super(name, help, labelNames);
  }
  protected make(): HistogramSeries {
    return { counts: new Array<number>(this.buckets.length + 1).fill(0), sum: 0, count: 0 };
  }
  /** Records one value: a linear scan of the (short) bucket list, no allocation. */
  observe(s: HistogramSeries, v: number): void {
    const b = this.buckets;
    let i = 0;
    while (i < b.length && v > (b[i] as number)) i++;
    s.counts[i] = (s.counts[i] as number) + 1;
    s.sum += v;
    s.count++;
  }
  snapshot(): FamilySnapshot {
    const series = [...this.series.values()].map((e) => ({
      labels: e.labels,
      ...named(e.names),
      counts: [...e.s.counts],
      sum: e.s.sum,
      count: e.s.count,
    }));
    return { name: this.name, help: this.help, type: 'histogram', labelNames: this.labelNames, buckets: this.buckets, series };
  }
}

/** A gauge read when a snapshot is taken (active connections, ejected hosts...). */
interface GaugeFamily {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  readonly collect: () => Iterable<readonly [readonly string[], number]>;
}

export class MetricsRegistry {
  private readonly families: Array<Counter | Histogram> = [];
  private readonly gauges: GaugeFamily[] = [];

  counter(name: string, help: string, labelNames: readonly string[]): Counter {
    const c = new Counter(name, help, labelNames);
    this.families.push(c);
    return c;
  }

  histogram(name: string, help: string, labelNames: readonly string[], buckets: readonly number[]): Histogram {
    const h = new Histogram(name, help, labelNames, buckets);
    this.families.push(h);
    return h;
  }

  gauge(name: string, help: string, labelNames: readonly string[], collect: GaugeFamily['collect']): void {
    this.gauges.push({ name, help, labelNames, collect });
  }

  snapshot(): MetricsSnapshot {
    const gauges: FamilySnapshot[] = this.gauges.map((g) => ({
      name: g.name,
      help: g.help,
      type: 'gauge',
      labelNames: g.labelNames,
      series: [...g.collect()].map(([labels, value]) => ({ labels, value })),
    }));
    return [...this.families.map((f) => f.snapshot()), ...gauges];
  }
}

/** Sums snapshots family by family and series by series (label tuples); families keep their first definition. */
export function mergeSnapshots(snaps: readonly MetricsSnapshot[]): MetricsSnapshot {
  const out = new Map<string, { f: FamilySnapshot; series: Map<string, FamilySnapshot['series'][number]> }>();
  for (const snap of snaps) {
    for (const f of snap) {
      let acc = out.get(f.name);
      if (!acc) {
        acc = { f, series: new Map() };
        out.set(f.name, acc);
      }
      for (const s of f.series) {
        const key = seriesKey(s.labels, s.labelNames);
        const prev = acc.series.get(key);
        if (!prev) acc.series.set(key, s);
        else if (f.type === 'histogram') {
          const counts = (prev.counts ?? []).map((c, i) => c + (s.counts?.[i] ?? 0));
          const sum = (prev.sum ?? 0) + (s.sum ?? 0);
          acc.series.set(key, { labels: s.labels, ...named(s.labelNames), counts, sum, count: (prev.count ?? 0) + (s.count ?? 0) });
        } else acc.series.set(key, { labels: s.labels, ...named(s.labelNames), value: (prev.value ?? 0) + (s.value ?? 0) });
      }
    }
  }
  return [...out.values()].map(({ f, series }) => ({ ...f, series: [...series.values()] }));
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function labelText(names: readonly string[], values: readonly string[], extra?: string): string {
  const parts = names.map((n, i) => `${n}="${escapeLabel(values[i] ?? '')}"`);
  if (extra) parts.push(extra);
  return parts.length > 0 ? `{${parts.join(',')}}` : '';
}

function num(v: number): string {
  return Number.isFinite(v) ? String(v) : v > 0 ? '+Inf' : v < 0 ? '-Inf' : 'NaN';
}

/** Prometheus text exposition format 0.0.4. */
export function renderPrometheus(snap: MetricsSnapshot): string {
  const lines: string[] = [];
  for (const f of snap) {
    lines.push(`# HELP ${f.name} ${f.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`, `# TYPE ${f.name} ${f.type}`);
    for (const s of f.series) {
      const names = s.labelNames ?? f.labelNames;
      if (f.type !== 'histogram') {
        lines.push(`${f.name}${labelText(names, s.labels)} ${num(s.value ?? 0)}`);
        continue;
      }
      const buckets = f.buckets ?? [];
      let cum = 0;
      buckets.forEach((b, i) => {
        cum += s.counts?.[i] ?? 0;
        lines.push(`${f.name}_bucket${labelText(names, s.labels, `le="${num(b)}"`)} ${cum}`);
      });
      lines.push(`${f.name}_bucket${labelText(names, s.labels, 'le="+Inf"')} ${s.count ?? 0}`);
      lines.push(`${f.name}_sum${labelText(names, s.labels)} ${num(s.sum ?? 0)}`);
      lines.push(`${f.name}_count${labelText(names, s.labels)} ${s.count ?? 0}`);
    }
  }
  return `${lines.join('\n')}\n`;
}
