/**
 * Runs the real gateway (main.ts) as a child process under exactly the permission flags the
 * product uses (scripts/flags.ts), on a config written to a temp dir. Listeners and the admin
 * listener may bind port 0; the actual ports are read from the "gateway ready" log line.
 */

import { gatewayFlags } from "../../scripts/flags.ts";

const ROOT = new URL("../..", import.meta.url).pathname;

export interface GatewayProcess {
  child: Deno.ChildProcess;
  dir: string;
  configPath: string;
  /** listener name → bound port */
  ports: Record<string, number>;
  adminPort: number;
  /** Everything the gateway wrote to stderr/stdout so far (logs). */
  logs(): string;
  /** Waits until a log line matching re appears (bounded). */
  waitForLog(re: RegExp, timeoutMs?: number): Promise<string>;
  signal(sig: Deno.Signal): void;
  /** Rewrites the config file (for reload tests). */
  writeConfig(toml: string): Promise<void>;
  /** SIGTERM and wait; returns the exit code. */
  stop(): Promise<number>;
  url(listener?: string, path?: string): string;
  admin(path: string): string;
}

export interface StartOptions {
  env?: Record<string, string>;
  extraArgs?: string[];
  /** Resolve as soon as the process started, without waiting for "gateway ready". */
  noWait?: boolean;
}

export async function writeTempConfig(toml: string): Promise<{ dir: string; configPath: string }> {
  const dir = await Deno.makeTempDir({ prefix: "eg-test-" });
  const configPath = `${dir}/gateway.toml`;
  await Deno.writeTextFile(configPath, toml);
  return { dir, configPath };
}

export async function startGateway(toml: string, opts: StartOptions = {}): Promise<GatewayProcess> {
  const { dir, configPath } = await writeTempConfig(toml);
  return await startGatewayAt(configPath, dir, opts);
}

export async function startGatewayAt(
  configPath: string,
  dir: string,
  opts: StartOptions = {},
): Promise<GatewayProcess> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--no-prompt",
      ...gatewayFlags(configPath),
      `${ROOT}main.ts`,
      configPath,
      ...(opts.extraArgs ?? []),
    ],
    cwd: ROOT,
    env: { LB_LOG_FORMAT: "json", ...opts.env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let text = "";
  const waiters: Array<() => void> = [];
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    const dec = new TextDecoder();
    for await (const chunk of stream) {
      text += dec.decode(chunk, { stream: true });
      // Keep memory bounded in long tests: only the last 4 MiB of logs are kept.
      if (text.length > 8 * 1024 * 1024) text = text.slice(-4 * 1024 * 1024);
      for (const w of waiters.splice(0)) w();
    }
  };
  const pumps = Promise.all([pump(child.stdout), pump(child.stderr)]);
  let exited: number | undefined;
  const status = child.status.then((s) => {
    exited = s.code;
    for (const w of waiters.splice(0)) w();
    return s.code;
  });

  const waitForLog = async (re: RegExp, timeoutMs = 15_000): Promise<string> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = text.split("\n").find((l) => re.test(l));
      if (m) return m;
      if (exited !== undefined) throw new Error(`gateway exited (${exited}) before logging ${re}:\n${text}`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${re}; logs:\n${text.slice(-4000)}`);
      await new Promise<void>((r) => {
        waiters.push(r);
        setTimeout(r, 100);
      });
    }
  };

  const gw: GatewayProcess = {
    child,
    dir,
    configPath,
    ports: {},
    adminPort: 0,
    logs: () => text,
    waitForLog,
    signal: (sig) => {
      try {
        child.kill(sig);
      } catch { /* exited */ }
    },
    writeConfig: (toml) => Deno.writeTextFile(configPath, toml),
    stop: async () => {
      if (exited === undefined) {
        try {
          child.kill("SIGTERM");
        } catch { /* exited */ }
      }
      const killer = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch { /* exited */ }
      }, 20_000);
      const code = await status;
      clearTimeout(killer);
      await pumps;
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      return code;
    },
    url: (listener = "web", path = "/") => `http://127.0.0.1:${gw.ports[listener]}${path}`,
    admin: (path) => `http://127.0.0.1:${gw.adminPort}${path}`,
  };
  if (opts.noWait) return gw;
  try {
    const line = await waitForLog(/"msg":"gateway ready"/);
    const ready = JSON.parse(line);
    gw.ports = ready.listeners;
    gw.adminPort = ready.admin_port;
  } catch (e) {
    await gw.stop();
    throw e;
  }
  return gw;
}

/** A config with one listener on port 0 and the admin listener on port 0. */
export function basicConfig(
  opts: { pools?: string; routes?: string; listener?: string; extra?: string } = {},
): string {
  return `
[observability]
admin_bind = "127.0.0.1:0"
log_level = "info"
${opts.extra ?? ""}

[[listeners]]
name = "web"
bind = "127.0.0.1:0"
protocol = "http"
${opts.listener ?? ""}
${
    opts.routes ?? `
  [[listeners.routes]]
  pool = "app"
`
  }
${opts.pools ?? ""}
`;
}

/** A pool `name` of `addresses`; `extra` adds lines to the pool, `backend` to each backend. */
export function poolConfig(name: string, addresses: string[], extra = "", backend = ""): string {
  return `
[[pools]]
name = "${name}"
${extra}
${
    addresses.map((a) => `
  [[pools.backends]]
  address = "${a}"${backend ? `\n  ${backend}` : ""}`).join("\n")
  }
`;
}

/** Routes sending each host to the pool named after it (`{ "h1.test": "h1" }`). */
export function hostRoutes(routes: Record<string, string>): string {
  return Object.entries(routes).map(([host, pool]) => `
  [[listeners.routes]]
  host = "${host}"
  pool = "${pool}"`).join("");
}

/**
 * The two cleartext-and-QUIC fronts many tests drive on the same `routes`: `web` (protocol http:
 * HTTP/1.1 and h2c) and `q` (quic, on the certificate in `tls`); `listener` adds lines to both.
 */
export function webAndQuicListeners(
  tls: { cert: string; key: string },
  routes: string,
  listener = "",
): string {
  return `
[[listeners]]
name = "web"
bind = "127.0.0.1:0"
protocol = "http"
${listener}
${routes}
[[listeners]]
name = "q"
bind = "127.0.0.1:0"
protocol = "quic"
${listener}
tls = { cert = "${tls.cert}", key = "${tls.key}" }
${routes}
`;
}

/**
 * The head most test configs start with: `workers` data-plane workers (1 unless given), the
 * admin listener on port 0 and no access log; `runtime` adds lines to [runtime].
 */
export function configHead(opts: { workers?: number; runtime?: string } = {}): string {
  return `
[runtime]
workers = ${opts.workers ?? 1}
${opts.runtime ?? ""}
[observability]
admin_bind = "127.0.0.1:0"
access_log = false
`;
}

/**
 * A one-worker gateway with one quic listener (`name`, "q" unless given) on the certificate in
 * `tls`, whose routes (unless given) send everything to `pool` ("app"), a pool of `backend` alone.
 * `listener` adds lines to the listener.
 */
export function quicGatewayConfig(
  tls: { cert: string; key: string },
  backend: string,
  opts: { name?: string; pool?: string; listener?: string; routes?: string } = {},
): string {
  const pool = opts.pool ?? "app";
  return `${configHead()}
[[listeners]]
name = "${opts.name ?? "q"}"
bind = "127.0.0.1:0"
protocol = "quic"
${opts.listener ?? ""}
tls = { cert = "${tls.cert}", key = "${tls.key}" }
${opts.routes ?? `  [[listeners.routes]]\n  pool = "${pool}"`}
${poolConfig(pool, [backend])}`;
}

/**
 * A pool `name` of HTTP/3 backends at `address` (one or several) whose certificates are checked
 * against `ca` for "localhost"; `pool` adds lines to the pool, `backend` to each backend.
 */
export function h3PoolConfig(
  name: string,
  address: string | string[],
  ca: string,
  opts: { pool?: string; backend?: string } = {},
): string {
  const backends = (Array.isArray(address) ? address : [address]).map((a) => `
  [[pools.backends]]
  address = "${a}"
  protocol = "h3"
${opts.backend ?? ""}
  tls = { ca = "${ca}", server_name = "localhost" }`);
  return `
[[pools]]
name = "${name}"
${opts.pool ?? ""}${backends.join("")}
`;
}
