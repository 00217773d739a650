/**
 * expressgateway [CONFIG] [--check] [--version] [--help]
 * expressgateway config push FILE --etcd URL | config get --etcd URL | fleet --etcd URL
 *
 * Exit codes: 0 success; 2 invalid config (including a listener that cannot bind) or bad
 * usage; 1 runtime failure. Every error reaches the terminal as one line per problem: config
 * problems as `file:line:col: key.path: message`, anything else as its message's first line.
 * No path through main() prints a stack trace (tests/integration/cli.test.ts checks).
 */

import { ConfigError, formatProblem, oneLine } from "./src/config/errors.ts";
import type { ConfigProblem } from "./src/config/errors.ts";
import { type Bootstrap, loadBootstrap } from "./src/control/bootstrap.ts";
import { CONTROL_HELP, controlCli } from "./src/control/cli.ts";
import { BootError, EtcdSource } from "./src/control/etcd_source.ts";
import { FileSource } from "./src/control/file_source.ts";
import type { ConfigSource } from "./src/control/source.ts";
import type { ConfigSnapshot } from "./src/config/types.ts";
import { formatDuration, formatSize } from "./src/config/units.ts";
import { BindError } from "./src/net/listener.ts";
import { flushLogs, log } from "./src/observability/log.ts";
import { Gateway } from "./src/runtime/gateway.ts";
import { occupyInspectorPort } from "./src/security/inspector_guard.ts";
import { VERSION } from "./src/version.ts";

const DEFAULT_CONFIG = "config/default.toml";

const HELP = `expressgateway ${VERSION}: L4/L7 load balancer and reverse proxy

Usage:
  expressgateway [CONFIG]          run with CONFIG (default: ${DEFAULT_CONFIG})
  expressgateway --check [CONFIG]  validate CONFIG, print a summary, exit (also -t)
  expressgateway --version         print the version (also -V)
  expressgateway --help            this text (also -h)

Paths in CONFIG (tls cert/key/ca) are relative to the working directory.

${CONTROL_HELP}

With [control] source = "etcd" in CONFIG, the config comes from etcd (CONFIG holds only
[control]); without etcd at boot the gateway starts from control.cache_file, else exits 1.

Signals: SIGHUP reload config (validate first; with etcd: re-read the key), SIGUSR1 reload
TLS certificates, SIGTERM/SIGINT drain and exit.
Environment: LB_LOG_FORMAT=json|text, LB_LOG_LEVEL=debug|info|warn|error.
Exit codes: 0 ok, 2 invalid config or usage (including an address that cannot be bound),
1 runtime failure (etcd unreachable at boot without a cache), 3 config push refused (stale).
`;

function describeBindError(e: unknown): string {
  if (e instanceof Deno.errors.AddrInUse) return "address already in use";
  if (e instanceof Deno.errors.AddrNotAvailable) return "address not available on this host";
  if (e instanceof Deno.errors.PermissionDenied) return "permission denied";
  return oneLineError(e);
}

export function summary(s: ConfigSnapshot): string {
  const c = s.config;
  const lines = [
    `config ${s.source} is valid (sha256 ${s.digest.slice(0, 12)})`,
    `listeners (${c.listeners.length}):`,
  ];
  for (const l of c.listeners) {
    const routes = l.routes.map((r) =>
      `${r.host ?? "*"}${r.path_prefix ?? "/"} → ${
        r.pool ? `pool ${r.pool}` : `respond ${r.respond!.status}`
      }`
    );
    lines.push(
      `  ${l.name}: ${l.protocol} on ${l.bind}` +
        (l.tls ? ` (tls ${l.tls.cert}, ${1 + l.tls.certificates.length} cert(s))` : "") +
        (l.raw_proxy
          ? `, raw_proxy → ${l.raw_proxy.backend} (alpn ${l.raw_proxy.alpn.join(",")})`
          : `, max_body ${formatSize(l.max_body_size)}, header_timeout ${formatDuration(l.header_timeout)}`),
    );
    for (const r of routes) lines.push(`    ${r}`);
  }
  lines.push(`pools (${c.pools.length}):`);
  for (const p of c.pools) {
    lines.push(
      `  ${p.name}: ${p.algorithm}${p.hash_key ? ` on ${p.hash_key}` : ""}, ${p.backends.length} backend(s)`,
    );
    for (const b of p.backends) {
      lines.push(`    ${b.protocol}://${b.address} weight ${b.weight}${b.tls ? " tls" : ""}`);
    }
  }
  lines.push(`admin: ${c.observability.admin_bind}`);
  return lines.join("\n");
}

function bootstrapSummary(b: Extract<Bootstrap, { kind: "etcd" }>): string {
  const c = b.control;
  return [
    `config ${b.file} is valid (an etcd bootstrap: the rest of the config comes from etcd)`,
    `etcd: ${c.endpoints.join(", ")}${c.username ? ` as ${c.username}` : ""}${c.tls ? " (tls)" : ""}`,
    `config key: ${c.prefix}/config; fleet: ${c.prefix}/instances/${c.instance_id ?? "<hostname>-<pid>"}`,
    `cache: ${c.cache_file ?? "none (etcd must be reachable at boot)"}`,
  ].join("\n");
}

export interface CliArgs {
  check: boolean;
  configPath: string;
}

/** argv → what to do: run/check, "help" / "version" (print, exit 0), or a usage error (exit 2). */
export function parseArgs(args: string[]): CliArgs | "help" | "version" | { usage: string } {
  let check = false;
  let configPath: string | undefined;
  let positionalOnly = false;
  for (const a of args) {
    if (!positionalOnly && a.startsWith("-") && a !== "-") {
      if (a === "--") positionalOnly = true;
      else if (a === "--help" || a === "-h") return "help";
      else if (a === "--version" || a === "-V") return "version";
      else if (a === "--check" || a === "-t") check = true;
      else return { usage: `unknown option '${a}'; see expressgateway --help` };
    } else if (configPath === undefined) configPath = a;
    else return { usage: `more than one config file given ('${configPath}', '${a}')` };
  }
  return { check, configPath: configPath ?? DEFAULT_CONFIG };
}

/** One line for any thrown value: its message's first line, never a stack. */
function oneLineError(e: unknown): string {
  return oneLine((e instanceof Error ? e.message : String(e)).split("\n")[0]);
}

async function main(argv: string[]): Promise<number> {
  const sub = await controlCli(argv);
  if (sub !== undefined) return sub;
  const args = parseArgs(argv);
  if (args === "help") {
    console.log(HELP);
    return 0;
  }
  if (args === "version") {
    console.log(`expressgateway ${VERSION}`);
    return 0;
  }
  if ("usage" in args) {
    console.error(`expressgateway: ${args.usage}`);
    return 2;
  }
  const path = args.configPath;
  const warnings: ConfigProblem[] = [];
  let boot: Bootstrap;
  try {
    boot = await loadBootstrap(path, warnings);
  } catch (e) {
    if (e instanceof ConfigError) {
      // One line per problem (file:line:col: key.path: what is wrong), then a count if several.
      console.error(e.message);
      if (e.problems.length > 1) console.error(`expressgateway: ${path}: ${e.problems.length} errors`);
    } else {
      // A bug in validation, not in the file: still one line, still exit 2 (the config was not accepted).
      console.error(`expressgateway: ${path}: cannot validate config: ${oneLineError(e)}`);
    }
    return 2;
  }
  for (const w of warnings) console.error(formatProblem(w));
  if (args.check) {
    console.log(boot.kind === "file" ? summary(boot.snapshot) : bootstrapSummary(boot));
    return 0;
  }

  let snapshot: ConfigSnapshot;
  let source: ConfigSource;
  if (boot.kind === "file") {
    snapshot = boot.snapshot;
    source = new FileSource(path, snapshot.config.control.watch_file, log);
  } else {
    try {
      const etcd = await EtcdSource.create(boot.control, log);
      source = etcd;
      snapshot = (await etcd.initial()).snapshot;
    } catch (e) {
      if (!(e instanceof BootError)) throw e;
      // Config problems are already one line each; the last line says why there is no fallback.
      for (const line of e.message.split("\n")) {
        console.error(
          line.startsWith("expressgateway:") || e.exitCode === 2 ? line : `expressgateway: ${line}`,
        );
      }
      flushLogs();
      return e.exitCode;
    }
  }

  // Before anything else: SIGUSR1 (certificate rotation) must never open Deno's inspector.
  occupyInspectorPort(log);
  const gateway = new Gateway(snapshot, path, log);
  try {
    await gateway.start();
  } catch (e) {
    await source.stop().catch(() => {});
    // Gateway.start binds the admin listener, then every data listener; any failure closes what
    // was bound, so the process never runs half-up. A listener that cannot bind is a BindError,
    // or, from a data-plane worker, an error flagged `bind: true` (classes don't cross isolates).
    // A bare socket error can only come from the admin bind, so it is named as such.
    const listenerBind = e instanceof BindError ||
      (e instanceof Error && (e as { bind?: unknown }).bind === true);
    const adminBind = e instanceof Deno.errors.AddrInUse || e instanceof Deno.errors.AddrNotAvailable ||
      e instanceof Deno.errors.PermissionDenied;
    if (listenerBind) console.error(`expressgateway: ${oneLineError(e)}`);
    else if (adminBind) {
      console.error(
        `expressgateway: observability.admin_bind ${snapshot.config.observability.admin_bind} cannot bind: ${
          describeBindError(e)
        }`,
      );
    } else console.error(`expressgateway: start failed: ${oneLineError(e)}`);
    flushLogs();
    return listenerBind || adminBind ? 2 : 1;
  }

  source.start(gateway);
  const done = Promise.withResolvers<number>();
  let stopping: Promise<void> | undefined;
  const onStop = () => {
    // Stop following the source (and leave the fleet list) while draining: a revision arriving
    // now is refused by the draining gateway, and an unreachable etcd cannot delay the drain.
    stopping ??= Promise.all([
      source.stop().catch((e) => log.warn("config source did not stop cleanly", { error: String(e) })),
      gateway.drain(),
    ]).then(() => done.resolve(0), () => done.resolve(1));
  };
  Deno.addSignalListener("SIGTERM", onStop);
  Deno.addSignalListener("SIGINT", onStop);
  Deno.addSignalListener("SIGHUP", () => void source.resync());
  Deno.addSignalListener("SIGUSR1", () => void gateway.rotateCertificates());
  return await done.promise;
}

if (import.meta.main) {
  // Libraries catch socket errors where the socket is owned; this is the last net, so a bug
  // in one connection's path is logged instead of taking every other connection down.
  globalThis.addEventListener("unhandledrejection", (e) => {
    e.preventDefault();
    log.error("unhandled rejection (bug: please report)", { error: String(e.reason?.stack ?? e.reason) });
  });
  let code: number;
  try {
    code = await main(Deno.args);
  } catch (e) {
    console.error(`expressgateway: fatal: ${oneLineError(e)}`);
    code = 1;
  }
  flushLogs();
  Deno.exit(code);
}
