/** Shared by the config unit tests: real certificate files (openssl) and a loader that collects problems. */
import { ConfigError, type ConfigProblem } from "../../../src/config/errors.ts";
import { loadConfigFile } from "../../../src/config/load.ts";
import type { ConfigSnapshot } from "../../../src/config/types.ts";
import { run } from "../../helpers/run.ts";

export interface CertDir {
  dir: string;
  /** A real self-signed certificate and its key (mode 600). */
  cert: string;
  key: string;
  /** The same key, mode 644. */
  openKey: string;
  /** The certificate, mode 600, to be given where a key is expected. */
  certAsKey: string;
  /** A file that is not PEM. */
  notPem: string;
  /** A directory where a file is expected. */
  subdir: string;
  missing: string;
}

/** Generates one certificate pair with openssl in a new temp dir; remove `dir` when done. */
export async function makeCerts(): Promise<CertDir> {
  const dir = await Deno.makeTempDir({ prefix: "eg-config-certs-" });
  const c: CertDir = {
    dir,
    cert: `${dir}/good.pem`,
    key: `${dir}/good.key`,
    openKey: `${dir}/open.key`,
    certAsKey: `${dir}/cert-as.key`,
    notPem: `${dir}/not-pem.pem`,
    subdir: `${dir}/subdir`,
    missing: `${dir}/missing.pem`,
  };
  const r = await run("openssl", [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-days",
    "2",
    "-subj",
    "/CN=localhost",
    "-keyout",
    c.key,
    "-out",
    c.cert,
  ]);
  if (r.code !== 0) throw new Error(`openssl failed: ${r.stderr}`);
  await Deno.chmod(c.key, 0o600);
  await Deno.copyFile(c.key, c.openKey);
  await Deno.chmod(c.openKey, 0o644);
  await Deno.copyFile(c.cert, c.certAsKey);
  await Deno.chmod(c.certAsKey, 0o600);
  await Deno.writeTextFile(c.notPem, "this is not a certificate\n");
  await Deno.mkdir(c.subdir);
  return c;
}

export interface LoadResult {
  snapshot?: ConfigSnapshot;
  errors: ConfigProblem[];
  warnings: ConfigProblem[];
  /** The error text exactly as the CLI prints it. */
  message: string;
}

/** Loads a config file and returns what was found instead of throwing. */
export async function loadFile(path: string): Promise<LoadResult> {
  const warnings: ConfigProblem[] = [];
  try {
    const snapshot = await loadConfigFile(path, { warnings });
    return { snapshot, errors: [], warnings, message: "" };
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    return { errors: e.problems, warnings, message: e.message };
  }
}

/** Writes `toml` to a temp file, loads it, removes it. */
export async function loadToml(toml: string, dir?: string): Promise<LoadResult> {
  const file = await Deno.makeTempFile({ dir, prefix: "eg-config-", suffix: ".toml" });
  try {
    await Deno.writeTextFile(file, toml);
    return await loadFile(file);
  } finally {
    await Deno.remove(file);
  }
}

/** A listener named `name` with `extra` lines and one route to pool "api" unless `routes` is given. */
export function listener(extra = "", routes = '[[listeners.routes]]\npool = "api"', name = "web"): string {
  return `[[listeners]]\nname = "${name}"\nbind = "127.0.0.1:0"\nprotocol = "http"\n${extra}\n${routes}\n`;
}

/** A pool with `extra` lines and backends (one on 127.0.0.1:9 unless given). */
export function pool(name = "api", extra = "", backends = ['address = "127.0.0.1:9"']): string {
  return `[[pools]]\nname = "${name}"\n${extra}\n` +
    backends.map((b) => `[[pools.backends]]\n${b}\n`).join("");
}
