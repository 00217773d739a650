/**
 * A small Prometheus registry: counters, gauges and histograms (cumulative `le` buckets; no
 * summaries, so latencies aggregate across instances). Hot paths resolve a labelled child
 * once (`family.with(...)`) and then bump a plain number; exposition walks the families only
 * when /metrics is scraped. Families are plain data (`collect()`), so data-plane workers can
 * ship theirs to the control isolate and the totals are merged there (`mergeCollected`).
 */

export type Labels = Readonly<Record<string, string>>;
export type MetricType = "counter" | "gauge" | "histogram";

export interface CollectedSeries {
  labels: Labels;
  /** counter/gauge value; histogram: sum */
  value: number;
  /** histogram only: cumulative counts per bucket (same order as `buckets`), then +Inf count */
  counts?: number[];
}

export interface CollectedFamily {
  name: string;
  help: string;
  type: MetricType;
  buckets?: number[];
  series: CollectedSeries[];
}

export class CounterChild {
  value = 0;
  constructor(readonly labels: Labels) {}
  inc(n = 1): void {
    this.value += n;
  }
}

export class GaugeChild {
  value = 0;
  constructor(readonly labels: Labels) {}
  set(n: number): void {
    this.value = n;
  }
  inc(n = 1): void {
    this.value += n;
  }
  dec(n = 1): void {
    this.value -= n;
  }
}

export class HistogramChild {
  sum = 0;
  /** per-bucket (non-cumulative) counts; the last slot is +Inf */
  readonly counts: Float64Array;
  constructor(readonly labels: Labels, readonly buckets: readonly number[]) {
    this.counts = new Float64Array(buckets.length + 1);
  }
  observe(v: number): void {
    this.sum += v;
    const b = this.buckets;
    let i = 0;
    while (i < b.length && v > b[i]) i++;
    this.counts[i]++;
  }
}

type Child = CounterChild | GaugeChild | HistogramChild;

abstract class Family<C extends Child> {
  readonly #children = new Map<string, C>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
    readonly type: MetricType,
  ) {}

  protected abstract make(labels: Labels): C;

  /** The child for these label values (in labelNames order). Cache the result on hot paths. */
  with(...values: string[]): C {
    const key = values.length === 1 ? values[0] : values.join("\u0000");
    let child = this.#children.get(key);
    if (!child) {
      if (values.length !== this.labelNames.length) {
        throw new Error(
          `metric ${this.name}: expected ${this.labelNames.length} label values, got ${values.length}`,
        );
      }
      const labels: Record<string, string> = {};
      this.labelNames.forEach((n, i) => labels[n] = values[i]);
      child = this.make(Object.freeze(labels));
      this.#children.set(key, child);
    }
    return child;
  }

  /** Drop a series (a backend removed by reload), so label cardinality stays bounded. */
  remove(...values: string[]): void {
    this.#children.delete(values.length === 1 ? values[0] : values.join("\u0000"));
  }

  children(): Iterable<C> {
    return this.#children.values();
  }
}

export class Counter extends Family<CounterChild> {
  protected make(labels: Labels) {
    return new CounterChild(labels);
  }
  inc(n = 1): void {
    this.with().inc(n);
  }
}

export class Gauge extends Family<GaugeChild> {
  protected make(labels: Labels) {
    return new GaugeChild(labels);
  }
  set(n: number): void {
    this.with().set(n);
  }
}

export class Histogram extends Family<HistogramChild> {
  constructor(
    name: string,
    help: string,
    labelNames: readonly string[],
    readonly buckets: readonly number[],
  ) {
    super(name, help, labelNames, "histogram");
  }
  protected make(labels: Labels) {
    return new HistogramChild(labels, this.buckets);
  }
}

/** Seconds buckets for request latencies: 1 ms … 60 s. */
export const LATENCY_BUCKETS = [
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
  30,
  60,
];

export class Registry {
  readonly #families = new Map<string, Family<Child>>();
  /** Called before each collect so gauges that mirror live state can refresh themselves. */
  readonly #collectHooks: Array<() => void> = [];

  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    return this.#register(name, () => new Counter(name, help, labelNames, "counter")) as Counter;
  }
  gauge(name: string, help: string, labelNames: readonly string[] = []): Gauge {
    return this.#register(name, () => new Gauge(name, help, labelNames, "gauge")) as Gauge;
  }
  histogram(
    name: string,
    help: string,
    labelNames: readonly string[] = [],
    buckets = LATENCY_BUCKETS,
  ): Histogram {
    return this.#register(name, () => new Histogram(name, help, labelNames, buckets)) as Histogram;
  }

  onCollect(hook: () => void): void {
    this.#collectHooks.push(hook);
  }

  /** Names of every registered family (the docs test compares these with docs/METRICS.md). */
  familyNames(): string[] {
    return [...this.#families.keys()];
  }

  #register(name: string, make: () => Family<Child>): Family<Child> {
    const existing = this.#families.get(name);
    if (existing) return existing;
    if (!/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(name)) throw new Error(`invalid metric name ${name}`);
    const fam = make();
    this.#families.set(name, fam);
    return fam;
  }

  collect(): CollectedFamily[] {
    for (const hook of this.#collectHooks) hook();
    const out: CollectedFamily[] = [];
    for (const fam of this.#families.values()) {
      const series: CollectedSeries[] = [];
      for (const c of fam.children()) {
        if (c instanceof HistogramChild) {
          let running = 0;
          const counts = Array.from(c.counts, (n) => running += n);
          series.push({ labels: c.labels, value: c.sum, counts });
        } else {
          series.push({ labels: c.labels, value: c.value });
        }
      }
      out.push({
        name: fam.name,
        help: fam.help,
        type: fam.type,
        buckets: fam instanceof Histogram ? [...fam.buckets] : undefined,
        series,
      });
    }
    return out;
  }
}

/**
 * Sums families from several sources (data-plane workers + control). Series with identical
 * labels add up; gauges add too (a per-worker gauge of open connections sums to the total).
 */
export function mergeCollected(sources: CollectedFamily[][]): CollectedFamily[] {
  const byName = new Map<string, CollectedFamily>();
  for (const families of sources) {
    for (const fam of families) {
      let target = byName.get(fam.name);
      if (!target) {
        target = { ...fam, series: [] };
        byName.set(fam.name, target);
      }
      for (const s of fam.series) {
        const key = labelKey(s.labels);
        const hit = target.series.find((t) => labelKey(t.labels) === key);
        if (!hit) {
          target.series.push({
            labels: s.labels,
            value: s.value,
            counts: s.counts ? [...s.counts] : undefined,
          });
        } else {
          hit.value += s.value;
          if (hit.counts && s.counts) s.counts.forEach((n, i) => hit.counts![i] += n);
        }
      }
    }
  }
  return [...byName.values()];
}

function labelKey(l: Labels): string {
  return Object.keys(l).sort().map((k) => `${k}=${l[k]}`).join(",");
}

/** Prometheus text exposition format 0.0.4. */
export function exposition(families: CollectedFamily[]): string {
  const lines: string[] = [];
  for (const fam of families) {
    lines.push(`# HELP ${fam.name} ${escapeHelp(fam.help)}`);
    lines.push(`# TYPE ${fam.name} ${fam.type}`);
    for (const s of fam.series) {
      if (fam.type === "histogram") {
        const counts = s.counts ?? [];
        fam.buckets!.forEach((b, i) => {
          lines.push(
            `${fam.name}_bucket${formatLabels(s.labels, ["le", formatNumber(b)])} ${counts[i] ?? 0}`,
          );
        });
        const total = counts[counts.length - 1] ?? 0;
        lines.push(`${fam.name}_bucket${formatLabels(s.labels, ["le", "+Inf"])} ${total}`);
        lines.push(`${fam.name}_sum${formatLabels(s.labels)} ${formatNumber(s.value)}`);
        lines.push(`${fam.name}_count${formatLabels(s.labels)} ${total}`);
      } else {
        lines.push(`${fam.name}${formatLabels(s.labels)} ${formatNumber(s.value)}`);
      }
    }
  }
  return lines.join("\n") + "\n";
}

function formatLabels(labels: Labels, extra?: [string, string]): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
  if (extra) parts.push(`${extra[0]}="${extra[1]}"`);
  return parts.length ? `{${parts.join(",")}}` : "";
}

function formatNumber(n: number): string {
  if (Number.isNaN(n)) return "NaN";
  if (n === Infinity) return "+Inf";
  if (n === -Infinity) return "-Inf";
  return String(n);
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

function escapeHelp(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}
