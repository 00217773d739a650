/**
 * The generated section of docs/benchmarks.md: machine and software description, pinning,
 * rounds, then the scenario tables and the memory table from report.ts.
 */

import type { Options } from "./options.ts";
import type { Proxy } from "./proxies.ts";
import { runCmd } from "./procs.ts";
import { type MemoryRow, memoryTable, type ScenarioResult, scenarioTable } from "./report.ts";

const MIB = 1024 * 1024;

async function firstLine(cmd: string, args: string[]): Promise<string> {
  try {
    const r = await runCmd(cmd, args, { timeoutMs: 10_000 });
    return (r.stdout + r.stderr).trim().split("\n")[0];
  } catch {
    return `${cmd}: not found`;
  }
}

async function machine(): Promise<string[]> {
  const cpuinfo = await Deno.readTextFile("/proc/cpuinfo").catch(() => "");
  const model = cpuinfo.match(/^model name\s*:\s*(.+)$/m)?.[1] ?? "unknown CPU";
  const kernel = (await Deno.readTextFile("/proc/sys/kernel/osrelease").catch(() => "?")).trim();
  const mem = (await Deno.readTextFile("/proc/meminfo").catch(() => "")).match(/^MemTotal:\s+(\d+)/m)?.[1];
  const versions = await Promise.all([
    firstLine("nginx", ["-v"]),
    firstLine("haproxy", ["-v"]),
    firstLine("caddy", ["version"]),
    firstLine("wrk", ["-v"]),
    firstLine("h2load", ["--version"]),
    firstLine("curl", ["--version"]),
    firstLine("nghttpx", ["--version"]),
    firstLine("node", ["--version"]),
  ]);
  return [
    `${navigator.hardwareConcurrency} × ${model}, ${
      mem ? `${Math.round(Number(mem) / 1024 / 1024)} GiB RAM, ` : ""
    }Linux ${kernel}`,
    `Deno ${Deno.version.deno} (V8 ${Deno.version.v8}); ${versions[0].replace(/^nginx version: /, "")}; ${
      versions[1].replace(/ - https.*$/, "")
    }; Caddy ${versions[2].split(" ")[0]}; ${
      versions[3].replace(/ Copyright.*$/, "").replace(/ \[.*\]/, "")
    }; ${versions[4]}; ${versions[5].split(" ").slice(0, 2).join(" ")}; ${versions[6]}; node ${
      versions[7]
    } (gRPC origin)`,
  ];
}

export async function loadavg(): Promise<string> {
  return (await Deno.readTextFile("/proc/loadavg").catch(() => "? ? ?")).split(" ").slice(0, 3).join(" ");
}

export interface RenderInput {
  opts: Options;
  command: string;
  startedAt: Date;
  loadStart: string;
  loadEnd: string;
  results: ScenarioResult[];
  memoryRows: MemoryRow[];
  failures: string[];
  proxies: Proxy[];
  balancer: string;
}

export async function render(r: RenderInput): Promise<string> {
  const o = r.opts;
  const [hw, sw] = await machine();
  const pin = o.loadCpus
    ? `load generator (wrk, h2load, h3load, curl, the idle-connection client, this harness) on CPU ${o.loadCpus}; ` +
      `proxy under test on CPU ${o.proxyCpus}; origin on CPU ${o.originCpus}` +
      (o.originCpus === o.proxyCpus
        ? " (shared with the proxy: the origin's cost is part of every cell)"
        : "")
    : "none (--no-pin or a single CPU)";
  const lines = [
    `### ${o.mode[0].toUpperCase()}${o.mode.slice(1)} set${
      o.only ? ` (only ${[...o.only].join(", ")})` : ""
    }`,
    "",
    `- Command: \`${r.command}\`, started ${r.startedAt.toISOString().replace(/\.\d+Z$/, "Z")}`,
    `- Machine: ${hw}`,
    `- Software: ${sw}`,
    `- Load average at start / end: ${r.loadStart} / ${r.loadEnd}`,
    `- Pinning (taskset): ${pin}`,
    `- Each proxy: ${o.workers} worker${
      o.workers > 1 ? "s" : ""
    }, keep-alive to the origin (64 idle), no access log (the workers section starts its own 1- and 2-worker instances)`,
    `- Rounds: ${o.rounds} × ${o.seconds} s per proxy per scenario, in the order ${
      r.proxies.map((p) => p.name).join(", ")
    }, repeated${o.warmup ? `; ${o.warmup} s warm-up per proxy per scenario, not recorded` : "; no warm-up"}`,
  ];
  if (o.mode === "smoke") {
    lines.push(
      "- **Smoke run**: one short round to prove the harness works; the numbers are not a measurement.",
    );
  }
  for (const f of r.failures) lines.push(`- Not started: ${f}`);
  for (const s of r.results) lines.push("", scenarioTable(s));
  if (r.memoryRows.length) {
    lines.push("", "#### Memory", "", memoryTable(r.memoryRows), "");
    const full = r.memoryRows.length > 2;
    lines.push(
      "RSS is the sum of VmRSS over the proxy's process tree (nginx: master + worker)." +
        (full
          ? " Idle connections: each sends one `GET /small`, reads the answer and stays open; " +
            "the RSS is read 1 s after the last one opened."
          : ""),
    );
    if (o.mode === "smoke" && full) {
      lines.push(
        "",
        `Smoke run: ${o.idleConns} idle connections and a ${
          o.streamBytes / MIB
        } MiB stream instead of 10,000 and 1 GiB.`,
      );
    }
  }
  if (r.balancer) {
    lines.push(
      "",
      "#### Balancer micro-benchmark (no peer)",
      "",
      "Picks per second through `selectEndpoint` (scripts/bench_balancer.ts), in the harness process. " +
        "An internal number: compare the algorithms with each other, not with other software.",
      "",
      r.balancer,
    );
  }
  return lines.join("\n");
}
