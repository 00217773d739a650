/** Shared pieces of the HTTP/2 integration tests: node http2 peers, certificates, raw frames. */

import { run } from "../helpers/run.ts";

const ROOT = new URL("../..", import.meta.url).pathname;

export interface H2Origin {
  port: number;
  address: string;
  child: Deno.ChildProcess;
  stop(): Promise<void>;
}

/** tests/fixtures/h2_origin.mjs under node: h2c, or h2 over TLS with the given pair. */
export async function startH2Origin(
  name: string,
  mode: "h2c" | "h2",
  certs?: Certs,
  maxStreams?: number,
): Promise<H2Origin> {
  const args = [`${ROOT}tests/fixtures/h2_origin.mjs`, name, mode];
  if (mode === "h2") args.push(certs!.cert, certs!.key);
  else args.push("", "");
  if (maxStreams) args.push(String(maxStreams));
  const child = new Deno.Command("node", { args, stdout: "piped", stderr: "inherit", stdin: "null" }).spawn();
  const reader = child.stdout.getReader();
  const dec = new TextDecoder();
  let buf = "";
  const deadline = Date.now() + 10_000;
  while (!buf.includes("\n")) {
    if (Date.now() > deadline) throw new Error("h2 origin did not start");
    const { value, done } = await reader.read();
    if (done) throw new Error("h2 origin exited before listening");
    buf += dec.decode(value);
  }
  reader.releaseLock();
  child.stdout.cancel().catch(() => {});
  const port = JSON.parse(buf.split("\n")[0]).port as number;
  let stopped = false;
  return {
    port,
    address: `127.0.0.1:${port}`,
    child,
    async stop() {
      if (stopped) return;
      stopped = true;
      try {
        child.kill("SIGTERM");
      } catch { /* exited */ }
      await child.status;
    },
  };
}

// deno-lint-ignore no-explicit-any
export type Json = any;

/** One run of tests/fixtures/h2_client.mjs (see its header for the ops). */
export async function h2client(cfg: Record<string, unknown>, timeoutMs = 60_000): Promise<Json> {
  const r = await run("node", [`${ROOT}tests/fixtures/h2_client.mjs`, JSON.stringify(cfg)], { timeoutMs });
  const line = r.stdout.trim().split("\n").pop() ?? "";
  try {
    return JSON.parse(line);
  } catch {
    throw new Error(`h2 client failed (${r.code}): ${r.stdout}\n${r.stderr}`);
  }
}

export interface Certs {
  dir: string;
  ca: string;
  cert: string;
  key: string;
}

/** A throwaway CA and a leaf for localhost / 127.0.0.1 (rustls refuses a CA used as a leaf). */
export async function makeCerts(): Promise<Certs> {
  const dir = await Deno.makeTempDir({ prefix: "eg-h2-certs-" });
  const sh = `set -e; cd ${dir}
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=eg-test-ca 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout key.pem -out leaf.csr -subj /CN=localhost 2>/dev/null
printf "subjectAltName=DNS:localhost,IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\n" > ext.cnf
openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out cert.pem -days 2 -extfile ext.cnf 2>/dev/null`;
  const r = await run("bash", ["-c", sh]);
  if (r.code !== 0) throw new Error(`openssl failed: ${r.stderr}`);
  return { dir, ca: `${dir}/ca.pem`, cert: `${dir}/cert.pem`, key: `${dir}/key.pem` };
}

/** Sums a process's resident set (kB) from /proc, children included when given several pids. */
export async function rssKb(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const m = /VmRSS:\s+(\d+)/.exec(status);
  return m ? Number(m[1]) : 0;
}

// The raw-frame client lives in tests/helpers/h2_raw.ts (shared with tests/attacks).
export { errorCodeOf, RawH2 } from "../helpers/h2_raw.ts";
