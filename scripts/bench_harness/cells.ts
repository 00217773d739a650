/**
 * One scenario: probe which proxies can serve it, warm each up, then run the cells in rounds,
 * A B C D A B C D …, measuring the proxy's CPU ticks and RSS around each load-generator run.
 * Scenarios with their own shape (the HTTP/3 download, the workers comparison) are handed to
 * h3.ts and workers.ts, which use the same cell loop.
 */

import { GRPC_REQUEST } from "./configs.ts";
import { grpcNote, startNodeOrigin, wsNote } from "./origins.ts";
import { runH3Download } from "./h3.ts";
import { runWorkers } from "./workers.ts";
import { type LoadOutcome, runH2load, runH3load, runWrk, runWsload } from "./load.ts";
import type { Front, Scenario } from "./options.ts";
import { loadDescription, scenarioProxies } from "./options.ts";
import { checkOrigin, type Ctx, exitedReason, type Proxy, url } from "./proxies.ts";
import { cpuSeconds, isAborting, log, refreshTree, rssSampler, runCmd } from "./procs.ts";
import { type Cell, fmt, PROXIES, type ProxyName, type Round, type ScenarioResult } from "./report.ts";

const MIB = 1024 * 1024;
export const GRPC_HEADERS = ["content-type: application/grpc", "te: trailers"];

/** The gRPC request body file h2load -d sends (written on first use). */
export async function grpcBodyFile(ctx: Ctx): Promise<string> {
  const f = `${ctx.setup.dir}/grpc-request.bin`;
  await Deno.writeFile(f, GRPC_REQUEST);
  return f;
}

async function runLoad(ctx: Ctx, p: Proxy, s: Scenario, seconds: number): Promise<LoadOutcome> {
  if (s.tool === "wrk" || s.tool === "workers") {
    return await runWrk({
      url: url(p, s.front, s.path),
      connections: s.connections,
      seconds,
      cpus: ctx.opts.loadCpus,
      lua: ctx.lua,
      bodyFile: s.post ? ctx.bodyFile : undefined,
      connClose: s.close,
    });
  }
  if (s.tool === "wsload") {
    return await runWsload({
      port: p.ports.ws,
      path: s.path,
      connections: s.connections,
      size: s.size ?? 64,
      seconds,
      cpus: ctx.opts.loadCpus,
    });
  }
  if (s.tool === "h3load") {
    return await runH3load({
      port: p.ports.h3,
      ca: ctx.setup.ca,
      path: s.path,
      connections: s.connections,
      streams: s.streams ?? 1,
      seconds,
      cpus: ctx.opts.loadCpus,
    });
  }
  return await runH2load({
    url: url(p, s.front, s.path),
    clients: s.connections,
    streams: s.streams ?? 1,
    windowBits: s.windowBits,
    seconds,
    cpus: ctx.opts.loadCpus,
    logFile: `${ctx.setup.dir}/h2load-${p.name}.log`,
    ...(s.grpc ? { dataFile: await grpcBodyFile(ctx), headers: GRPC_HEADERS } : {}),
  });
}

/** A tiny h2load run: can this proxy serve HTTP/2 on this front at all? */
async function h2Probe(ctx: Ctx, p: Proxy, front: Front): Promise<string | undefined> {
  const r = await runCmd("h2load", ["-n", "20", "-c", "1", "-m", "1", url(p, front, "/small")], {
    timeoutMs: 10_000,
    cpus: ctx.opts.loadCpus,
  });
  const m = r.stdout.match(/(\d+) succeeded/);
  if (m && Number(m[1]) === 20) return undefined;
  if (p.name === "gateway") return "h2 front not in this build";
  return `h2 probe failed (${m ? m[1] : 0}/20 succeeded)`;
}

/** 20 HTTP/3 requests that must each return the 32-byte /small body (Caddy answers a wrong Host with 200 and no body). */
async function h3Probe(ctx: Ctx, p: Proxy): Promise<string | undefined> {
  const r = await runH3load({
    port: p.ports.h3,
    ca: ctx.setup.ca,
    path: "/small",
    connections: 1,
    streams: 1,
    requests: 20,
    expectBytes: 32,
    cpus: ctx.opts.loadCpus,
    timeoutMs: 20_000,
  });
  if ("error" in r) return `h3 probe failed: ${r.error}`.slice(0, 200);
  if (r.requests !== 20) return `h3 probe failed (${r.requests}/20 succeeded)`;
  return undefined;
}

/**
 * One gRPC call with curl: the answer must end with `grpc-status: 0` in its trailers, so a
 * proxy that answers 200 but loses the call (or the trailers) is n/a, not a fast cell. h2load
 * counts HTTP statuses only.
 */
async function grpcProbe(ctx: Ctx, p: Proxy, path: string): Promise<string | undefined> {
  const r = await runCmd("curl", [
    "-sS",
    "--http2-prior-knowledge",
    "--max-time",
    "10",
    "--data-binary",
    `@${await grpcBodyFile(ctx)}`,
    ...GRPC_HEADERS.flatMap((h) => ["-H", h]),
    "-D",
    "-",
    "-o",
    "/dev/null",
    url(p, "grpc", path),
  ], { timeoutMs: 15_000, cpus: ctx.opts.loadCpus });
  if (/^grpc-status: ?0\r?$/mi.test(r.stdout)) return undefined;
  const status = r.stdout.match(/^grpc-status: ?(\d+)/mi)?.[1];
  const http = r.stdout.match(/^HTTP\/\S+ (\d+)/m)?.[1];
  return `gRPC probe failed (HTTP ${http ?? "none"}, grpc-status ${status ?? "missing"}${
    r.code ? `, curl exit ${r.code}` : ""
  })`;
}

/** Why `p` cannot take part in `s` (feature missing, process gone, probe failed), else undefined. */
export async function unavailable(ctx: Ctx, p: Proxy, s: Scenario): Promise<string | undefined> {
  const na = exitedReason(p) ?? p.na[s.front];
  if (na) return na;
  if (s.grpc) return await grpcProbe(ctx, p, s.path);
  if (s.tool === "h2load") return await h2Probe(ctx, p, s.front);
  if (s.front === "h3") return await h3Probe(ctx, p);
  return undefined;
}

/** A cell of the loop: the proxy instance to load and the key its numbers are filed under. */
export interface Entry {
  key: string;
  proxy: Proxy;
}

/**
 * The measured loop shared by every req/s scenario: warm-up per entry, then `rounds` rounds in
 * the order given, the proxy's CPU and peak RSS read around each run. `cells` may already hold
 * an n/a for an entry (it is skipped).
 */
export async function runCells(
  ctx: Ctx,
  entries: Entry[],
  s: Scenario,
  cells: Map<string, Cell>,
): Promise<void> {
  if (ctx.opts.warmup > 0) {
    for (const e of entries) if (!cells.get(e.key)?.na) await runLoad(ctx, e.proxy, s, ctx.opts.warmup);
  }
  for (let round = 0; round < ctx.opts.rounds; round++) {
    for (const { key, proxy: p } of entries) {
      const cell = cells.get(key)!;
      if (cell.na) continue;
      checkOrigin(ctx);
      refreshTree(p.proc);
      const cpu0 = cpuSeconds(p.proc);
      const sampler = rssSampler(p.proc);
      const r = await runLoad(ctx, p, s, ctx.opts.seconds);
      const cpu1 = cpuSeconds(p.proc);
      const peak = sampler.stop();
      if ("error" in r) {
        if (isAborting()) throw new Error("interrupted");
        checkOrigin(ctx);
        cell.na = (exitedReason(p) ?? `run failed: ${r.error}`).replace(/\|/g, "/").slice(0, 200);
        log(`  ${key}: ${cell.na}`);
        continue;
      }
      const rec: Round = {
        rps: r.rps,
        p50Ms: r.p50Ms,
        p99Ms: r.p99Ms,
        cpuUsPerReq: ((cpu1 - cpu0) * 1e6) / r.requests,
        peakRssMiB: peak / MIB,
        errors: r.errors,
        requests: r.requests,
        ...(r.clientCpuSeconds !== undefined ? { clientCpu: r.clientCpuSeconds / r.seconds } : {}),
      };
      cell.rounds.push(rec);
      log(
        `  round ${round + 1} ${key.padEnd(10)} ${fmt(r.rps).padStart(8)} req/s  p50 ${
          r.p50Ms.toFixed(2)
        } ms  p99 ${r.p99Ms.toFixed(2)} ms  ${rec.cpuUsPerReq.toFixed(1)} µs CPU/req  errors ${r.errors}${
          rec.clientCpu !== undefined ? `  client CPU ${(100 * rec.clientCpu).toFixed(0)}%` : ""
        }`,
      );
    }
  }
}

/** Cells for `rows`, n/a where the proxy did not start or cannot serve the scenario. */
export async function prepareCells(
  ctx: Ctx,
  proxies: Proxy[],
  s: Scenario,
  rows: readonly ProxyName[],
): Promise<Record<ProxyName, Cell>> {
  const cells = Object.fromEntries(PROXIES.map((n) => [n, { rounds: [] } as Cell])) as Record<
    ProxyName,
    Cell
  >;
  for (const n of rows) if (!proxies.some((p) => p.name === n)) cells[n].na = "not started";
  for (const p of proxies) {
    if (!rows.includes(p.name)) continue;
    const why = await unavailable(ctx, p, s);
    if (why) cells[p.name].na = why;
  }
  return cells;
}

/** A note for h3load/wsload cells: how much of its core the client used (near 100%: the client was the limit). */
function clientNote(s: ScenarioResult, tool: string): string | undefined {
  const parts: string[] = [];
  for (const p of s.rows) {
    const xs = s.cells[p].rounds.map((r) => r.clientCpu).filter((x): x is number => x !== undefined);
    if (xs.length) parts.push(`${p} ${Math.round(100 * Math.max(...xs))}%`);
  }
  if (!parts.length) return undefined;
  return `${tool}'s own CPU, share of its core over the run (highest round): ${parts.join(", ")}. ` +
    "Near 100% the client, not the proxy, set the pace: read the CPU µs/req column then.";
}

export async function runScenario(ctx: Ctx, proxies: Proxy[], s: Scenario): Promise<ScenarioResult> {
  if (s.tool === "workers") return await runWorkers(ctx, s);
  if (s.tool === "h3download") return await runH3Download(ctx, proxies, s);
  const rows = scenarioProxies(s);
  const extraOrigin = s.grpc
    ? await startNodeOrigin(ctx, "grpc")
    : s.tool === "wsload"
    ? await startNodeOrigin(ctx, "ws")
    : undefined;
  try {
    const cells = await prepareCells(ctx, proxies, s, rows);
    log(`scenario ${s.id}: ${s.title}`);
    const map = new Map<string, Cell>(rows.map((n) => [n, cells[n]]));
    const entries = proxies.filter((p) => rows.includes(p.name)).map((p) => ({ key: p.name, proxy: p }));
    await runCells(ctx, entries, s, map);
    const result: ScenarioResult = { id: s.id, title: s.title, load: loadDescription(s), cells, rows };
    if (s.tool === "h3load") result.note = clientNote(result, "h3load");
    if (s.grpc) result.note = grpcNote(ctx);
    if (s.tool === "wsload") {
      result.note = [wsNote(ctx), clientNote(result, "wsload")].filter(Boolean).join(" ");
    }
    return result;
  } finally {
    if (extraOrigin) await extraOrigin.stop();
  }
}
