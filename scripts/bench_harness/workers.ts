/**
 * The workers comparison: req/s of the gateway with `runtime.workers = 1` and `= 2` against
 * nginx `worker_processes 1` / `2` and HAProxy `nbthread 1` / `2`, in the same run. Six fresh
 * instances (so the main instances' settings and pinning stay as they are), loaded in the order
 * gateway×1, nginx×1, haproxy×1, gateway×2, nginx×2, haproxy×2 in every round, so the ×2 ÷ ×1
 * scaling of each proxy is paired per round like every other ratio.
 *
 * Pinning: the load generator stays where it always is. A 1-worker instance gets the usual
 * proxy CPU. A 2-worker instance gets two CPUs the load generator does not use when the
 * machine has them; on a 2-CPU machine it cannot, so it runs on both CPUs and shares one with
 * the load generator, and the generated text says so: those cells measure what a second worker
 * buys when its core is also the client's, not clean scaling.
 */

import { type Entry, runCells, unavailable } from "./cells.ts";
import { loadDescription, type Scenario } from "./options.ts";
import { type Ctx, type Proxy, startGateway, startHaproxy, startNginx } from "./proxies.ts";
import { log, stop } from "./procs.ts";
import {
  type Cell,
  PROXIES,
  type ProxyName,
  proxyTable,
  ratioTable,
  type ScenarioResult,
  spread,
} from "./report.ts";

const COUNTS = [1, 2] as const;
const STARTERS: Array<[ProxyName, (ctx: Ctx) => Promise<Proxy>]> = [
  ["gateway", startGateway],
  ["nginx", startNginx],
  ["haproxy", startHaproxy],
];

/** "0-2,5" → [0, 1, 2, 5]. */
export function parseCpuList(list: string): number[] {
  const out: number[] = [];
  for (const part of list.split(",")) {
    const [a, b] = part.split("-").map(Number);
    for (let i = a; i <= (b ?? a); i++) out.push(i);
  }
  return out;
}

/** The proxy CPUs for an instance with `n` workers, and a sentence saying why. */
export function workerCpus(ctx: Ctx, n: number): { cpus?: string; text: string } {
  const o = ctx.opts;
  if (!o.loadCpus || !o.proxyCpus) return { text: "not pinned (--no-pin or a single CPU)" };
  if (n === 1) return { cpus: o.proxyCpus, text: `CPU ${o.proxyCpus}` };
  const all = Array.from({ length: navigator.hardwareConcurrency }, (_, i) => i);
  const load = new Set(parseCpuList(o.loadCpus));
  const free = all.filter((c) => !load.has(c));
  if (free.length >= n) {
    const cpus = free.slice(0, n).join(",");
    return { cpus, text: `CPUs ${cpus} (none of them the load generator's)` };
  }
  return {
    cpus: all.join(","),
    text: `CPUs ${
      all.join(",")
    }, i.e. sharing CPU ${o.loadCpus} with the load generator: this machine has ${all.length} CPUs and the load generator needs one, so a second worker cannot have a core of its own here`,
  };
}

function label(name: ProxyName, n: number): string {
  return `${name}×${n}`;
}

export async function runWorkers(ctx: Ctx, s: Scenario): Promise<ScenarioResult> {
  const rows = (s.proxies ?? ["gateway", "nginx", "haproxy"]) as ProxyName[];
  const started: Proxy[] = [];
  const entries: Entry[] = [];
  const cells = new Map<string, Cell>();
  const pin = new Map<number, string>();
  log(`scenario ${s.id}: ${s.title}`);
  try {
    for (const n of COUNTS) {
      const { cpus, text } = workerCpus(ctx, n);
      pin.set(n, text);
      const dir = `${ctx.setup.dir}/workers-${n}`;
      await Deno.mkdir(dir, { recursive: true });
      const sub: Ctx = {
        ...ctx,
        opts: { ...ctx.opts, workers: n, proxyCpus: cpus },
        setup: { ...ctx.setup, dir, workers: n },
      };
      for (const [name, start] of STARTERS) {
        if (!rows.includes(name)) continue;
        const key = label(name, n);
        const cell: Cell = { rounds: [] };
        cells.set(key, cell);
        try {
          const p = await start(sub);
          started.push(p);
          log(`  ${key}: pid ${p.proc.pid}, port ${p.ports.h1}${cpus ? `, CPUs ${cpus}` : ""}`);
          cell.na = await unavailable(sub, p, s);
          entries.push({ key, proxy: p });
        } catch (e) {
          cell.na = `did not start: ${String(e instanceof Error ? e.message : e).split("\n")[0]}`.slice(
            0,
            200,
          );
          log(`  ${key}: ${cell.na}`);
        }
      }
    }
    await runCells(ctx, entries, s, cells);
  } finally {
    await Promise.all(started.map((p) => stop(p.proc).catch(() => {})));
  }
  return {
    id: s.id,
    title: s.title,
    load: "",
    cells: {} as Record<ProxyName, Cell>,
    rows,
    markdown: render(ctx, s, rows, cells, pin),
  };
}

function render(
  ctx: Ctx,
  s: Scenario,
  rows: ProxyName[],
  cells: Map<string, Cell>,
  pin: Map<number, string>,
): string {
  const lines = [
    `#### ${s.title}`,
    "",
    `Load: ${loadDescription(s)}, against a fresh instance of each proxy per worker count: gateway ` +
    "`runtime.workers = N` (N data-plane isolates, each binding the listener with SO_REUSEPORT), nginx " +
    "`worker_processes N` (with `reuseport` on the listener for N > 1), HAProxy `nbthread N`; one round " +
    "loads gateway×1, nginx×1, haproxy×1, gateway×2, nginx×2, haproxy×2 in that order. Caddy is left out " +
    "(GOMAXPROCS caps Go's threads; it has no worker count to compare).",
    "",
    `Pinning: load generator on CPU ${ctx.opts.loadCpus ?? "(not pinned)"}; 1 worker: proxy on ${
      pin.get(1)
    }; ` +
    `2 workers: proxy on ${pin.get(2)}. Origin on ${
      ctx.opts.originCpus ? `CPU ${ctx.opts.originCpus}` : "(not pinned)"
    }.`,
  ];
  for (const n of COUNTS) {
    const byName = Object.fromEntries(
      PROXIES.map((p) => [p, cells.get(label(p, n)) ?? { rounds: [], na: "not in this comparison" }]),
    ) as Record<ProxyName, Cell>;
    const r: ScenarioResult = { id: s.id, title: s.title, load: "", cells: byName, rows };
    lines.push(
      "",
      `${n} worker${n > 1 ? "s" : ""}:`,
      "",
      proxyTable(r, (p) => label(p, n)),
      "",
      ratioTable(r),
    );
  }
  lines.push(
    "",
    "Scaling, 2 workers ÷ 1 worker of the same proxy, paired per round (2.00 would be perfect scaling):",
    "",
    "| proxy | 1 worker req/s | 2 workers req/s | 2 ÷ 1 |",
    "| --- | ---: | ---: | ---: |",
  );
  for (const p of rows) {
    const one = cells.get(label(p, 1));
    const two = cells.get(label(p, 2));
    const cell = (c: Cell | undefined) =>
      !c || c.na || c.rounds.length === 0 ? `n/a: ${c?.na ?? "no data"}` : spread(c.rounds.map((x) => x.rps));
    let ratio = "n/a";
    if (one && two && !one.na && !two.na) {
      const k = Math.min(one.rounds.length, two.rounds.length);
      const xs = Array.from({ length: k }, (_, i) => two.rounds[i].rps / one.rounds[i].rps);
      if (xs.length) ratio = spread(xs, 2);
    }
    lines.push(`| ${p} | ${cell(one)} | ${cell(two)} | ${ratio} |`);
  }
  return lines.join("\n");
}
