/**
 * The control-plane subcommands of main.ts:
 *
 *   expressgateway config push FILE --etcd URL [--prefix P] [--if-revision N]
 *   expressgateway config get --etcd URL [--prefix P]
 *   expressgateway fleet --etcd URL [--prefix P] [--json]
 *
 * (`--control FILE` instead of / besides --etcd takes endpoints, prefix, credentials and TLS
 * from a config's [control] table.) `config push` validates FILE with the gateway's own loader
 * first and refuses an invalid one (exit 2), then writes it with a compare-and-swap on the
 * revision it read (or on --if-revision): if someone pushed in between, nothing is written and
 * it exits 3 (stale). Exit codes: 0 done, 1 etcd unreachable or failed, 2 invalid config or
 * usage, 3 stale revision.
 */

import { parse as parseToml } from "smol-toml";
import { ConfigError, formatProblem, oneLine } from "../config/errors.ts";
import type { ConfigProblem } from "../config/errors.ts";
import { loadConfigText, MAX_CONFIG_BYTES } from "../config/load.ts";
import type { ControlConfig } from "../config/types.ts";
import { parseDuration } from "../config/units.ts";
import { endpointProblem, loadBootstrap } from "./bootstrap.ts";
import { type EtcdClient, EtcdError, EtcdUnavailableError } from "./etcd_client.ts";
import { BootError, clientFromControl } from "./etcd_source.ts";
import { configKey, formatFleet, readFleet } from "./fleet.ts";

export const CONTROL_HELP = `Control plane (etcd; see docs/CONTROL_PLANE.md):
  expressgateway config push FILE --etcd URL [--prefix P] [--if-revision N]
                                   validate FILE, then write it to <prefix>/config with a
                                   compare-and-swap (exit 2 invalid, 3 changed meanwhile)
  expressgateway config get --etcd URL [--prefix P]
                                   print the document in etcd (its revision on stderr)
  expressgateway fleet --etcd URL [--prefix P] [--json]
                                   list registered gateways and which are behind
  --etcd takes a comma-separated list; --control FILE reads endpoints, prefix, credentials
  and TLS from FILE's [control] table. Default prefix: /expressgateway.`;

interface Opts {
  etcd?: string[];
  prefix?: string;
  control?: string;
  ifRevision?: number;
  json: boolean;
  positional: string[];
}

class Usage extends Error {}

function parseOpts(args: string[]): Opts {
  const o: Opts = { json: false, positional: [] };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const eq = a.indexOf("=");
    const name = a.startsWith("--") && eq > 0 ? a.slice(0, eq) : a;
    const inline = a.startsWith("--") && eq > 0 ? a.slice(eq + 1) : undefined;
    const value = () => {
      if (inline !== undefined) return inline;
      const v = args[++i];
      if (v === undefined) throw new Usage(`${name} needs a value`);
      return v;
    };
    if (name === "--etcd") o.etcd = [...(o.etcd ?? []), ...value().split(",").filter((s) => s)];
    else if (name === "--prefix") o.prefix = value();
    else if (name === "--control") o.control = value();
    else if (name === "--if-revision") {
      const v = value();
      if (!/^\d+$/.test(v)) throw new Usage(`--if-revision wants a revision number, got '${v}'`);
      o.ifRevision = Number(v);
    } else if (name === "--json") o.json = true;
    else if (a.startsWith("-") && a !== "-") throw new Usage(`unknown option '${a}'`);
    else o.positional.push(a);
  }
  return o;
}

const DEFAULTS: ControlConfig = {
  source: "etcd",
  watch_file: false,
  endpoints: [],
  prefix: "/expressgateway",
  cert_dirs: [],
  lease_ttl: 10_000,
  request_timeout: parseDuration("5s")!,
  boot_timeout: 0,
};

async function controlFor(o: Opts): Promise<ControlConfig> {
  let c: ControlConfig = DEFAULTS;
  if (o.control) {
    const warnings: ConfigProblem[] = [];
    const b = await loadBootstrap(o.control, warnings);
    c = b.kind === "etcd" ? b.control : b.snapshot.config.control;
  } else if (!o.etcd) {
    throw new Usage("--etcd URL (or --control FILE) is required");
  }
  if (o.etcd) {
    for (const e of o.etcd) {
      const why = endpointProblem(e);
      if (why) throw new Usage(`--etcd ${why}`);
    }
    c = { ...c, endpoints: o.etcd };
  }
  if (o.prefix !== undefined) {
    if (!/^\/[A-Za-z0-9_.\/-]*[A-Za-z0-9_.-]$/.test(o.prefix)) {
      throw new Usage(`--prefix wants an absolute key path such as /expressgateway (no trailing '/')`);
    }
    c = { ...c, prefix: o.prefix };
  }
  return c;
}

/** Runs a control subcommand; undefined when argv is not one (main handles it). */
export async function controlCli(argv: string[]): Promise<number | undefined> {
  const [cmd, sub] = argv;
  const isConfig = cmd === "config" && (sub === "push" || sub === "get");
  if (!isConfig && cmd !== "fleet") return undefined;
  if (argv.includes("--help") || argv.includes("-h")) {
    console.log(CONTROL_HELP);
    return 0;
  }
  let client: EtcdClient | undefined;
  try {
    const o = parseOpts(argv.slice(isConfig ? 2 : 1));
    if (isConfig && sub === "push" && o.positional.length !== 1) {
      throw new Usage("config push wants one FILE");
    }
    if (!(isConfig && sub === "push") && o.positional.length > 0) {
      throw new Usage(`unexpected argument '${o.positional[0]}'`);
    }
    if (o.ifRevision !== undefined && !(isConfig && sub === "push")) {
      throw new Usage("--if-revision is for config push");
    }
    const control = await controlFor(o);
    if (isConfig && sub === "push") {
      // Validate before touching etcd: an invalid document never leaves this machine.
      const text = await readDocument(o.positional[0]);
      if (typeof text === "number") return text;
      const ok = await validateDocument(text, o.positional[0]);
      if (!ok) return 2;
      client = await clientFromControl(control);
      return await push(client, control.prefix, o.positional[0], text, o.ifRevision);
    }
    client = await clientFromControl(control);
    if (isConfig) {
      const r = await client.get(configKey(control.prefix));
      if (r.value === undefined) {
        console.error(`expressgateway: no config at ${configKey(control.prefix)}`);
        return 1;
      }
      await writeAll(Deno.stdout, r.value);
      console.error(`# ${configKey(control.prefix)} revision ${r.modRevision}`);
      return 0;
    }
    const view = await readFleet(client, control.prefix);
    console.log(o.json ? JSON.stringify(view, null, 2) : formatFleet(view));
    return 0;
  } catch (e) {
    if (e instanceof Usage) {
      console.error(`expressgateway: ${e.message}; see expressgateway ${cmd} --help`);
      return 2;
    }
    if (e instanceof ConfigError) {
      console.error(e.message);
      return 2;
    }
    if (e instanceof BootError) {
      console.error(`expressgateway: ${oneLine(e.message)}`);
      return e.exitCode;
    }
    if (e instanceof EtcdUnavailableError || e instanceof EtcdError) {
      console.error(`expressgateway: ${oneLine(e.message)}`);
      return 1;
    }
    throw e;
  } finally {
    client?.close();
  }
}

async function readDocument(path: string): Promise<string | number> {
  try {
    const info = await Deno.stat(path);
    if (!info.isFile) throw new Error("not a regular file");
    if (info.size > MAX_CONFIG_BYTES) throw new Error(`a config may be at most ${MAX_CONFIG_BYTES} bytes`);
    return await Deno.readTextFile(path);
  } catch (e) {
    console.error(`expressgateway: ${path}: cannot read: ${oneLine((e as Error).message.split("\n")[0])}`);
    return 2;
  }
}

/**
 * The gateway's own validation. File checks (certificate files) are skipped: the paths name
 * files on the gateway hosts, which check them when they apply the document (and refuse it,
 * keeping their last good config, if one is missing).
 */
async function validateDocument(text: string, path: string): Promise<boolean> {
  const warnings: ConfigProblem[] = [];
  try {
    await loadConfigText(text, path, { skipFileChecks: true, warnings });
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    console.error(e.message);
    console.error(
      `expressgateway: ${path}: refusing to push an invalid config (${e.problems.length} error(s))`,
    );
    return false;
  }
  for (const w of warnings) console.error(formatProblem(w));
  try {
    if ((parseToml(text) as Record<string, unknown>).control !== undefined) {
      console.error(
        `${path}: warning: control: ignored by gateways reading this from etcd (each takes [control] from its local file)`,
      );
    }
  } catch { /* parsed above */ }
  return true;
}

async function push(
  client: EtcdClient,
  prefix: string,
  path: string,
  text: string,
  ifRevision: number | undefined,
): Promise<number> {
  const key = configKey(prefix);
  const current = await client.get(key);
  const expected = ifRevision ?? current.modRevision;
  if (current.value === text && current.modRevision === expected) {
    console.log(`${key} already holds ${path} (revision ${current.modRevision}); nothing written`);
    return 0;
  }
  const r = await client.putIfModRevision(key, text, expected);
  if (!r.succeeded) {
    console.error(
      `expressgateway: config push refused (stale): ${key} is at revision ${r.currentModRevision}, not ` +
        `${expected}${ifRevision !== undefined ? " (--if-revision)" : " as read a moment ago"}; someone ` +
        `pushed in between. Nothing was written: fetch the current document (expressgateway config get), ` +
        `merge your change, and push again.`,
    );
    return 3;
  }
  console.log(`pushed ${path} to ${key}: revision ${r.revision} (was ${current.modRevision || "absent"})`);
  return 0;
}

async function writeAll(w: { write(p: Uint8Array): Promise<number> }, text: string): Promise<void> {
  const bytes = new TextEncoder().encode(text);
  let off = 0;
  while (off < bytes.length) off += await w.write(bytes.subarray(off));
}
