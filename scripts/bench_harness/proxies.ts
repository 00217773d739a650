/**
 * Starting the origin and the proxies under test (the gateway, nginx, HAProxy, Caddy, and
 * nghttpx for the HTTP/2 scenarios): each gets fresh loopback ports, a config in the run's temp
 * dir, its CPU pinning, and is waited for until it accepts (the gateway until its /readyz says
 * ready). A port stolen in between is retried with new ones.
 */

import { SCHEMA } from "../../src/config/schema.ts";
import { gatewayFlags } from "../flags.ts";
import {
  caddyfile,
  gatewayToml,
  haproxy,
  nghttpxConf,
  nginxProxy,
  originNginx,
  type Ports,
  type Setup,
} from "./configs.ts";
import type { Front, Options } from "./options.ts";
import {
  exitInfo,
  freePorts,
  log,
  refreshTree,
  runCmd,
  sleep,
  spawn,
  type Started,
  stop,
  waitForPorts,
} from "./procs.ts";
import type { ProxyName } from "./report.ts";

const ROOT = new URL("../..", import.meta.url).pathname;

export interface Proxy {
  name: ProxyName;
  proc: Started;
  ports: Ports;
  /** Fronts this proxy cannot serve, with the reason. */
  na: Partial<Record<Front, string>>;
  /** Set once the process died: every later cell is n/a. */
  dead?: string;
}

export interface Ctx {
  opts: Options;
  setup: Setup;
  lua: string;
  bodyFile: string;
  origin: Started;
}

function portsFor(): Ports {
  const [h1, h2c, tls, admin, grpc, ws] = freePorts(6);
  return { h1, h2c, tls, admin, h3: tls, grpc, ws };
}

/**
 * Why a peer has no HTTP/3 front, from its own build description (undefined: it has one).
 * Debian 12's nginx 1.22 predates nginx's QUIC support (1.25) and its HAProxy 2.6 is built
 * without QUIC (it needs a QUIC-capable TLS library): the tables say so instead of dropping them.
 */
async function noH3(name: "nginx" | "haproxy"): Promise<string | undefined> {
  if (name === "nginx") {
    const r = await runCmd("nginx", ["-V"], { timeoutMs: 10_000 });
    const text = r.stdout + r.stderr;
    if (/http_v3_module/.test(text)) return undefined;
    const v = text.match(/nginx\/([\d.]+)/)?.[1] ?? "?";
    return `no HTTP/3 front in nginx ${v} (built without http_v3_module; QUIC arrived in 1.25)`;
  }
  const r = await runCmd("haproxy", ["-vv"], { timeoutMs: 10_000 });
  if (/\+QUIC/.test(r.stdout)) return undefined;
  const v = r.stdout.match(/HAProxy version ([\d.]+)/)?.[1] ?? "?";
  return `no HTTP/3 front in HAProxy ${v} (this build lists -QUIC)`;
}

/** Starts a proxy, retrying with fresh ports when a port was taken in the meantime. */
async function startWithRetry(
  name: ProxyName,
  start: (ports: Ports) => Promise<Proxy>,
): Promise<Proxy> {
  let last: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await start(portsFor());
    } catch (e) {
      last = e;
      if (!/in use|bind|EADDRINUSE/i.test(String(e))) break;
    }
  }
  throw new Error(`${name} did not start: ${last instanceof Error ? last.message : String(last)}`);
}

export async function startOrigin(opts: Options, setup: Setup): Promise<Started> {
  const conf = `${setup.dir}/origin.conf`;
  await Deno.writeTextFile(conf, originNginx(setup));
  const p = spawn("origin", "nginx", [
    "-p",
    setup.dir,
    "-c",
    conf,
    "-e",
    `${setup.dir}/origin.err`,
    "-g",
    "daemon off;",
  ], {
    cpus: opts.originCpus,
  });
  await waitForPorts(p, [setup.originPort]);
  refreshTree(p);
  return p;
}

export async function startNginx(ctx: Ctx): Promise<Proxy> {
  return await startWithRetry("nginx", async (ports) => {
    const conf = `${ctx.setup.dir}/nginx.conf`;
    await Deno.writeTextFile(conf, nginxProxy(ctx.setup, ports));
    const proc = spawn("nginx", "nginx", [
      "-p",
      ctx.setup.dir,
      "-c",
      conf,
      "-e",
      `${ctx.setup.dir}/nginx.err`,
      "-g",
      "daemon off;",
    ], {
      cpus: ctx.opts.proxyCpus,
    });
    await waitOrStop(proc, [ports.h1, ports.h2c, ports.tls, ports.grpc, ports.ws]);
    const h3 = await noH3("nginx");
    return { name: "nginx", proc, ports, na: h3 ? { h3 } : {} };
  });
}

export async function startHaproxy(ctx: Ctx): Promise<Proxy> {
  return await startWithRetry("haproxy", async (ports) => {
    const conf = `${ctx.setup.dir}/haproxy.cfg`;
    await Deno.writeTextFile(conf, haproxy(ctx.setup, ports));
    const proc = spawn("haproxy", "haproxy", ["-f", conf, "-db"], { cpus: ctx.opts.proxyCpus });
    await waitOrStop(proc, [ports.h1, ports.h2c, ports.tls, ports.grpc, ports.ws]);
    const h3 = await noH3("haproxy");
    return { name: "haproxy", proc, ports, na: h3 ? { h3 } : {} };
  });
}

export async function startCaddy(ctx: Ctx): Promise<Proxy> {
  return await startWithRetry("caddy", async (ports) => {
    const dir = ctx.setup.dir;
    const conf = `${dir}/Caddyfile`;
    await Deno.writeTextFile(conf, caddyfile(ctx.setup, ports));
    const proc = spawn("caddy", "caddy", ["run", "--config", conf, "--adapter", "caddyfile"], {
      cpus: ctx.opts.proxyCpus,
      env: {
        GOMAXPROCS: String(ctx.opts.workers),
        XDG_DATA_HOME: `${dir}/caddy-data`,
        XDG_CONFIG_HOME: `${dir}/caddy-config`,
      },
    });
    await waitOrStop(proc, [ports.h1, ports.tls, ports.grpc, ports.ws]);
    // Caddy serves h2c on its HTTP/1.1 port (protocols h1 h2 h2c) and HTTP/3 on its HTTPS port.
    return { name: "caddy", proc, ports: { ...ports, h2c: ports.h1 }, na: {} };
  });
}

/** nghttpx, the HTTP/2 peer: only the h2 scenarios (h2c, TLS with ALPN h2, gRPC) have its row. */
export async function startNghttpx(ctx: Ctx): Promise<Proxy> {
  return await startWithRetry("nghttpx", async (ports) => {
    const conf = `${ctx.setup.dir}/nghttpx.conf`;
    await Deno.writeTextFile(conf, nghttpxConf(ctx.setup, ports));
    const proc = spawn("nghttpx", "nghttpx", [`--conf=${conf}`], { cpus: ctx.opts.proxyCpus });
    await waitOrStop(proc, [ports.h2c, ports.tls]);
    // One cleartext front for HTTP/1.1, h2c and gRPC (routed by path to the gRPC origin).
    return {
      name: "nghttpx",
      proc,
      ports: { ...ports, h1: ports.h2c, grpc: ports.h2c },
      na: { h3: "no HTTP/3 front in this nghttpx build (not linked with ngtcp2)" },
    };
  });
}

/** The gateway, spawned like tests/helpers/gateway.ts does (its own permission flags). */
export async function startGateway(ctx: Ctx): Promise<Proxy> {
  const rt = SCHEMA.runtime;
  const workersKey = rt.type === "table" && "workers" in rt.fields;
  const conf = `${ctx.setup.dir}/gateway.toml`;
  const deno = Deno.execPath();
  return await startWithRetry("gateway", async (ports) => {
    const na: Proxy["na"] = {};
    // The full config first; if --check refuses it, drop the https and/or quic listener (their
    // cells then say n/a with the reason) rather than lose the gateway's other rows.
    const variants = [
      { tls: true, quic: true },
      { tls: false, quic: true },
      { tls: true, quic: false },
      { tls: false, quic: false },
    ];
    let firstWhy: string | undefined;
    for (const v of variants) {
      await Deno.writeTextFile(conf, gatewayToml(ctx.setup, ports, { ...v, workersKey }));
      const check = await runCmd(deno, [
        "run",
        "--no-prompt",
        ...gatewayFlags(conf),
        `${ROOT}main.ts`,
        "--check",
        conf,
      ], {
        cwd: ROOT,
        timeoutMs: 60_000,
      });
      if (check.code === 0) {
        if (!v.tls) na.tls = `https listener refused by --check (${firstWhy})`;
        if (!v.quic) na.h3 = `quic listener refused by --check (${firstWhy})`;
        break;
      }
      // First problem line, without the temp file's path ("…/gateway.toml:27:1: ").
      firstWhy ??= ((check.stderr || check.stdout).trim().split("\n")[0] || `exit ${check.code}`)
        .replace(/^\S*\.toml:\d+:\d+: /, "").replace(/\|/g, "/").slice(0, 160);
      if (v === variants[variants.length - 1]) throw new Error(`gateway --check: ${firstWhy}`);
    }
    const proc = spawn(
      "gateway",
      deno,
      ["run", "--no-prompt", ...gatewayFlags(conf), `${ROOT}main.ts`, conf],
      {
        cpus: ctx.opts.proxyCpus,
        cwd: ROOT,
        env: { LB_LOG_FORMAT: "json" },
      },
    );
    await waitOrStop(
      proc,
      na.tls ? [ports.h1, ports.admin, ports.grpc, ports.ws] : [
        ports.h1,
        ports.tls,
        ports.admin,
        ports.grpc,
        ports.ws,
      ],
    );
    // Listeners accept before the gateway says ready; /readyz is the gateway's own word.
    const deadline = Date.now() + 20_000;
    for (;;) {
      const ok = await fetch(`http://127.0.0.1:${ports.admin}/readyz`).then(async (r) => {
        await r.body?.cancel();
        return r.ok;
      }, () => false);
      if (ok) break;
      if (Date.now() > deadline) {
        await stop(proc);
        throw new Error(`gateway never became ready:\n${proc.output().slice(-2000)}`);
      }
      await sleep(100);
    }
    return { name: "gateway", proc, ports: { ...ports, h2c: ports.h1 }, na };
  });
}

async function waitOrStop(proc: Started, ports: number[]): Promise<void> {
  try {
    await waitForPorts(proc, ports);
    refreshTree(proc);
  } catch (e) {
    await stop(proc);
    throw e;
  }
}

export function url(p: Proxy, front: Front, path: string): string {
  if (front === "tls") return `https://127.0.0.1:${p.ports.tls}${path}`;
  if (front === "h3") return `https://127.0.0.1:${p.ports.h3}${path}`;
  return `http://127.0.0.1:${p.ports[front]}${path}`;
}

export function exitedReason(p: Proxy): string | undefined {
  if (p.dead) return p.dead;
  const info = exitInfo(p.proc);
  if (!info) return undefined;
  p.dead = `process exited during the run (${info})`;
  log(
    `${p.name} exited (${info}); its last output:\n${
      p.proc.output().trim().split("\n").slice(-5).join("\n")
    }`,
  );
  return p.dead;
}

/** Throws when the origin is gone: every number after that would be an error page. */
export function checkOrigin(ctx: Ctx): void {
  const info = exitInfo(ctx.origin);
  if (info) {
    throw new Error(
      `the origin (nginx, pid ${ctx.origin.pid}) exited during the run (${info}); ` +
        "something else on this machine may have killed it (e.g. a `pkill nginx`)",
    );
  }
}
