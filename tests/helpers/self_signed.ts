/** A self-signed EC P-256 certificate made by openssl, for tests that need a real one. */

import { run } from "./run.ts";

/** openssl req arguments for a new unencrypted EC P-256 key. */
export const NEW_P256_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

export interface SelfSignedOptions {
  /** Subject CN (default: the name). */
  cn?: string;
  /** Validity in days (default 2). */
  days?: number;
  /** subjectAltName, e.g. "IP:127.0.0.1,DNS:localhost" (default: none). */
  san?: string;
  /** More extensions, each an -addext value (e.g. "basicConstraints=critical,CA:TRUE" for a CA). */
  ext?: string[];
}

/** Writes `${dir}/${name}.pem` and `${dir}/${name}.key` (mode 600); throws if openssl fails. */
export async function selfSigned(
  dir: string,
  name: string,
  opts: SelfSignedOptions = {},
): Promise<{ cert: string; key: string }> {
  const cert = `${dir}/${name}.pem`, key = `${dir}/${name}.key`;
  const args = [
    "req",
    "-x509",
    ...NEW_P256_KEY,
    "-keyout",
    key,
    "-out",
    cert,
    "-days",
    String(opts.days ?? 2),
    "-subj",
    `/CN=${opts.cn ?? name}`,
  ];
  if (opts.san) args.push("-addext", `subjectAltName=${opts.san}`);
  for (const e of opts.ext ?? []) args.push("-addext", e);
  const r = await run("openssl", args, { timeoutMs: 20_000 });
  if (r.code !== 0) throw new Error(`openssl: ${r.stderr}`);
  await Deno.chmod(key, 0o600);
  return { cert, key };
}
