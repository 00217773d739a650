/**
 * Command-line options and the scenario list of scripts/bench: what runs in the smoke, quick
 * and full sets, with which load generator settings, and how each is described in the report.
 */

import { SMALL_BODY } from "./configs.ts";

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
  balancer: boolean;
}

export const USAGE = `scripts/bench: side-by-side benchmark of the gateway, nginx, HAProxy and Caddy

  scripts/bench                 quick set (3 rounds × 5 s), writes docs/benchmarks.md
  scripts/bench --full          every scenario, 5 rounds × 15 s
  scripts/bench --smoke         1 round × 1 s, small memory rows (for the test suite)
Options:
  --out FILE         where to write the markdown (default docs/benchmarks.md; only the
                     generated section between the bench markers is replaced)
  --rounds N         rounds per scenario          --seconds S   seconds per cell
  --only IDS         comma-separated scenario ids (and/or "memory")
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
    balancer: o.balancer ?? false,
  };
}

export type Front = "h1" | "h2c" | "tls";

export interface Scenario {
  id: string;
  title: string;
  fullOnly?: boolean;
  tool: "wrk" | "h2load";
  front: Front;
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
];

export function loadDescription(s: Scenario): string {
  const scheme = s.front === "tls" ? "https" : "http";
  const what = s.post ? `POST ${s.path} (1 MiB body)` : `GET ${s.path}`;
  const resp = s.path === "/small"
    ? `${SMALL_BODY.length}-byte body`
    : s.path === "/1m"
    ? "1 MiB body"
    : "origin reads the whole body, answers 3 bytes";
  if (s.tool === "wrk") {
    return `\`wrk -t1 -c${s.connections}\`${
      s.close ? " with `Connection: close`" : ""
    }, ${what} over ${scheme}, ${resp}`;
  }
  const w = s.windowBits ? ` -w${s.windowBits} -W${s.windowBits}` : "";
  return `\`h2load -t1 -c${s.connections} -m${s.streams}${w}\`, ${what} over ${
    s.front === "tls" ? "TLS (ALPN h2)" : "h2c prior knowledge"
  }, ${resp}`;
}
