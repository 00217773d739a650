/**
 * One scenario: probe which proxies can serve it, warm each up, then run the cells in rounds,
 * A B C D A B C D …, measuring the proxy's CPU ticks and RSS around each load-generator run.
 */

import { type LoadOutcome, runH2load, runWrk } from "./load.ts";
import type { Front, Scenario } from "./options.ts";
import { loadDescription } from "./options.ts";
import { checkOrigin, type Ctx, exitedReason, type Proxy, url } from "./proxies.ts";
import { cpuSeconds, isAborting, log, refreshTree, rssSampler, runCmd } from "./procs.ts";
import { type Cell, fmt, PROXIES, type ProxyName, type Round, type ScenarioResult } from "./report.ts";

const MIB = 1024 * 1024;

async function runLoad(ctx: Ctx, p: Proxy, s: Scenario, seconds: number): Promise<LoadOutcome> {
  if (s.tool === "wrk") {
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
  return await runH2load({
    url: url(p, s.front, s.path),
    clients: s.connections,
    streams: s.streams ?? 1,
    windowBits: s.windowBits,
    seconds,
    cpus: ctx.opts.loadCpus,
    logFile: `${ctx.setup.dir}/h2load-${p.name}.log`,
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

export async function runScenario(ctx: Ctx, proxies: Proxy[], s: Scenario): Promise<ScenarioResult> {
  const cells = Object.fromEntries(PROXIES.map((n) => [n, { rounds: [] } as Cell])) as Record<
    ProxyName,
    Cell
  >;
  for (const n of PROXIES) if (!proxies.some((p) => p.name === n)) cells[n].na = "not started";
  for (const p of proxies) {
    const na = exitedReason(p) ?? p.na[s.front];
    if (na) cells[p.name].na = na;
    else if (s.tool === "h2load") {
      const why = await h2Probe(ctx, p, s.front);
      if (why) cells[p.name].na = why;
    }
  }
  log(`scenario ${s.id}: ${s.title}`);
  if (ctx.opts.warmup > 0) {
    for (const p of proxies) if (!cells[p.name].na) await runLoad(ctx, p, s, ctx.opts.warmup);
  }
  for (let round = 0; round < ctx.opts.rounds; round++) {
    for (const p of proxies) {
      const cell = cells[p.name];
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
        log(`  ${p.name}: ${cell.na}`);
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
      };
      cell.rounds.push(rec);
      log(
        `  round ${round + 1} ${p.name.padEnd(8)} ${fmt(r.rps).padStart(8)} req/s  p50 ${
          r.p50Ms.toFixed(2)
        } ms  p99 ${r.p99Ms.toFixed(2)} ms  ${rec.cpuUsPerReq.toFixed(1)} µs CPU/req  errors ${r.errors}`,
      );
    }
  }
  return { id: s.id, title: s.title, load: loadDescription(s), cells };
}
