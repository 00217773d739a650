/** Shared pieces of the HTTP/2 integration tests: node http2 peers, certificates, raw frames. */

import { run } from "../helpers/run.ts";
import { type HeaderField, HpackDecoder, HpackEncoder } from "../../src/http/h2/hpack.ts";
import {
  CONNECTION_PREFACE,
  encodeFrame,
  FrameReader,
  FrameType,
  type RawFrame,
} from "../../src/http/h2/frames.ts";

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

/**
 * A hand-written HTTP/2 client over a raw socket, for protocol-level assertions (error codes,
 * stream vs connection errors) that a well-behaved client library would never provoke.
 */
export class RawH2 {
  readonly reader = new FrameReader();
  readonly encoder = new HpackEncoder({ huffman: false });
  readonly decoder = new HpackDecoder();
  #closed = false;
  #buf = new Uint8Array(65536);
  /** Fields of the last complete HEADERS block seen by waitFor(). */
  lastHeaders: HeaderField[] = [];

  private constructor(readonly conn: Deno.Conn) {}

  static async connect(
    port: number,
    opts: { handshake?: boolean; settings?: Uint8Array } = {},
  ): Promise<RawH2> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    const c = new RawH2(conn);
    if (opts.handshake !== false) {
      await c.send(CONNECTION_PREFACE, opts.settings ?? encodeFrame(FrameType.SETTINGS, 0, 0));
      // Server SETTINGS, then its ACK of ours (other frames, e.g. WINDOW_UPDATE, are skipped).
      let settings = false;
      let ack = false;
      while (!(settings && ack)) {
        const f = await c.next(5000);
        if (!f || f === "closed") throw new Error("no SETTINGS from the server");
        if (f.header.type !== FrameType.SETTINGS) continue;
        if (f.header.flags & 1) ack = true;
        else {
          settings = true;
          await c.send(encodeFrame(FrameType.SETTINGS, 1, 0));
        }
      }
    }
    return c;
  }

  async send(...parts: Uint8Array[]): Promise<void> {
    for (const p of parts) {
      let off = 0;
      while (off < p.length) off += await this.conn.write(p.subarray(off));
    }
  }

  /** A header block for `fields`, with the connection's encoder. */
  block(fields: HeaderField[]): Uint8Array {
    return this.encoder.encode(fields);
  }

  headers(streamId: number, fields: HeaderField[], flags = 0x5): Uint8Array {
    return encodeFrame(FrameType.HEADERS, flags, streamId, this.block(fields));
  }

  /** Next frame; "closed" when the server closed; undefined on timeout. */
  async next(timeoutMs = 3000): Promise<RawFrame | "closed" | undefined> {
    for (;;) {
      const f = this.reader.next();
      if (f) return f;
      if (this.#closed) return "closed";
      let timer: ReturnType<typeof setTimeout> | undefined;
      const n = await Promise.race([
        this.conn.read(this.#buf).catch(() => null),
        new Promise<"timeout">((r) => timer = setTimeout(() => r("timeout"), timeoutMs)),
      ]);
      clearTimeout(timer);
      if (n === "timeout") return undefined;
      if (n === null) {
        this.#closed = true;
        continue;
      }
      this.reader.push(this.#buf.slice(0, n));
    }
  }

  /**
   * Reads until a frame of `type` (optionally on `streamId`) or the connection closes.
   * Returns the frame, "closed", or undefined on timeout.
   */
  async waitFor(type: number, streamId?: number, timeoutMs = 3000): Promise<RawFrame | "closed" | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) return undefined;
      const f = await this.next(left);
      if (f === undefined || f === "closed") return f;
      if (f.header.type === FrameType.HEADERS || f.header.type === FrameType.CONTINUATION) {
        if (f.header.flags & 0x4) {
          this.lastHeaders = this.decoder.decode(f.payload.subarray(f.header.flags & 0x20 ? 5 : 0));
        }
      }
      if (f.header.type === type && (streamId === undefined || f.header.streamId === streamId)) return f;
    }
  }

  close(): void {
    try {
      this.conn.close();
    } catch { /* closed */ }
  }
}

/** The error code of a GOAWAY or RST_STREAM frame. */
export function errorCodeOf(f: RawFrame): number {
  const o = f.header.type === FrameType.GOAWAY ? 4 : 0;
  const p = f.payload;
  return ((p[o] << 24) | (p[o + 1] << 16) | (p[o + 2] << 8) | p[o + 3]) >>> 0;
}
