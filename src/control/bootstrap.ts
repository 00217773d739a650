/**
 * Reading the file the gateway is started with. With `[control] source = "file"` (the
 * default) it is the whole config, loaded and validated as always. With `source = "etcd"` it
 * is a bootstrap file: it holds only `[control]` (where etcd is, the key prefix, the cache…),
 * because the rest of the config comes from etcd; any other table there is an error rather
 * than something silently ignored.
 *
 * The [control] table is validated by the one config loader (types, units, unknown keys with
 * did-you-mean, file:line:col): the bootstrap text gets a placeholder listener appended past
 * its last line, which satisfies "at least one listener" without moving any position the
 * errors point at, and the placeholder is then dropped. The checks that only matter to the
 * control plane (endpoint URLs, credential pairs, cache directory) follow in validateControl.
 */

import { parse as parseToml } from "smol-toml";
import { ConfigError, type ConfigProblem, describeFsError } from "../config/errors.ts";
import { loadConfigFile, loadConfigText, MAX_CONFIG_BYTES } from "../config/load.ts";
import { KeyLocator } from "../config/locate.ts";
import type { ConfigSnapshot, ControlConfig } from "../config/types.ts";

export type Bootstrap =
  | { kind: "file"; snapshot: ConfigSnapshot }
  | { kind: "etcd"; control: ControlConfig; file: string };

const PLACEHOLDER = `
[[listeners]]
name = "bootstrap-placeholder"
bind = "127.0.0.1:0"
protocol = "http"
routes = [{ respond = { status = 200 } }]
`;

/** Loads `path` as a full config (file source) or as an etcd bootstrap. Throws ConfigError. */
export async function loadBootstrap(path: string, warnings: ConfigProblem[] = []): Promise<Bootstrap> {
  let text: string | undefined;
  try {
    const info = await Deno.stat(path);
    if (info.isFile && info.size <= MAX_CONFIG_BYTES) text = await Deno.readTextFile(path);
  } catch {
    // loadConfigFile below reports unreadable files with the usual wording.
  }
  let raw: Record<string, unknown> | undefined;
  try {
    if (text !== undefined) raw = parseToml(text) as Record<string, unknown>;
  } catch {
    // A syntax error: loadConfigFile reports it with its position.
  }
  const control = raw?.control as Record<string, unknown> | undefined;
  if (text === undefined || raw === undefined || control?.source !== "etcd") {
    const snapshot = await loadConfigFile(path, { warnings });
    await throwOnErrors(validateControl(snapshot.config.control, text ?? "", path), warnings);
    return { kind: "file", snapshot };
  }
  const locator = new KeyLocator(text);
  const problems: ConfigProblem[] = [];
  for (const key of Object.keys(raw)) {
    if (key === "control") continue;
    const pos = locator.find(key);
    problems.push({
      file: path,
      path: key,
      line: pos?.line,
      column: pos?.column,
      message: `with control.source = "etcd" the config comes from etcd; this file may only hold [control] ` +
        `(push the rest with expressgateway config push FILE --etcd URL)`,
    });
  }
  if (problems.length > 0) throw new ConfigError(problems);
  const own: ConfigProblem[] = [];
  const snap = await loadConfigText(`${text}\n${PLACEHOLDER}`, path, { warnings: own });
  warnings.push(...own.filter((w) => w.path.startsWith("control")));
  await throwOnErrors(validateControl(snap.config.control, text, path), warnings);
  return { kind: "etcd", control: snap.config.control, file: path };
}

async function throwOnErrors(problems: Promise<ConfigProblem[]>, warnings: ConfigProblem[]): Promise<void> {
  const all = await problems;
  warnings.push(...all.filter((p) => p.severity === "warning"));
  const errors = all.filter((p) => p.severity !== "warning");
  if (errors.length > 0) throw new ConfigError(errors);
}

/** Control-plane checks the schema cannot express. Returns errors and warnings. */
export async function validateControl(
  c: ControlConfig,
  text: string,
  file: string,
): Promise<ConfigProblem[]> {
  const locator = new KeyLocator(text);
  const out: ConfigProblem[] = [];
  const report = (path: string, message: string, severity: "error" | "warning" = "error") => {
    const pos = locator.find(path);
    out.push({ file, path, message, line: pos?.line, column: pos?.column, severity });
  };
  const etcd = c.source === "etcd";
  c.endpoints.forEach((e, i) => {
    const why = endpointProblem(e);
    if (why) report(`control.endpoints[${i}]`, why);
  });
  if (etcd && c.endpoints.length === 0) report("control.endpoints", "at least one etcd endpoint is required");
  if ((c.username === undefined) !== (c.password === undefined)) {
    report(
      c.username === undefined ? "control.password" : "control.username",
      "username and password go together",
    );
  }
  if (c.tls && (c.tls.cert === undefined) !== (c.tls.key === undefined)) {
    report("control.tls", "cert and key go together (a client certificate needs its key)");
  }
  if (c.tls && !c.endpoints.some((e) => e.startsWith("https://"))) {
    report("control.tls", "is used only for https:// endpoints; every endpoint is http://", "warning");
  }
  if (c.password !== undefined && c.endpoints.some((e) => e.startsWith("http://")) && !isLocal(c.endpoints)) {
    report(
      "control.password",
      "is sent in clear text to a non-loopback http:// endpoint; use https://",
      "warning",
    );
  }
  if (c.password !== undefined) {
    try {
      const mode = (await Deno.stat(file)).mode;
      if (mode !== null && (mode & 0o077) !== 0) {
        report("control.password", `${file} is readable by group or others; chmod 600 it`, "warning");
      }
    } catch { /* loaded from this path a moment ago; nothing useful to add */ }
  }
  if (!etcd) {
    for (const k of ["cache_file", "username", "password", "tls", "instance_id"] as const) {
      if (c[k] !== undefined) report(`control.${k}`, 'is used only with control.source = "etcd"', "warning");
    }
    if (c.cert_dirs.length > 0) {
      report("control.cert_dirs", 'is used only with control.source = "etcd"', "warning");
    }
  } else if (c.cache_file !== undefined) {
    const slash = c.cache_file.lastIndexOf("/");
    const dir = slash < 0 ? "." : slash === 0 ? "/" : c.cache_file.slice(0, slash);
    try {
      if (!(await Deno.stat(dir)).isDirectory) report("control.cache_file", `${dir} is not a directory`);
    } catch (e) {
      report("control.cache_file", `directory ${dir}: ${describeFsError(e)}`);
    }
  } else if (etcd) {
    report(
      "control.cache_file",
      "unset: if etcd is unreachable when this gateway starts, it cannot start (set a cache file)",
      "warning",
    );
  }
  for (const [i, d] of c.cert_dirs.entries()) {
    if (!etcd) break;
    try {
      if (!(await Deno.stat(d)).isDirectory) report(`control.cert_dirs[${i}]`, `${d} is not a directory`);
    } catch (e) {
      report(`control.cert_dirs[${i}]`, `${d}: ${describeFsError(e)}`);
    }
  }
  if (c.watch_file && etcd) {
    report("control.watch_file", 'is used only with control.source = "file"', "warning");
  }
  return out;
}

function isLocal(endpoints: readonly string[]): boolean {
  return endpoints.every((e) => {
    try {
      const h = new URL(e).hostname;
      return h === "127.0.0.1" || h === "localhost" || h === "[::1]";
    } catch {
      return false;
    }
  });
}

/** Why an endpoint URL is unusable, or undefined when it is fine. */
export function endpointProblem(e: string): string | undefined {
  let u: URL;
  try {
    u = new URL(e);
  } catch {
    return `invalid URL ${JSON.stringify(e)}; write it as "http://host:2379"`;
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") {
    return `${JSON.stringify(e)}: only http:// and https:// endpoints are supported`;
  }
  if ((u.pathname !== "/" && u.pathname !== "") || u.search || u.hash || u.username || u.password) {
    return `${JSON.stringify(e)}: give scheme, host and port only (credentials go in username/password)`;
  }
  return undefined;
}
