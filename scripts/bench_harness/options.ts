/**
 * Command-line options and the scenario list of scripts/bench: what runs in the smoke, quick
 * and full sets, with which load generator settings, and how each is described in the report.
 */

import { GRPC_REQUEST, SMALL_BODY } from "./configs.ts";
import type { ProxyName } from "./report.ts";

const ROOT = new URL("../..", import.meta.url).pathname;
const MIB = 1024 * 1024;

export interface Options {
  mode: "smoke" | "quick" | "full";
  out: string;
  rounds: number;
  seconds: number;
  warmup: number;
  only?: Set<string>;
  loadCpus?: string;
  proxyCpus?: string;
  originCpus?: string;
  workers: number;
  idleConns: number;
  streamBytes: number;
  /** Size of the HTTP/3 download (100 MiB; smaller in the smoke run). */
  h3DownloadBytes: number;
  balancer: boolean;
}

export const USAGE = `scripts/bench: side-by-side benchmark of the gateway, nginx, HAProxy and Caddy
(and nghttpx in the HTTP/2 rows)

  scripts/bench                 quick set (3 rounds × 5 s), writes docs/benchmarks.md
  scripts/bench --full          every scenario, 5 rounds × 15 s
  scripts/bench --smoke         1 round × 1 s, small memory rows (for the test suite)
Options:
  --out FILE         where to write the markdown (default docs/benchmarks.md; only the
                     generated section between the bench markers is replaced)
  --rounds N         rounds per scenario          --seconds S   seconds per cell
  --only IDS         comma-separated scenario ids (and/or "memory"): h1-small, h1-1m,
                     h1-post-1m, h2-small, h3-small, h3-download, workers, h1-small-c500,
                     h1-small-close, h1-tls-small, h2-tls-small, h2-1m, grpc-unary, ws-echo
  --load-cpus L      CPUs for wrk/h2load/curl     (default: 0)
  --proxy-cpus P     CPUs for the proxy under test (default: 1)
  --origin-cpus O    CPUs for the origin           (default: 2 if present, else the proxy's)
  --no-pin           no taskset at all
  --workers N        worker processes/threads per proxy (default 1)
  --balancer         append the balancer micro-benchmark (scripts/bench_balancer.ts)
`;

export function parseOptions(args: string[]): Options | string {
  const ncpu = navigator.hardwareConcurrency;
  let mode: Options["mode"] = "quick";
  const o: Partial<Options> & { noPin?: boolean } = {};
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const val = () => {
      const v = args[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    const num = () => {
      const v = Number(val());
      if (!(v > 0)) throw new Error(`${a} needs a positive number`);
      return v;
    };
    switch (a) {
      case "--smoke":
        mode = "smoke";
        break;
      case "--full":
        mode = "full";
        break;
      case "--quick":
        mode = "quick";
        break;
      case "--out":
        o.out = val();
        break;
      case "--rounds":
        o.rounds = Math.round(num());
        break;
      case "--seconds":
        o.seconds = Math.round(num());
        break;
      case "--only":
        o.only = new Set(val().split(",").map((s) => s.trim()).filter(Boolean));
        break;
      case "--load-cpus":
        o.loadCpus = val();
        break;
      case "--proxy-cpus":
        o.proxyCpus = val();
        break;
      case "--origin-cpus":
        o.originCpus = val();
        break;
      case "--no-pin":
        o.noPin = true;
        break;
      case "--workers":
        o.workers = Math.round(num());
        break;
      case "--balancer":
        o.balancer = true;
        break;
      case "-h":
      case "--help":
        return "help";
      default:
        throw new Error(`unknown option '${a}'`);
    }
  }
  if (o.only) {
    const known = new Set(["memory", ...SCENARIOS.map((s) => s.id)]);
    const unknown = [...o.only].filter((id) => !known.has(id));
    if (unknown.length) throw new Error(`--only: unknown scenario id(s) ${unknown.join(", ")}`);
  }
  const pin = !o.noPin && ncpu >= 2;
  return {
    mode,
    out: o.out ?? `${ROOT}docs/benchmarks.md`,
    rounds: o.rounds ?? { smoke: 1, quick: 3, full: 5 }[mode],
    seconds: o.seconds ?? { smoke: 1, quick: 5, full: 15 }[mode],
    warmup: { smoke: 0, quick: 1, full: 3 }[mode],
    only: o.only,
    loadCpus: pin ? o.loadCpus ?? "0" : undefined,
    proxyCpus: pin ? o.proxyCpus ?? "1" : undefined,
    originCpus: pin ? o.originCpus ?? (ncpu >= 3 ? "2" : o.proxyCpus ?? "1") : undefined,
    workers: o.workers ?? 1,
    idleConns: mode === "smoke" ? 200 : 10_000,
    streamBytes: mode === "smoke" ? 64 * MIB : 1024 * MIB,
    h3DownloadBytes: mode === "smoke" ? 16 * MIB : 100 * MIB,
    balancer: o.balancer ?? false,
  };
}

/** Client-side fronts: HTTP/1.1 (+h2c where shared), h2c prior knowledge, TLS, QUIC, the gRPC port. */
export type Front = "h1" | "h2c" | "tls" | "h3" | "grpc" | "ws";

export interface Scenario {
  id: string;
  title: string;
  /** Only in --full (and when named by --only). */
  fullOnly?: boolean;
  /** A full-set scenario the smoke run includes anyway, so every kind of cell is exercised. */
  smoke?: boolean;
  /**
   * wrk / h2load / h3load: req/s cells. h3download: one big GET per proxy per round (MiB/s).
   * workers: the wrk load against 1-worker and 2-worker instances (scripts/bench_harness/workers.ts).
   * wsload: WebSocket echo round trips (scripts/bench_harness/wsload.ts); `size` bytes per message.
   */
  tool: "wrk" | "h2load" | "h3load" | "h3download" | "workers" | "wsload";
  front: Front;
  /** Rows of the table, the gateway first (default: the four core proxies; + nghttpx for h2load). */
  proxies?: ProxyName[];
  /** h2load -d: a gRPC unary request body with content-type application/grpc and te: trailers. */
  grpc?: boolean;
  /** wsload: message size in bytes. */
  size?: number;
  path: string;
  connections: number;
  streams?: number;
  /** h2load -w/-W: stream and connection flow-control windows as powers of two. */
  windowBits?: number;
  post?: boolean;
  close?: boolean;
}

export const SCENARIOS: Scenario[] = [
  {
    id: "h1-small",
    title: "HTTP/1.1 small response, keep-alive",
    tool: "wrk",
    front: "h1",
    path: "/small",
    connections: 50,
  },
  { id: "h1-1m", title: "HTTP/1.1 1 MiB response", tool: "wrk", front: "h1", path: "/1m", connections: 10 },
  {
    id: "h1-post-1m",
    title: "HTTP/1.1 POST 1 MiB",
    tool: "wrk",
    front: "h1",
    path: "/upload",
    connections: 10,
    post: true,
  },
  {
    id: "h2-small",
    title: "HTTP/2 (h2c, prior knowledge) small response",
    tool: "h2load",
    front: "h2c",
    path: "/small",
    connections: 10,
    streams: 10,
  },
  {
    id: "h1-small-c500",
    title: "HTTP/1.1 small response, 500 keep-alive connections",
    fullOnly: true,
    tool: "wrk",
    front: "h1",
    path: "/small",
    connections: 500,
  },
  {
    id: "h1-small-close",
    title: "HTTP/1.1 small response, a new connection per request",
    fullOnly: true,
    tool: "wrk",
    front: "h1",
    path: "/small",
    connections: 50,
    close: true,
  },
  {
    id: "h1-tls-small",
    title: "HTTP/1.1 over TLS small response, keep-alive",
    fullOnly: true,
    tool: "wrk",
    front: "tls",
    path: "/small",
    connections: 50,
  },
  {
    id: "h2-tls-small",
    title: "HTTP/2 over TLS (ALPN h2) small response",
    fullOnly: true,
    tool: "h2load",
    front: "tls",
    path: "/small",
    connections: 10,
    streams: 10,
  },
  {
    id: "h2-1m",
    title: "HTTP/2 (h2c) 1 MiB response",
    fullOnly: true,
    tool: "h2load",
    front: "h2c",
    path: "/1m",
    connections: 4,
    streams: 4,
    windowBits: 24,
  },
  {
    id: "h3-small",
    title: "HTTP/3 small response (H3→H1)",
    tool: "h3load",
    front: "h3",
    path: "/small",
    connections: 4,
    streams: 25,
    proxies: ["gateway", "nginx", "haproxy", "caddy"],
  },
  {
    id: "h3-download",
    title: "HTTP/3 download (H3→H1)",
    tool: "h3download",
    front: "h3",
    path: "/big",
    connections: 1,
    streams: 1,
    proxies: ["gateway", "nginx", "haproxy", "caddy"],
  },
  {
    id: "workers",
    title: "Workers: HTTP/1.1 small response with 1 and 2 workers",
    tool: "workers",
    front: "h1",
    path: "/small",
    connections: 50,
    proxies: ["gateway", "nginx", "haproxy"],
  },
  {
    id: "grpc-unary",
    title: "gRPC unary call (h2c → h2c gRPC origin)",
    fullOnly: true,
    smoke: true,
    tool: "h2load",
    front: "grpc",
    path: "/eg.bench.Echo/Unary",
    connections: 10,
    streams: 10,
    grpc: true,
  },
  {
    id: "ws-echo",
    title: "WebSocket echo, 64-byte messages (HTTP/1.1 Upgrade)",
    fullOnly: true,
    smoke: true,
    tool: "wsload",
    front: "ws",
    path: "/ws",
    connections: 50,
    size: 64,
  },
];

/** The rows a scenario's table has. */
export function scenarioProxies(s: Scenario): ProxyName[] {
  if (s.proxies) return s.proxies;
  const core: ProxyName[] = ["gateway", "nginx", "haproxy", "caddy"];
  return s.tool === "h2load" ? [...core, "nghttpx"] : core;
}

/** Which scenarios a run executes: --only names them (full-set ones too), else the mode's set. */
export function selectScenarios(opts: Options): Scenario[] {
  return SCENARIOS.filter((s) =>
    opts.only
      ? opts.only.has(s.id)
      : opts.mode === "full" || !s.fullOnly || (opts.mode === "smoke" && s.smoke === true)
  );
}

export function loadDescription(s: Scenario): string {
  if (s.tool === "h3load") {
    return `\`h3load -c${s.connections} -m${s.streams}\` (scripts/bench_harness/h3load.ts: ${s.connections} QUIC connections, ${s.streams} request streams in flight on each), GET ${s.path} over HTTP/3, ${SMALL_BODY.length}-byte body`;
  }
  if (s.tool === "wsload") {
    return `\`wsload -c${s.connections} -s${s.size}\` (scripts/bench_harness/wsload.ts: ${s.connections} WebSockets opened with an HTTP/1.1 Upgrade, each sending one ${s.size}-byte masked text message and waiting for its echo before the next) to a WebSocket echo origin (npm ws under node)`;
  }
  if (s.grpc) {
    return `\`h2load -t1 -c${s.connections} -m${s.streams}\` with \`-d\` (a ${GRPC_REQUEST.length}-byte length-prefixed protobuf) and \`content-type: application/grpc\`, \`te: trailers\`: POST ${s.path} over h2c prior knowledge to a real gRPC server (@grpc/grpc-js under node); answer: one message + \`grpc-status: 0\` trailer`;
  }
  const scheme = s.front === "tls" ? "https" : "http";
  const what = s.post ? `POST ${s.path} (1 MiB body)` : `GET ${s.path}`;
  const resp = s.path === "/small"
    ? `${SMALL_BODY.length}-byte body`
    : s.path === "/1m"
    ? "1 MiB body"
    : "origin reads the whole body, answers 3 bytes";
  if (s.tool === "wrk" || s.tool === "workers") {
    return `\`wrk -t1 -c${s.connections}\`${
      s.close ? " with `Connection: close`" : ""
    }, ${what} over ${scheme}, ${resp}`;
  }
  const w = s.windowBits ? ` -w${s.windowBits} -W${s.windowBits}` : "";
  return `\`h2load -t1 -c${s.connections} -m${s.streams}${w}\`, ${what} over ${
    s.front === "tls" ? "TLS (ALPN h2)" : "h2c prior knowledge"
  }, ${resp}`;
}
