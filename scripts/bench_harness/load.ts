/**
 * Load generators: wrk (HTTP/1.1, summary from its Lua done() hook as JSON) and h2load
 * (HTTP/2, latency percentiles from its per-request log file), each pinned to the load core.
 * Results are plain numbers; an unusable run comes back as `{ error }`, never a throw.
 */

import { runCmd } from "./procs.ts";

export interface LoadResult {
  requests: number;
  seconds: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  /** Non-2xx/3xx answers plus socket errors and timeouts. */
  errors: number;
}

export type LoadOutcome = LoadResult | { error: string };

export interface WrkOptions {
  url: string;
  connections: number;
  seconds: number;
  cpus?: string;
  lua: string;
  bodyFile?: string;
  connClose?: boolean;
}

export async function runWrk(o: WrkOptions): Promise<LoadOutcome> {
  const args = ["-t1", `-c${o.connections}`, `-d${o.seconds}s`, "--timeout", "10s", "-s", o.lua, o.url];
  const env: Record<string, string> = {
    BENCH_BODY_FILE: o.bodyFile ?? "",
    BENCH_CONN_CLOSE: o.connClose ? "1" : "0",
  };
  const r = await runCmd("wrk", args, { cpus: o.cpus, env, timeoutMs: (o.seconds + 30) * 1000 });
  const line = r.stdout.split("\n").find((l) => l.startsWith("BENCH_JSON "));
  if (r.code !== 0 || !line) {
    return {
      error: `wrk exited ${r.code}: ${(r.stderr || r.stdout).trim().split("\n").slice(-2).join(" ")}`,
    };
  }
  const j = JSON.parse(line.slice("BENCH_JSON ".length));
  const seconds = j.duration_us / 1e6;
  const errors = j.status + j.connect + j.read + j.write + j.timeout;
  if (j.requests === 0) return { error: `wrk: no request completed (${errors} errors)` };
  return {
    requests: j.requests,
    seconds,
    rps: j.requests / seconds,
    p50Ms: j.p50_us / 1000,
    p99Ms: j.p99_us / 1000,
    errors,
  };
}

export interface H2loadOptions {
  url: string;
  clients: number;
  streams: number;
  windowBits?: number;
  seconds: number;
  cpus?: string;
  logFile: string;
}

/** Percentile (0..100) of a sorted array, nearest rank. */
export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

export async function runH2load(o: H2loadOptions): Promise<LoadOutcome> {
  const args = [
    "-t1",
    `-c${o.clients}`,
    `-m${o.streams}`,
    ...(o.windowBits ? [`-w${o.windowBits}`, `-W${o.windowBits}`] : []),
    "-D",
    String(o.seconds),
    `--log-file=${o.logFile}`,
    o.url,
  ];
  const r = await runCmd("h2load", args, { cpus: o.cpus, timeoutMs: (o.seconds + 30) * 1000 });
  const out = r.stdout;
  const fin = out.match(/finished in ([\d.]+)(m?s), ([\d.]+) req\/s/);
  const reqs = out.match(
    /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/,
  );
  const codes = out.match(/status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/);
  if (!fin || !reqs || !codes) {
    return { error: `h2load exited ${r.code}: ${(r.stderr || out).trim().split("\n").slice(-2).join(" ")}` };
  }
  const succeeded = Number(reqs[4]);
  const failed = Number(reqs[5]) + Number(reqs[6]) + Number(reqs[7]) + Number(codes[3]) + Number(codes[4]);
  if (succeeded === 0 || Number(codes[1]) === 0) {
    const hint = out.split("\n").find((l) => /error|failed|refused|protocol/i.test(l)) ?? "";
    return { error: `h2load: no successful request (${failed} failed) ${hint.trim()}`.trim() };
  }
  let lat: Float64Array;
  try {
    const text = await Deno.readTextFile(o.logFile);
    const lines = text.split("\n");
    lat = new Float64Array(lines.length);
    let n = 0;
    for (const l of lines) {
      const t = l.indexOf("\t", l.indexOf("\t") + 1);
      if (t < 0) continue;
      const status = Number(l.slice(l.indexOf("\t") + 1, t));
      if (status >= 200 && status < 400) lat[n++] = Number(l.slice(t + 1));
    }
    lat = lat.slice(0, n).sort();
  } finally {
    await Deno.remove(o.logFile).catch(() => {});
  }
  const seconds = fin[2] === "ms" ? Number(fin[1]) / 1000 : Number(fin[1]);
  return {
    requests: succeeded,
    seconds,
    rps: Number(fin[3]),
    p50Ms: percentile(lat, 50) / 1000,
    p99Ms: percentile(lat, 99) / 1000,
    errors: failed,
  };
}

/** curl downloads url to /dev/null; returns bytes, seconds, HTTP status. */
export async function download(
  url: string,
  cpus?: string,
): Promise<{ bytes: number; seconds: number; status: number } | { error: string }> {
  const r = await runCmd(
    "curl",
    ["-sS", "-o", "/dev/null", "-w", "%{size_download} %{time_total} %{http_code}", url],
    { cpus, timeoutMs: 300_000 },
  );
  const [bytes, seconds, status] = r.stdout.trim().split(" ").map(Number);
  if (r.code !== 0 || status !== 200) {
    return { error: `curl exited ${r.code}, status ${status}: ${r.stderr.trim()}` };
  }
  return { bytes, seconds, status };
}
