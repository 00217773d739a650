/**
 * The gateway's permission flags, from the one list in deno.json ("expressgateway".permissions),
 * plus --allow-read scoped to what the config names (the config file's directory and every
 * TLS/CA file's directory, [control] TLS files and control.cert_dirs included), --allow-ffi only when
 * runtime.xdp_enabled is true or a listener is `https` (TCP_NODELAY through libc), and, when [control] names a cache_file, --allow-read and
 * --allow-write for that file's directory (the etcd source rewrites it atomically by rename).
 *
 *   deno run --allow-read --allow-env --allow-run scripts/flags.ts [--exec] [--print] -- main.ts CONFIG [args]
 *
 * --print prints the flags; --exec runs `deno run FLAGS main.ts CONFIG args` and exits with its code.
 * Tests import gatewayFlags() so they run the gateway under exactly these flags.
 */

import { parse } from "smol-toml";

const ROOT = new URL("..", import.meta.url).pathname;

export function baseFlags(): string[] {
  const cfg = JSON.parse(Deno.readTextFileSync(`${ROOT}deno.json`));
  return [...cfg.expressgateway.permissions];
}

function dirOf(p: string): string {
  const i = p.lastIndexOf("/");
  return i <= 0 ? (i === 0 ? "/" : ".") : p.slice(0, i);
}

function collectFiles(value: unknown, out: string[]): void {
  if (Array.isArray(value)) { for (const v of value) collectFiles(v, out); }
  else if (value && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) {
      if ((k === "cert" || k === "key" || k === "ca") && typeof v === "string") out.push(v);
      else collectFiles(v, out);
    }
  }
}

/** Flags for running the gateway on `configPath` (read scoped to what it needs). */
export function gatewayFlags(configPath: string, extraRead: string[] = []): string[] {
  const flags = baseFlags();
  // Data-plane workers are loaded from src/ at run time (deno run); a compiled binary embeds them.
  const reads = new Set<string>([dirOf(configPath), `${ROOT}src`, ...extraRead]);
  let xdp = false;
  let https = false;
  const writes: string[] = [];
  try {
    const doc = parse(Deno.readTextFileSync(configPath)) as Record<string, unknown>;
    const files: string[] = [];
    collectFiles(doc.listeners, files);
    collectFiles(doc.pools, files);
    collectFiles(doc.control, files);
    for (const f of files) reads.add(dirOf(f));
    xdp = (doc.runtime as { xdp_enabled?: boolean } | undefined)?.xdp_enabled === true;

    if (xdp) {
      // The compiled program: bpf/ unless xdp.object_path says otherwise.
      const objectPath = (doc.xdp as { object_path?: string } | undefined)?.object_path;
      reads.add(objectPath ? dirOf(objectPath) : `${ROOT}bpf`);
    }
    // An etcd document's certificate files are unknown here: [control] cert_dirs names their directories.
    const certDirs = (doc.control as { cert_dirs?: unknown } | undefined)?.cert_dirs;
    if (Array.isArray(certDirs)) {
      for (const d of certDirs) if (typeof d === "string" && d !== "") reads.add(d);
    }
    // An https listener, in the file or (cert_dirs named) in an etcd document.
    https = (Array.isArray(doc.listeners) &&
      doc.listeners.some((l) => (l as { protocol?: unknown } | null)?.protocol === "https")) ||
      (Array.isArray(certDirs) && certDirs.length > 0);
    const cache = (doc.control as { cache_file?: unknown } | undefined)?.cache_file;
    if (typeof cache === "string" && cache !== "") {
      reads.add(dirOf(cache));
      writes.push(dirOf(cache));
    }
  } catch {
    // An unreadable or invalid config: the gateway itself reports it with exit code 2.
  }
  flags.push(`--allow-read=${[...reads].join(",")}`);
  if (writes.length > 0) flags.push(`--allow-write=${writes.join(",")}`);
  // libbpf through Deno.dlopen; libc's setsockopt for TCP_NODELAY on TLS listeners (src/net/tcp_nodelay.ts).
  if (xdp || https) flags.push("--allow-ffi");
  return flags;
}

if (import.meta.main) {
  const args = [...Deno.args];
  const sep = args.indexOf("--");
  const own = sep >= 0 ? args.slice(0, sep) : [];
  const rest = sep >= 0 ? args.slice(sep + 1) : args;
  const entry = rest[0] ?? "main.ts";
  // `config push FILE` / `fleet` subcommands read FILE and --control FILE, not a gateway config.
  const sub = rest[1] === "config" || rest[1] === "fleet";
  const control = rest.findIndex((a) => a === "--control");
  const subFiles = sub
    ? [rest[1] === "config" ? rest[3] : undefined, control > 0 ? rest[control + 1] : undefined]
      .filter((f): f is string => typeof f === "string" && !f.startsWith("-"))
    : [];
  const config = sub
    ? subFiles[subFiles.length - 1] ?? "config/default.toml"
    : rest.slice(1).find((a) => !a.startsWith("-")) ?? "config/default.toml";
  const flags = gatewayFlags(config, subFiles.map(dirOf));
  if (own.includes("--print")) console.log(flags.join(" "));
  if (own.includes("--exec")) {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-prompt", ...flags, entry, ...rest.slice(1)],
      stdin: "inherit",
      stdout: "inherit",
      stderr: "inherit",
    }).spawn();
    for (const sig of ["SIGTERM", "SIGINT", "SIGHUP", "SIGUSR1"] as const) {
      Deno.addSignalListener(sig, () => child.kill(sig));
    }
    const status = await child.status;
    Deno.exit(status.code);
  }
}
