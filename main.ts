/**
 * expressgateway [CONFIG] [--check] [--version] [--help]
 *
 * Exit codes: 0 success; 2 invalid config (including a listener that cannot bind);
 * 1 runtime failure.
 */

import { ConfigError, formatProblem } from "./src/config/errors.ts";
import type { ConfigProblem } from "./src/config/errors.ts";
import { loadConfigFile } from "./src/config/load.ts";
import type { ConfigSnapshot } from "./src/config/types.ts";
import { formatDuration, formatSize } from "./src/config/units.ts";
import { BindError } from "./src/net/listener.ts";
import { flushLogs, log } from "./src/observability/log.ts";
import { Gateway } from "./src/runtime/gateway.ts";
import { VERSION } from "./src/version.ts";

const DEFAULT_CONFIG = "config/default.toml";

const HELP = `expressgateway ${VERSION}: L4/L7 load balancer and reverse proxy

Usage:
  expressgateway [CONFIG]          run with CONFIG (default: ${DEFAULT_CONFIG})
  expressgateway --check [CONFIG]  validate CONFIG, print a summary, exit
  expressgateway --version         print the version
  expressgateway --help            this text

Signals: SIGHUP reload config (validate first), SIGUSR1 reload TLS certificates,
SIGTERM/SIGINT drain and exit.
Environment: LB_LOG_FORMAT=json|text, LB_LOG_LEVEL=debug|info|warn|error.
Exit codes: 0 ok, 2 invalid config, 1 runtime failure.
`;

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
        `, max_body ${formatSize(l.max_body_size)}, header_timeout ${formatDuration(l.header_timeout)}`,
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

async function main(args: string[]): Promise<number> {
  let check = false;
  let configPath: string | undefined;
  for (const a of args) {
    if (a === "--help" || a === "-h") {
      console.log(HELP);
      return 0;
    }
    if (a === "--version" || a === "-V") {
      console.log(`expressgateway ${VERSION}`);
      return 0;
    }
    if (a === "--check" || a === "-t") check = true;
    else if (a.startsWith("-")) {
      console.error(`expressgateway: unknown option ${a}\n\n${HELP}`);
      return 2;
    } else if (configPath === undefined) configPath = a;
    else {
      console.error(`expressgateway: more than one config file given (${configPath}, ${a})`);
      return 2;
    }
  }
  const path = configPath ?? DEFAULT_CONFIG;
  const warnings: ConfigProblem[] = [];
  let snapshot: ConfigSnapshot;
  try {
    snapshot = await loadConfigFile(path, { warnings });
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(e.message);
      console.error(`expressgateway: ${path}: invalid config (${e.problems.length} problem(s))`);
      return 2;
    }
    console.error(`expressgateway: ${path}: ${e instanceof Error ? e.message : String(e)}`);
    return 2;
  }
  for (const w of warnings) console.error(formatProblem(w));
  if (check) {
    console.log(summary(snapshot));
    return 0;
  }

  const gateway = new Gateway(snapshot, path, log);
  try {
    await gateway.start();
  } catch (e) {
    const bind = e instanceof BindError ||
      (e instanceof Error && /AddrInUse|address already in use/i.test(e.message));
    console.error(`expressgateway: ${e instanceof Error ? e.message : String(e)}`);
    flushLogs();
    return bind ? 2 : 1;
  }

  const done = Promise.withResolvers<number>();
  const onStop = () => {
    gateway.drain().then(() => done.resolve(0), () => done.resolve(1));
  };
  Deno.addSignalListener("SIGTERM", onStop);
  Deno.addSignalListener("SIGINT", onStop);
  Deno.addSignalListener("SIGHUP", () => void gateway.reload());
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
    console.error(`expressgateway: fatal: ${e instanceof Error ? e.message : String(e)}`);
    code = 1;
  }
  flushLogs();
  Deno.exit(code);
}
