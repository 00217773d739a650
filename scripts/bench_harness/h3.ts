/**
 * The HTTP/3 download row: one GET of a large file (100 MiB; 16 MiB in the smoke run) over
 * HTTP/3 through each proxy with an HTTP/3 front (H3→H1 to the nginx origin), alternating
 * proxies round by round like every other scenario, on the load CPU. Two clients per round:
 * h3load (this project's, on Deno's QUIC: MiB/s, the proxy's CPU seconds and peak RSS growth for
 * the download, and h3load's own CPU share, which shows when the client was the limit) and,
 * when installed, Debian's gtlsclient (ngtcp2 + nghttp3 in C, several times cheaper per byte:
 * whole-process wall time, so its ~30 ms of start-up and handshake are inside the number).
 */

import { prepareCells } from "./cells.ts";
import { runH3load } from "./load.ts";
import type { Scenario } from "./options.ts";
import { checkOrigin, type Ctx, exitedReason, type Proxy } from "./proxies.ts";
import { cpuSeconds, log, refreshTree, rssBytes, rssSampler, runCmd } from "./procs.ts";
import { fmt, median, type ScenarioResult, spread } from "./report.ts";

const MIB = 1024 * 1024;

interface Download {
  mibps: number;
  cpuSeconds: number;
  rssGrowthMiB: number;
  clientCpu: number;
  /** gtlsclient's rate (whole process), when it ran. */
  gtlsMibps?: number;
}

function gtlsArgs(p: Proxy, path: string, extra: string[] = []): string[] {
  return [
    "-q",
    "--exit-on-all-streams-close",
    "--timeout=30s",
    ...extra,
    "127.0.0.1",
    String(p.ports.h3),
    `https://127.0.0.1:${p.ports.h3}${path}`,
  ];
}

/**
 * One gtlsclient download into `dir` (not timed): does the whole body arrive? gtlsclient
 * exits 0 whatever the status, so the file size is the check. Undefined when it did.
 */
async function gtlsCheck(ctx: Ctx, p: Proxy, path: string, bytes: number): Promise<string | undefined> {
  const dir = await Deno.makeTempDir({ dir: ctx.setup.dir, prefix: "gtls-" });
  try {
    const r = await runCmd("gtlsclient", gtlsArgs(p, path, [`--download=${dir}`]), {
      cpus: ctx.opts.loadCpus,
      timeoutMs: 120_000,
    });
    const size = await Deno.stat(`${dir}${path}`).then((st) => st.size, () => 0);
    if (r.code !== 0 || size !== bytes) return `gtlsclient got ${size} of ${bytes} bytes (exit ${r.code})`;
    return undefined;
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** Seconds gtlsclient took for the download (the process's wall time), or an error. */
async function gtlsTime(ctx: Ctx, p: Proxy, path: string): Promise<number | string> {
  const t0 = performance.now();
  const r = await runCmd("gtlsclient", gtlsArgs(p, path), { cpus: ctx.opts.loadCpus, timeoutMs: 120_000 });
  const s = (performance.now() - t0) / 1000;
  return r.code === 0 ? s : `gtlsclient exit ${r.code}: ${r.stderr.trim().split("\n").slice(-1)[0] ?? ""}`;
}

/** A sparse file of `bytes` zeros, read once so its pages are in the page cache before any proxy streams it. */
async function bigFile(path: string, bytes: number): Promise<void> {
  const f = await Deno.open(path, { create: true, write: true, read: true, truncate: true });
  try {
    await f.truncate(bytes);
    const buf = new Uint8Array(MIB);
    await f.seek(0, Deno.SeekMode.Start);
    while ((await f.read(buf)) !== null) { /* discard */ }
  } finally {
    f.close();
  }
}

function size(bytes: number): string {
  return bytes >= 1024 * MIB ? `${bytes / 1024 / MIB} GiB` : `${bytes / MIB} MiB`;
}

export async function runH3Download(ctx: Ctx, proxies: Proxy[], s: Scenario): Promise<ScenarioResult> {
  const bytes = ctx.opts.h3DownloadBytes;
  await bigFile(`${ctx.setup.dir}/www/big.bin`, bytes);
  const rows = s.proxies ?? ["gateway", "nginx", "haproxy", "caddy"];
  const cells = await prepareCells(ctx, proxies, s, rows);
  const title = `${s.title}, ${size(bytes)}`;
  log(`scenario ${s.id}: ${title}`);
  const runs = new Map<string, Download[]>(rows.map((n) => [n, []]));
  const errors = new Map<string, string>();
  const live = proxies.filter((p) => rows.includes(p.name) && !cells[p.name].na);
  // gtlsclient: installed, and it receives the whole body through every proxy (also a warm-up).
  const gtls = new Map<string, string | undefined>();
  const haveGtls = (await runCmd("gtlsclient", ["--help"], { timeoutMs: 10_000 }).catch(() => ({ code: -1 })))
    .code === 0;
  for (const p of live) {
    gtls.set(p.name, haveGtls ? await gtlsCheck(ctx, p, s.path, bytes) : "gtlsclient not installed");
  }
  for (let round = 0; round < ctx.opts.rounds; round++) {
    for (const p of live) {
      if (errors.has(p.name)) continue;
      checkOrigin(ctx);
      refreshTree(p.proc);
      const base = rssBytes(p.proc);
      const cpu0 = cpuSeconds(p.proc);
      const sampler = rssSampler(p.proc, 100);
      const r = await runH3load({
        port: p.ports.h3,
        ca: ctx.setup.ca,
        path: s.path,
        connections: 1,
        streams: 1,
        requests: 1,
        expectBytes: bytes,
        cpus: ctx.opts.loadCpus,
        timeoutMs: 300_000,
      });
      const peak = sampler.stop();
      const cpu1 = cpuSeconds(p.proc);
      if ("error" in r || r.requests !== 1) {
        const why = "error" in r ? r.error : "download failed";
        errors.set(p.name, (exitedReason(p) ?? `run failed: ${why}`).replace(/\|/g, "/").slice(0, 200));
        log(`  ${p.name}: ${errors.get(p.name)}`);
        continue;
      }
      const d: Download = {
        mibps: bytes / MIB / r.seconds,
        cpuSeconds: cpu1 - cpu0,
        rssGrowthMiB: (peak - base) / MIB,
        clientCpu: (r.clientCpuSeconds ?? NaN) / r.seconds,
      };
      if (gtls.get(p.name) === undefined) {
        const t = await gtlsTime(ctx, p, s.path);
        if (typeof t === "number") d.gtlsMibps = bytes / MIB / t;
        else gtls.set(p.name, t.slice(0, 160));
      }
      runs.get(p.name)!.push(d);
      log(
        `  round ${round + 1} ${p.name.padEnd(10)} h3load ${fmt(d.mibps)} MiB/s  proxy CPU ${
          d.cpuSeconds.toFixed(2)
        } s  RSS +${d.rssGrowthMiB.toFixed(1)} MiB  client CPU ${(100 * d.clientCpu).toFixed(0)}%` +
          (d.gtlsMibps !== undefined ? `; gtlsclient ${fmt(d.gtlsMibps)} MiB/s` : ""),
      );
    }
  }

  const lines = [
    `#### ${title}`,
    "",
    `Load: one GET ${s.path} (${
      size(bytes)
    } of zeros from the origin's page cache) over HTTP/3 per proxy per round, ` +
    "first by `h3load -c1 -m1 -n1` (MiB/s = bytes ÷ time from the request to the last byte; the proxy's CPU " +
    "and RSS are read around this run), then by `gtlsclient` (ngtcp2, C; MiB/s = bytes ÷ the whole process's " +
    "wall time, start-up and handshake included). h3load's CPU column is its own CPU ÷ the download time: near " +
    "100% means h3load, not the proxy, was the limit, and the gtlsclient column is the better measure of the proxy.",
    "",
    "| proxy | MiB/s (h3load) | h3load CPU (share of its core) | MiB/s (gtlsclient) | proxy CPU s per download | peak RSS growth MiB |",
    "| --- | ---: | ---: | ---: | ---: | ---: |",
  ];
  for (const n of rows) {
    const na = cells[n].na ?? errors.get(n);
    const ds = runs.get(n)!;
    if (na || ds.length === 0) {
      lines.push(`| ${n} | n/a: ${na ?? "no data"} | | | | |`);
      continue;
    }
    const cpu = ds.map((d) => d.cpuSeconds);
    const g = ds.map((d) => d.gtlsMibps).filter((x): x is number => x !== undefined);
    const gtlsCell = gtls.get(n) !== undefined ? `n/a: ${gtls.get(n)}` : spread(g);
    lines.push(
      `| ${n} | ${spread(ds.map((d) => d.mibps))} | ${
        Math.round(100 * median(ds.map((d) => d.clientCpu)))
      }% | ${gtlsCell} | ${spread(cpu, 2)} | ${fmt(Math.max(...ds.map((d) => d.rssGrowthMiB)), 1)} |`,
    );
  }
  const g = runs.get("gateway")!;
  const ratios: string[] = [];
  for (const peer of rows.filter((n) => n !== "gateway")) {
    const c = runs.get(peer)!;
    const n = Math.min(g.length, c.length);
    if (n === 0 || errors.has("gateway") || errors.has(peer)) continue;
    const pair = (f: (d: Download) => number | undefined) =>
      Array.from({ length: n }, (_, i) => (f(g[i]) ?? NaN) / (f(c[i]) ?? NaN)).filter(Number.isFinite);
    const gt = pair((d) => d.gtlsMibps);
    ratios.push(
      `| gateway/${peer} | ${spread(pair((d) => d.mibps), 2)} | ${gt.length ? spread(gt, 2) : "n/a"} | ${
        spread(pair((d) => d.cpuSeconds), 2)
      } |`,
    );
  }
  if (ratios.length) {
    lines.push(
      "",
      "Gateway ÷ peer, paired per round: MiB/s > 1 is better, CPU < 1 is better.",
      "",
      "| ratio | MiB/s (h3load) | MiB/s (gtlsclient) | proxy CPU |",
      "| --- | ---: | ---: | ---: |",
      ...ratios,
    );
  }
  return { id: s.id, title, load: "", cells, rows, markdown: lines.join("\n") };
}
