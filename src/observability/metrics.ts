/**
 * A small Prometheus registry: counters, gauges and histograms (cumulative `le` buckets; no
 * summaries, so latencies aggregate across instances). Hot paths resolve a labelled child
 * once (`family.with(...)`) and then bump a plain number; exposition walks the families only
 * when /metrics is scraped. Families are plain data (`collect()`), so data-plane workers can
 * ship theirs to the control isolate and the totals are merged there (`mergeCollected`).
 *
 * Misuse by code (a bad metric or label name, a type clash, unsorted buckets, the wrong
 * number of label values) throws at registration or first use, so it shows up in tests;
 * scraping (`collect`, `exposition`) never throws.
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

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

export class CounterChild {
  value = 0;
  constructor(readonly labels: Labels) {}
  /** Counters only go up: negative or NaN increments are ignored rather than corrupting the series. */
  inc(n = 1): void {
    if (n > 0) this.value += n;
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
    // NaN would poison _sum forever and fits no bucket; drop it.
    if (Number.isNaN(v)) return;
    this.sum += v;
    // First bucket with v <= upper bound ("le"); the bucket lists are short (~15), so a
    // linear scan beats a binary search here, and most latencies land in the first few.
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
  ) {
    const seen = new Set<string>();
    for (const l of labelNames) {
      if (!LABEL_NAME.test(l) || l.startsWith("__")) {
        throw new Error(`metric ${name}: invalid label name '${l}'`);
      }
      if (seen.has(l)) throw new Error(`metric ${name}: duplicate label name '${l}'`);
      if (type === "histogram" && l === "le") {
        throw new Error(`metric ${name}: 'le' is reserved in histograms`);
      }
      seen.add(l);
    }
  }

  protected abstract make(labels: Labels): C;

  /**
   * The last lookup, checked first: a data plane usually asks for the same series request
   * after request (one listener, one backend), and comparing the label strings (usually the
   * very same string objects) is cheaper than building the key and hashing it.
   */
  #lastValues: readonly string[] | undefined;
  #lastChild: C | undefined;

  /** The child for these label values (in labelNames order). Cache the result on hot paths. */
  with(...values: string[]): C {
    const last = this.#lastValues;
    if (last !== undefined && last.length === values.length) {
      let same = true;
      for (let i = 0; i < values.length; i++) {
        if (last[i] !== values[i]) {
          same = false;
          break;
        }
      }
      if (same) return this.#lastChild!;
    }
    const child = this.#lookup(values);
    this.#lastValues = values;
    this.#lastChild = child;
    return child;
  }

  #lookup(values: string[]): C {
    if (values.length !== this.labelNames.length) {
      throw new Error(
        `metric ${this.name}: expected ${this.labelNames.length} label values, got ${values.length}`,
      );
    }
    const key = seriesKey(values);
    let child = this.#children.get(key);
    if (!child) {
      const labels: Record<string, string> = {};
      this.labelNames.forEach((n, i) => labels[n] = String(values[i]));
      child = this.make(Object.freeze(labels));
      this.#children.set(key, child);
    }
    return child;
  }

  /** Drop a series (a backend removed by reload), so label cardinality stays bounded. */
  remove(...values: string[]): void {
    this.#children.delete(seriesKey(values));
    this.#lastValues = this.#lastChild = undefined; // it may be the one just dropped
  }

  /** Drops every series whose labels include all of `match` (e.g. {pool, backend}). */
  removeMatching(match: Record<string, string>): void {
    const entries = Object.entries(match);
    this.#lastValues = this.#lastChild = undefined;
    for (const [key, child] of this.#children) {
      if (entries.every(([k, v]) => child.labels[k] === v)) this.#children.delete(key);
    }
  }

  children(): Iterable<C> {
    return this.#children.values();
  }
}

function seriesKey(values: readonly string[]): string {
  return values.length === 1 ? values[0] : values.join("\u0000");
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
  readonly buckets: readonly number[];
  constructor(name: string, help: string, labelNames: readonly string[], buckets: readonly number[]) {
    super(name, help, labelNames, "histogram");
    // +Inf is implicit (always exposed); the rest must be finite and strictly increasing,
    // or the cumulative counts would not be monotonic.
    const finite = buckets.filter((b) => b !== Infinity);
    for (let i = 0; i < finite.length; i++) {
      if (!Number.isFinite(finite[i]) || (i > 0 && finite[i] <= finite[i - 1])) {
        throw new Error(`metric ${name}: buckets must be finite and strictly increasing`);
      }
    }
    this.buckets = Object.freeze(finite);
  }
  protected make(labels: Labels) {
    return new HistogramChild(labels, this.buckets);
  }
  observe(v: number): void {
    this.with().observe(v);
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
  /** Last error thrown by a collect hook (a bug; reported rather than breaking /metrics). */
  hookError: unknown;

  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    return this.#register(
      name,
      "counter",
      labelNames,
      () => new Counter(name, help, labelNames, "counter"),
    ) as Counter;
  }
  gauge(name: string, help: string, labelNames: readonly string[] = []): Gauge {
    return this.#register(
      name,
      "gauge",
      labelNames,
      () => new Gauge(name, help, labelNames, "gauge"),
    ) as Gauge;
  }
  histogram(
    name: string,
    help: string,
    labelNames: readonly string[] = [],
    buckets: readonly number[] = LATENCY_BUCKETS,
  ): Histogram {
    return this.#register(
      name,
      "histogram",
      labelNames,
      () => new Histogram(name, help, labelNames, buckets),
    ) as Histogram;
  }

  onCollect(hook: () => void): void {
    this.#collectHooks.push(hook);
  }

  /** Names of every registered family (the docs test compares these with docs/METRICS.md). */
  familyNames(): string[] {
    return [...this.#families.keys()];
  }

  /** Registering the same name twice returns the first family, if the type and labels agree. */
  #register(
    name: string,
    type: MetricType,
    labelNames: readonly string[],
    make: () => Family<Child>,
  ): Family<Child> {
    const existing = this.#families.get(name);
    if (existing) {
      if (existing.type !== type || existing.labelNames.join(",") !== labelNames.join(",")) {
        throw new Error(`metric ${name} is already registered as a ${existing.type} with other labels`);
      }
      return existing;
    }
    if (!METRIC_NAME.test(name)) throw new Error(`invalid metric name ${name}`);
    const fam = make();
    // An unlabelled series exists from the start, so "0 reloads" is a sample, not an absence.
    if (labelNames.length === 0) fam.with();
    this.#families.set(name, fam);
    return fam;
  }

  collect(): CollectedFamily[] {
    for (const hook of this.#collectHooks) {
      try {
        hook();
      } catch (e) {
        this.hookError = e;
      }
    }
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
 * The first source to name a family decides its type, help and buckets; a later source that
 * disagrees on type or buckets is skipped for that family rather than producing nonsense.
 */
export function mergeCollected(sources: CollectedFamily[][]): CollectedFamily[] {
  const byName = new Map<string, { fam: CollectedFamily; index: Map<string, CollectedSeries> }>();
  for (const families of sources) {
    for (const fam of families) {
      let target = byName.get(fam.name);
      if (!target) {
        target = {
          fam: { ...fam, buckets: fam.buckets ? [...fam.buckets] : undefined, series: [] },
          index: new Map(),
        };
        byName.set(fam.name, target);
      } else if (
        target.fam.type !== fam.type ||
        (target.fam.buckets ?? []).join(",") !== (fam.buckets ?? []).join(",")
      ) {
        continue;
      }
      for (const s of fam.series) {
        const key = labelKey(s.labels);
        const hit = target.index.get(key);
        if (!hit) {
          const copy = { labels: s.labels, value: s.value, counts: s.counts ? [...s.counts] : undefined };
          target.index.set(key, copy);
          target.fam.series.push(copy);
        } else {
          hit.value += s.value;
          if (hit.counts && s.counts) s.counts.forEach((n, i) => hit.counts![i] += n);
        }
      }
    }
  }
  return [...byName.values()].map((t) => t.fam);
}

function labelKey(l: Labels): string {
  return JSON.stringify(Object.keys(l).sort().map((k) => [k, l[k]]));
}

/** Prometheus text exposition format 0.0.4 (HELP, TYPE, then samples; histograms end in +Inf, _sum, _count). */
export function exposition(families: CollectedFamily[]): string {
  const lines: string[] = [];
  for (const fam of families) {
    lines.push(`# HELP ${fam.name} ${escapeHelp(fam.help)}`);
    lines.push(`# TYPE ${fam.name} ${fam.type}`);
    for (const s of fam.series) {
      if (fam.type === "histogram") {
        const buckets = fam.buckets ?? [];
        const counts = s.counts ?? [];
        buckets.forEach((b, i) => {
          lines.push(
            `${fam.name}_bucket${formatLabels(s.labels, ["le", formatNumber(b)])} ${
              formatNumber(counts[i] ?? 0)
            }`,
          );
        });
        const total = counts[buckets.length] ?? counts[counts.length - 1] ?? 0;
        lines.push(`${fam.name}_bucket${formatLabels(s.labels, ["le", "+Inf"])} ${formatNumber(total)}`);
        lines.push(`${fam.name}_sum${formatLabels(s.labels)} ${formatNumber(s.value)}`);
        lines.push(`${fam.name}_count${formatLabels(s.labels)} ${formatNumber(total)}`);
      } else {
        lines.push(`${fam.name}${formatLabels(s.labels)} ${formatNumber(s.value)}`);
      }
    }
  }
  return lines.join("\n") + "\n";
}

function formatLabels(labels: Labels, extra?: [string, string]): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(String(v))}"`);
  if (extra) parts.push(`${extra[0]}="${extra[1]}"`);
  return parts.length ? `{${parts.join(",")}}` : "";
}

function formatNumber(n: number): string {
  if (typeof n !== "number" || Number.isNaN(n)) return "NaN";
  if (n === Infinity) return "+Inf";
  if (n === -Infinity) return "-Inf";
  return String(n);
}

/** Label values: backslash, double quote and line feed are escaped (in that order of care). */
export function escapeLabel(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

/** HELP text: backslash and line feed only (quotes are literal there). */
export function escapeHelp(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}
