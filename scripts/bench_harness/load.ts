/**
 * Load generators: wrk (HTTP/1.1, summary from its Lua done() hook as JSON), h2load (HTTP/2,
 * latency percentiles from its per-request log file) and h3load (HTTP/3, this project's own,
 * scripts/bench_harness/h3load.ts, JSON summary), each pinned to the load core.
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
  /** CPU seconds the load generator itself used (h3load reports it), to spot a client-bound cell. */
  clientCpuSeconds?: number;
  /** Response body bytes (h3load). */
  bytes?: number;
}

export type LoadOutcome = LoadResult | { error: string };

/** The last two lines of a tool's output, on one line (for an error message). */
function lastLines(text: string): string {
  return text.trim().split("\n").slice(-2).join(" ");
}

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
    return { error: `wrk exited ${r.code}: ${lastLines(r.stderr || r.stdout)}` };
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
  /** -d: request body file (POST), sent with every request. */
  dataFile?: string;
  /** -H: extra request header fields ("name: value"). */
  headers?: string[];
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
    ...(o.dataFile ? ["-d", o.dataFile] : []),
    ...(o.headers ?? []).flatMap((h) => ["-H", h]),
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
    return { error: `h2load exited ${r.code}: ${lastLines(r.stderr || out)}` };
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

export interface H3loadOptions {
  port: number;
  ca: string;
  path: string;
  connections: number;
  streams: number;
  /** -D (duration) or -n (request count). */
  seconds?: number;
  requests?: number;
  /** Count a response whose body has another length as an error. */
  expectBytes?: number;
  cpus?: string;
  /** Bound on the whole run (ms). */
  timeoutMs?: number;
}

const H3LOAD = new URL("./h3load.ts", import.meta.url).pathname;
const ROOT = new URL("../..", import.meta.url).pathname;

/** A load program's JSON summary line. */
// deno-lint-ignore no-explicit-any
type Summary = Record<string, any>;

/**
 * Runs one of this harness's Deno load programs (`deno ARGS`, pinned like wrk) and parses the
 * `NAME_JSON` line it ends with (h3load: H3LOAD_JSON); an error when there is none.
 */
async function runDenoLoad(
  name: string,
  args: string[],
  cpus: string | undefined,
  timeoutMs: number,
): Promise<{ summary: Summary } | { error: string }> {
  const r = await runCmd(Deno.execPath(), args, { cpus, cwd: ROOT, timeoutMs });
  const tag = `${name.toUpperCase()}_JSON `;
  const line = r.stdout.split("\n").find((l) => l.startsWith(tag));
  if (!line) return { error: `${name} exited ${r.code}: ${lastLines(r.stderr || r.stdout)}` };
  return { summary: JSON.parse(line.slice(tag.length)) };
}

/** The figures every load program's summary has; `requests` is what it counts (requests, messages). */
function summaryResult(j: Summary, requests: number): LoadResult {
  return {
    requests,
    seconds: j.seconds,
    rps: j.rps,
    p50Ms: j.p50_us / 1000,
    p99Ms: j.p99_us / 1000,
    errors: j.errors,
    clientCpuSeconds: j.cpu_seconds,
  };
}

/** Runs h3load (a Deno program, pinned like wrk); parses its H3LOAD_JSON line. */
export async function runH3load(o: H3loadOptions): Promise<LoadOutcome> {
  const args = [
    "run",
    "--no-prompt",
    "--unstable-net",
    "--allow-net=127.0.0.1",
    `--allow-read=${o.ca}`,
    H3LOAD,
    "--port",
    String(o.port),
    "--ca",
    o.ca,
    "--path",
    o.path,
    "-c",
    String(o.connections),
    "-m",
    String(o.streams),
    ...(o.seconds ? ["-D", String(o.seconds)] : ["-n", String(o.requests ?? 1)]),
    ...(o.expectBytes !== undefined ? ["--expect-bytes", String(o.expectBytes)] : []),
  ];
  const r = await runDenoLoad("h3load", args, o.cpus, o.timeoutMs ?? ((o.seconds ?? 60) + 30) * 1000);
  if ("error" in r) return r;
  const j = r.summary;
  if (j.requests === 0) {
    return {
      error: `h3load: no request completed in time (${j.errors} errors, ${j.late} late${
        j.first_error ? `: ${j.first_error}` : ""
      })`,
    };
  }
  return { ...summaryResult(j, j.requests), bytes: j.bytes };
}

export interface WsloadOptions {
  port: number;
  path: string;
  connections: number;
  size: number;
  seconds: number;
  cpus?: string;
}

const WSLOAD = new URL("./wsload.ts", import.meta.url).pathname;

/** Runs wsload (a Deno program, pinned like wrk); parses its WSLOAD_JSON line. Requests = echoed messages. */
export async function runWsload(o: WsloadOptions): Promise<LoadOutcome> {
  const args = [
    "run",
    "--no-prompt",
    "--allow-net=127.0.0.1",
    WSLOAD,
    "--port",
    String(o.port),
    "--path",
    o.path,
    "-c",
    String(o.connections),
    "-s",
    String(o.size),
    "-D",
    String(o.seconds),
  ];
  const r = await runDenoLoad("wsload", args, o.cpus, (o.seconds + 30) * 1000);
  if ("error" in r) return r;
  const j = r.summary;
  if (j.messages === 0) {
    return {
      error: `wsload: no message echoed (${j.errors} errors${j.first_error ? `: ${j.first_error}` : ""})`,
    };
  }
  return summaryResult(j, j.messages);
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
