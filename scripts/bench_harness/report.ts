/**
 * Turns measurements into the markdown of docs/benchmarks.md: one table per scenario (median
 * and min–max over the alternating rounds), then the gateway's ratio to each peer computed
 * round by round from the same run, then the memory rows. Every absolute number sits next to
 * its same-run peers; nothing here measures anything.
 */

export const PROXIES = ["gateway", "nginx", "haproxy", "caddy", "nghttpx"] as const;
export type ProxyName = typeof PROXIES[number];
/** The proxies every HTTP/1.1 scenario and the memory rows compare; nghttpx joins the HTTP/2 ones. */
export const CORE_PROXIES: readonly ProxyName[] = ["gateway", "nginx", "haproxy", "caddy"];
export const PEERS = CORE_PROXIES.filter((p) => p !== "gateway");

export interface Round {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  cpuUsPerReq: number;
  peakRssMiB: number;
  errors: number;
  requests: number;
  /** The load client's own CPU ÷ the run's duration (h3load reports it). */
  clientCpu?: number;
}

export interface Cell {
  rounds: Round[];
  /** Why this proxy has no numbers here (feature missing, run failed). */
  na?: string;
}

export interface ScenarioResult {
  id: string;
  title: string;
  load: string;
  cells: Record<ProxyName, Cell>;
  /** The table's rows, in order (the gateway first). */
  rows: readonly ProxyName[];
  /** A line printed under the load description (how the cells were made comparable). */
  note?: string;
  /** Markdown that replaces the standard table (scenarios with their own layout). */
  markdown?: string;
}

export interface MemoryRow {
  label: string;
  /** Number, or a string saying why there is none. */
  values: Record<ProxyName, number | string>;
  decimals: number;
  /** A count, not a cost: no gateway/peer ratio. */
  noRatio?: boolean;
}

export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export function fmt(x: number, decimals = 0): string {
  if (!Number.isFinite(x)) return "–";
  const s = x.toFixed(decimals);
  const [int, frac] = s.split(".");
  const grouped = int.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return frac ? `${grouped}.${frac}` : grouped;
}

/** "median (min–max)", or just the value for a single round. */
export function spread(xs: number[], decimals = 0): string {
  if (xs.length === 0) return "–";
  if (xs.length === 1) return fmt(xs[0], decimals);
  return `${fmt(median(xs), decimals)} (${fmt(Math.min(...xs), decimals)}–${fmt(Math.max(...xs), decimals)})`;
}

/** Digits that keep about three significant figures for latencies and costs. */
function dec(x: number): number {
  return !Number.isFinite(x) || x >= 100 ? 0 : x >= 10 ? 1 : 2;
}

export function scenarioTable(s: ScenarioResult): string {
  if (s.markdown !== undefined) return s.markdown;
  return [
    `#### ${s.title}`,
    "",
    `Load: ${s.load}`,
    "",
    ...(s.note ? [s.note, ""] : []),
    proxyTable(s),
    "",
    ratioTable(s),
  ]
    .join("\n");
}

/** One row per proxy in s.rows: median (min–max) over the rounds, or n/a with the reason. */
export function proxyTable(s: ScenarioResult, label: (p: ProxyName) => string = (p) => p): string {
  const lines = [
    "| proxy | req/s | p50 ms | p99 ms | CPU µs/req | peak RSS MiB | errors |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
  ];
  for (const p of s.rows) {
    const c = s.cells[p];
    if (c.na || c.rounds.length === 0) {
      lines.push(`| ${label(p)} | n/a: ${c.na ?? "no data"} | | | | | |`);
      continue;
    }
    const r = c.rounds;
    const p50 = r.map((x) => x.p50Ms);
    const p99 = r.map((x) => x.p99Ms);
    const cpu = r.map((x) => x.cpuUsPerReq);
    const errors = r.reduce((a, x) => a + x.errors, 0);
    const total = r.reduce((a, x) => a + x.requests, 0);
    const errText = errors === 0
      ? "0"
      : `${fmt(errors)} (${((100 * errors) / Math.max(1, total)).toFixed(2)}%)`;
    lines.push(
      `| ${label(p)} | ${spread(r.map((x) => x.rps))} | ${spread(p50, dec(median(p50)))} | ${
        spread(p99, dec(median(p99)))
      } | ${spread(cpu, dec(median(cpu)))} | ${
        fmt(Math.max(...r.map((x) => x.peakRssMiB)), 1)
      } | ${errText} |`,
    );
  }
  return lines.join("\n");
}

/** Ratios gateway/peer, paired round by round (round i of the gateway with round i of the peer). */
export function ratioTable(s: ScenarioResult): string {
  const g = s.cells.gateway;
  const lines = [
    "Gateway ÷ peer, paired per round, median (min–max): req/s > 1 is better; p99 and CPU/req < 1 are better.",
    "",
    "| ratio | req/s | p99 | CPU/req |",
    "| --- | ---: | ---: | ---: |",
  ];
  for (const peer of s.rows.filter((p) => p !== "gateway")) {
    const c = s.cells[peer];
    if (g.na || c.na || g.rounds.length === 0 || c.rounds.length === 0) {
      lines.push(`| gateway/${peer} | n/a | n/a | n/a |`);
      continue;
    }
    const n = Math.min(g.rounds.length, c.rounds.length);
    const pairs = (f: (r: Round) => number) =>
      Array.from({ length: n }, (_, i) => f(g.rounds[i]) / f(c.rounds[i])).filter(Number.isFinite);
    lines.push(
      `| gateway/${peer} | ${spread(pairs((r) => r.rps), 2)} | ${spread(pairs((r) => r.p99Ms), 2)} | ${
        spread(pairs((r) => r.cpuUsPerReq), 2)
      } |`,
    );
  }
  return lines.join("\n");
}

/** Rows of values per proxy (columns: `names`, the gateway first) with gateway/peer ratios. */
export function memoryTable(rows: MemoryRow[], names: readonly ProxyName[] = CORE_PROXIES): string {
  const peers = names.filter((p) => p !== "gateway");
  const lines = [
    `| row | ${names.join(" | ")} | ${peers.map((p) => `gateway/${p}`).join(" | ")} |`,
    `| --- | ${names.map(() => "---:").join(" | ")} | ${peers.map(() => "---:").join(" | ")} |`,
  ];
  for (const r of rows) {
    const cell = (v: number | string) => typeof v === "number" ? fmt(v, r.decimals) : `n/a: ${v}`;
    const g = r.values.gateway;
    const ratio = (peer: ProxyName) => {
      const v = r.values[peer];
      if (r.noRatio) return "";
      return typeof g === "number" && typeof v === "number" && v > 0 ? (g / v).toFixed(2) : "n/a";
    };
    lines.push(
      `| ${r.label} | ${names.map((p) => cell(r.values[p])).join(" | ")} | ${peers.map(ratio).join(" | ")} |`,
    );
  }
  return lines.join("\n");
}

export const BEGIN =
  "<!-- bench:begin: generated by scripts/bench; everything up to bench:end is overwritten -->";
export const END = "<!-- bench:end -->";

/** Replaces the generated section of an existing file (or appends one); keeps the hand-written rest. */
export function splice(existing: string | undefined, generated: string): string {
  const block = `${BEGIN}\n${generated.trim()}\n${END}\n`;
  if (existing === undefined) {
    return `# Benchmarks\n\nGenerated by \`scripts/bench\`; see docs/benchmarks.md for the method.\n\n${block}`;
  }
  const b = existing.indexOf("<!-- bench:begin");
  const e = existing.indexOf(END);
  if (b >= 0 && e > b) {
    return existing.slice(0, b) + block + existing.slice(e + END.length).replace(/^\n/, "");
  }
  return `${existing.trimEnd()}\n\n${block}`;
}
