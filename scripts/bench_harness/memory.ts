/**
 * The memory rows: RSS with N idle keep-alive connections (opened by idle_conns.ts on the load
 * core) and RSS growth while a large download streams through, one proxy after the other.
 */

import { download } from "./load.ts";
import { checkOrigin, type Ctx, exitedReason, type Proxy, url } from "./proxies.ts";
import { cpuSeconds, log, rssBytes, rssSampler, sleep, spawn, stop } from "./procs.ts";
import { CORE_PROXIES, fmt, median, type MemoryRow, PROXIES } from "./report.ts";

const ROOT = new URL("../..", import.meta.url).pathname;
const MIB = 1024 * 1024;

export function emptyRow(label: string, decimals: number, missing = "not started"): MemoryRow {
  return {
    label,
    decimals,
    values: Object.fromEntries(PROXIES.map((n) => [n, missing])) as MemoryRow["values"],
  };
}

/** Opens ctx.opts.idleConns idle keep-alive connections to each proxy in turn. */
export async function idleConnectionRows(ctx: Ctx, all: Proxy[]): Promise<MemoryRow[]> {
  // nginx, HAProxy and Caddy are the memory references; nghttpx is only the HTTP/2 peer.
  const proxies = all.filter((p) => CORE_PROXIES.includes(p.name));
  const n = ctx.opts.idleConns;
  const before = emptyRow(`RSS before opening ${fmt(n)} connections (MiB)`, 1);
  const withConns = emptyRow(`RSS with ${fmt(n)} idle keep-alive connections (MiB)`, 1);
  const perConn = emptyRow(`per-connection cost, (with − before) ÷ open (KiB)`, 1);
  const opened = { ...emptyRow(`connections open (of ${fmt(n)})`, 0), noRatio: true };
  for (const p of proxies) {
    const dead = exitedReason(p);
    if (dead) {
      for (const r of [before, withConns, perConn, opened]) r.values[p.name] = dead;
      continue;
    }
    await sleep(500);
    checkOrigin(ctx);
    const base = rssBytes(p.proc);
    const child = spawn(`idle-${p.name}`, Deno.execPath(), [
      "run",
      "--no-prompt",
      "--allow-net=127.0.0.1",
      `${ROOT}scripts/bench_harness/idle_conns.ts`,
      String(p.ports.h1),
      String(n),
      "/small",
      "200",
    ], { cpus: ctx.opts.loadCpus, stdin: "piped" });
    try {
      const deadline = Date.now() + 180_000;
      let line: string | undefined;
      while (!line && Date.now() < deadline) {
        line = child.output().split("\n").find((l) => l.startsWith("{"));
        if (!line) {
          const done = await Promise.race([child.exited.then(() => true), sleep(100).then(() => false)]);
          if (done) break;
        }
      }
      if (!line) throw new Error(`idle connection client failed: ${child.output().slice(-500)}`);
      const res = JSON.parse(line) as { open: number; failed: number; ms: number };
      await sleep(1000); // let the proxy settle (buffers released after the first answer)
      const rss = rssBytes(p.proc);
      before.values[p.name] = base / MIB;
      withConns.values[p.name] = rss / MIB;
      opened.values[p.name] = res.open;
      perConn.values[p.name] = res.open > 0 ? (rss - base) / 1024 / res.open : "no connection opened";
      log(
        `  idle ${p.name}: ${res.open} open, ${res.failed} failed in ${res.ms} ms, RSS ${
          fmt(base / MIB, 1)
        } → ${fmt(rss / MIB, 1)} MiB`,
      );
    } catch (e) {
      const why = String(e instanceof Error ? e.message : e).split("\n")[0].slice(0, 160);
      for (const r of [before, withConns, perConn, opened]) r.values[p.name] = why;
    } finally {
      try {
        await child.child.stdin.close();
      } catch { /* exited */ }
      await stop(child, 10_000);
    }
  }
  return [opened, before, withConns, perConn];
}

/**
 * Streams ctx.opts.streamBytes through each proxy with curl, once per round (the scenarios'
 * round count), the proxies alternating as in the scenarios: RSS growth (the largest of the
 * rounds), throughput and CPU seconds (medians). One download is a single connection for a
 * few seconds, so one run catches whatever else the proxy's CPU did meanwhile (measured here:
 * the gateway's rate after the quick set was 226, 575 and 1,054 MiB/s in three runs).
 */
export async function streamRows(ctx: Ctx, all: Proxy[]): Promise<MemoryRow[]> {
  const proxies = all.filter((p) => CORE_PROXIES.includes(p.name));
  const size = ctx.opts.streamBytes >= 1024 * MIB
    ? `${ctx.opts.streamBytes / 1024 / MIB} GiB`
    : `${ctx.opts.streamBytes / MIB} MiB`;
  const rounds = Math.max(1, ctx.opts.rounds);
  const of = rounds > 1 ? `, median of ${rounds}` : "";
  // Growth is near zero for the C peers: a ratio against ~0 says nothing, the MiB do.
  const growth = {
    ...emptyRow(
      `RSS growth while streaming ${size} (peak − before, MiB${rounds > 1 ? `, largest of ${rounds}` : ""})`,
      1,
    ),
    noRatio: true,
  };
  const speed = emptyRow(`${size} download through the proxy (MiB/s${of})`, 0);
  const cpu = emptyRow(`proxy CPU seconds for the ${size} download${of}`, 2);
  const runs = new Map<string, { growth: number; speed: number; cpu: number }[]>();
  const failed = new Map<string, string>();
  for (let round = 0; round < rounds; round++) {
    for (const p of proxies) {
      if (failed.has(p.name)) continue;
      const dead = exitedReason(p);
      if (dead) {
        failed.set(p.name, dead);
        continue;
      }
      await sleep(300);
      checkOrigin(ctx);
      const base = rssBytes(p.proc);
      const cpu0 = cpuSeconds(p.proc);
      const sampler = rssSampler(p.proc, 100);
      const r = await download(url(p, "h1", "/stream"), ctx.opts.loadCpus);
      const peak = sampler.stop();
      const cpu1 = cpuSeconds(p.proc);
      if ("error" in r || r.bytes !== ctx.opts.streamBytes) {
        failed.set(
          p.name,
          ("error" in r ? r.error : `got ${r.bytes} of ${ctx.opts.streamBytes} bytes`).slice(0, 160),
        );
        continue;
      }
      const run = { growth: (peak - base) / MIB, speed: r.bytes / MIB / r.seconds, cpu: cpu1 - cpu0 };
      runs.set(p.name, [...runs.get(p.name) ?? [], run]);
      log(`  stream ${p.name}: ${fmt(run.speed)} MiB/s, RSS +${fmt(run.growth, 1)} MiB`);
    }
  }
  for (const p of proxies) {
    const why = failed.get(p.name);
    if (why !== undefined) {
      for (const row of [growth, speed, cpu]) row.values[p.name] = why;
      continue;
    }
    const rs = runs.get(p.name)!; // rounds ≥ 1, and a proxy without a failure downloaded in each
    growth.values[p.name] = Math.max(...rs.map((r) => r.growth));
    speed.values[p.name] = median(rs.map((r) => r.speed));
    cpu.values[p.name] = median(rs.map((r) => r.cpu));
  }
  return [growth, speed, cpu];
}
