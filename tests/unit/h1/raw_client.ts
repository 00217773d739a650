/**
 * A raw HTTP/1.1 client over Deno.connect for the h1 integration and attack tests: writes
 * exact bytes (smuggling, pipelining, slowloris) and parses what comes back independently of
 * the gateway's own codec (so a codec bug cannot hide itself). Every wait is bounded.
 */

import { concat } from "../../helpers/common.ts";

const enc = new TextEncoder();
const dec = new TextDecoder("latin1");

export interface RawResponse {
  status: number;
  /** lower-case name → values joined by ", " */
  headers: Map<string, string>;
  body: Uint8Array;
  trailers: Map<string, string>;
  /** the head exactly as received */
  head: string;
}

export class RawClient {
  #buf = new Uint8Array(0);
  #eof = false;
  #reset = false;

  private constructor(readonly conn: Deno.TcpConn | Deno.TlsConn) {}

  static async connect(port: number, hostname = "127.0.0.1"): Promise<RawClient> {
    return new RawClient(await Deno.connect({ hostname, port }));
  }

  /** TLS to 127.0.0.1:port with SNI `serverName`, trusting `caCerts`. */
  static async connectTls(port: number, serverName: string, caCerts: string[]): Promise<RawClient> {
    const tcp = await Deno.connect({ hostname: "127.0.0.1", port });
    const tls = await Deno.startTls(tcp, { hostname: serverName, caCerts, alpnProtocols: ["http/1.1"] });
    await tls.handshake();
    return new RawClient(tls);
  }

  /** The peer closed (FIN or reset) as seen by the last read. */
  get closed(): boolean {
    return this.#eof;
  }
  get reset(): boolean {
    return this.#reset;
  }
  get buffered(): number {
    return this.#buf.length;
  }

  async write(data: string | Uint8Array): Promise<void> {
    const b = typeof data === "string" ? latin1(data) : data;
    let off = 0;
    while (off < b.length) off += await this.conn.write(b.subarray(off));
  }

  closeWrite(): Promise<void> {
    return this.conn.closeWrite();
  }

  close(): void {
    try {
      this.conn.close();
    } catch { /* closed */ }
  }

  #pending: Promise<number | null> | undefined;
  #pendingChunk = new Uint8Array(64 * 1024);

  /**
   * One read into the buffer; false at EOF/reset or when `deadline` (performance.now ms)
   * passed. A read that outlives its deadline stays pending and is picked up by the next call,
   * so there is never a second concurrent read.
   */
  async #fillOnce(deadline: number): Promise<boolean> {
    if (this.#eof) return false;
    const left = deadline - performance.now();
    if (left <= 0) return false;
    if (!this.#pending) {
      this.#pending = this.conn.read(this.#pendingChunk).catch((e) => {
        if (
          e instanceof Deno.errors.ConnectionReset || e instanceof Deno.errors.BrokenPipe ||
          e instanceof Deno.errors.BadResource
        ) {
          this.#reset = !(e instanceof Deno.errors.BadResource);
          return null;
        }
        throw e;
      });
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const n = await Promise.race([
      this.#pending,
      new Promise<"timeout">((r) => timer = setTimeout(() => r("timeout"), left)),
    ]);
    clearTimeout(timer);
    if (n === "timeout") return false;
    this.#pending = undefined;
    if (n === null) {
      this.#eof = true;
      return false;
    }
    this.#append(this.#pendingChunk.subarray(0, n));
    return true;
  }

  #append(b: Uint8Array): void {
    const next = new Uint8Array(this.#buf.length + b.length);
    next.set(this.#buf);
    next.set(b, this.#buf.length);
    this.#buf = next;
  }

  #take(n: number): Uint8Array {
    const out = this.#buf.slice(0, n);
    this.#buf = this.#buf.slice(n);
    return out;
  }

  #indexOf(seq: string, from = 0): number {
    outer: for (let i = from; i + seq.length <= this.#buf.length; i++) {
      for (let k = 0; k < seq.length; k++) if (this.#buf[i + k] !== seq.charCodeAt(k)) continue outer;
      return i;
    }
    return -1;
  }

  async #line(deadline: number): Promise<string> {
    for (;;) {
      const i = this.#indexOf("\r\n");
      if (i >= 0) {
        const line = dec.decode(this.#take(i));
        this.#take(2);
        return line;
      }
      if (!(await this.#fillOnce(deadline))) throw new Error(this.#why("a line"));
    }
  }

  #why(what: string): string {
    return `no complete ${what}: ${
      this.#eof ? (this.#reset ? "connection reset" : "connection closed") : "timed out"
    }` +
      ` (buffered: ${JSON.stringify(dec.decode(this.#buf.subarray(0, 200)))})`;
  }

  /**
   * Reads one response. `method` decides whether it has a body (HEAD), like a real client.
   * Interim 1xx responses are returned as responses of their own.
   */
  async readResponse(timeoutMs = 5000, method = "GET"): Promise<RawResponse> {
    const deadline = performance.now() + timeoutMs;
    let end: number;
    for (;;) {
      end = this.#indexOf("\r\n\r\n");
      if (end >= 0) break;
      if (!(await this.#fillOnce(deadline))) throw new Error(this.#why("response head"));
    }
    const head = dec.decode(this.#take(end + 4));
    const lines = head.split("\r\n");
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]);
    if (!m) throw new Error(`bad status line: ${lines[0]}`);
    const status = Number(m[1]);
    const headers = parseFields(lines.slice(1, -2));
    const trailers = new Map<string, string>();
    let body: Uint8Array = new Uint8Array(0);
    const noBody = method === "HEAD" || status < 200 || status === 204 || status === 304;
    if (!noBody) {
      if (headers.get("transfer-encoding")?.toLowerCase() === "chunked") {
        const parts: Uint8Array[] = [];
        for (;;) {
          const size = parseInt((await this.#line(deadline)).split(";")[0], 16);
          if (!(size >= 0)) throw new Error("bad chunk size");
          if (size === 0) break;
          while (this.#buf.length < size + 2) {
            if (!(await this.#fillOnce(deadline))) throw new Error(this.#why("chunk"));
          }
          parts.push(this.#take(size));
          this.#take(2);
        }
        for (;;) {
          const line = await this.#line(deadline);
          if (line === "") break;
          const c = line.indexOf(":");
          trailers.set(line.slice(0, c).trim().toLowerCase(), line.slice(c + 1).trim());
        }
        body = concat(parts);
      } else if (headers.has("content-length")) {
        const n = Number(headers.get("content-length"));
        while (this.#buf.length < n) {
          if (!(await this.#fillOnce(deadline))) {
            // truncated: hand back what arrived, the caller compares lengths
            return { status, headers, body: this.#take(this.#buf.length), trailers, head };
          }
        }
        body = this.#take(n);
      } else {
        while (await this.#fillOnce(deadline));
        body = this.#take(this.#buf.length);
      }
    }
    return { status, headers, body, trailers, head };
  }

  /** Everything until the peer closes, or until the timeout; tells which. */
  async readToEnd(timeoutMs = 5000): Promise<{ text: string; closed: boolean; reset: boolean }> {
    const deadline = performance.now() + timeoutMs;
    while (await this.#fillOnce(deadline));
    const text = dec.decode(this.#take(this.#buf.length));
    return { text, closed: this.#eof, reset: this.#reset };
  }

  /** Waits until the peer closes (true) or the timeout passes (false), discarding data. */
  async waitClosed(timeoutMs = 5000): Promise<boolean> {
    return (await this.readToEnd(timeoutMs)).closed;
  }
}

function parseFields(lines: string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const l of lines) {
    const c = l.indexOf(":");
    const n = l.slice(0, c).trim().toLowerCase();
    const v = l.slice(c + 1).trim();
    out.set(n, out.has(n) ? `${out.get(n)}, ${v}` : v);
  }
  return out;
}

export function latin1(s: string): Uint8Array {
  const b = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) b[i] = s.charCodeAt(i);
  return b;
}

export function text(b: Uint8Array): string {
  return new TextDecoder().decode(b);
}

/** One request on a fresh connection: writes `raw`, reads to close (bounded). */
export async function rawOnce(
  port: number,
  raw: string | Uint8Array,
  opts: { timeoutMs?: number; halfClose?: boolean } = {},
): Promise<{ text: string; closed: boolean; reset: boolean }> {
  const c = await RawClient.connect(port);
  try {
    await c.write(raw);
    if (opts.halfClose) await c.closeWrite();
    return await c.readToEnd(opts.timeoutMs ?? 5000);
  } finally {
    c.close();
  }
}

export { enc };
