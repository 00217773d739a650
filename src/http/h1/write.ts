/**
 * HTTP/1.1 serialization: heads and bodies (Content-Length, chunked with trailers, or
 * close-delimited), coalescing small pieces (head + first chunk, chunk framing) into one
 * write so a small response costs one syscall.
 */

import type { Body, HeaderList } from "../exchange.ts";
import { writeLatin1 } from "./bytes.ts";

export interface Writable {
  write(p: Uint8Array): Promise<number>;
}

const COALESCE = 16 * 1024;

export class ConnWriter {
  #buf = new Uint8Array(COALESCE);
  #len = 0;
  /** Total bytes handed to the socket (for access logs and metrics). */
  written = 0;

  constructor(readonly conn: Writable) {}

  /** Appends a latin1 string (a head); grows the scratch buffer if a head is larger. */
  pushText(s: string): void {
    if (this.#len + s.length > this.#buf.length) {
      const next = new Uint8Array(Math.max(this.#buf.length * 2, this.#len + s.length));
      next.set(this.#buf.subarray(0, this.#len));
      this.#buf = next;
    }
    this.#len = writeLatin1(s, this.#buf, this.#len);
  }

  /** Appends bytes; large ones are written straight from the caller's buffer (no copy). */
  async pushBytes(b: Uint8Array): Promise<void> {
    if (this.#len + b.length <= this.#buf.length) {
      this.#buf.set(b, this.#len);
      this.#len += b.length;
      return;
    }
    await this.flush();
    if (b.length <= this.#buf.length) {
      this.#buf.set(b, 0);
      this.#len = b.length;
      return;
    }
    await this.#writeAll(b);
  }

  get pending(): number {
    return this.#len;
  }

  async flush(): Promise<void> {
    if (this.#len === 0) return;
    const n = this.#len;
    this.#len = 0;
    await this.#writeAll(this.#buf.subarray(0, n));
    if (this.#buf.length > COALESCE) this.#buf = new Uint8Array(COALESCE);
  }

  async #writeAll(b: Uint8Array): Promise<void> {
    let off = 0;
    while (off < b.length) off += await this.conn.write(off === 0 ? b : b.subarray(off));
    this.written += b.length;
  }
}

export function appendFields(w: ConnWriter, headers: HeaderList): void {
  let s = "";
  for (let i = 0; i < headers.length; i += 2) s += `${headers[i]}: ${headers[i + 1]}\r\n`;
  w.pushText(s);
}

export type BodyMode = "length" | "chunked" | "close" | "none";

/**
 * Streams `body` in `mode`, awaiting each write before the next read (backpressure: a slow
 * reader on this side slows the producer on the other). Returns the body bytes sent.
 * `trailers` controls whether chunked trailers are emitted (client accepts them).
 */
export async function writeBody(
  w: ConnWriter,
  body: Body,
  mode: BodyMode,
  trailers: boolean,
): Promise<number> {
  let sent = 0;
  if (mode === "none") {
    body.cancel();
    await w.flush();
    return 0;
  }
  for (;;) {
    const chunk = await body.read();
    if (chunk === null) break;
    if (chunk.length === 0) continue;
    sent += chunk.length;
    if (mode === "chunked") {
      w.pushText(`${chunk.length.toString(16)}\r\n`);
      await w.pushBytes(chunk);
      w.pushText("\r\n");
    } else {
      await w.pushBytes(chunk);
    }
    // Small pieces stay coalesced only while nothing else is waiting; flush each round so a
    // streaming response (SSE, gRPC-web) is not held back.
    await w.flush();
  }
  if (mode === "chunked") {
    const t = trailers ? body.trailers() : undefined;
    w.pushText("0\r\n");
    if (t) appendFields(w, t);
    w.pushText("\r\n");
  }
  await w.flush();
  return sent;
}

const REASONS: Record<number, string> = {
  100: "Continue",
  101: "Switching Protocols",
  200: "OK",
  201: "Created",
  202: "Accepted",
  204: "No Content",
  206: "Partial Content",
  301: "Moved Permanently",
  302: "Found",
  303: "See Other",
  304: "Not Modified",
  307: "Temporary Redirect",
  308: "Permanent Redirect",
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  408: "Request Timeout",
  411: "Length Required",
  413: "Content Too Large",
  414: "URI Too Long",
  415: "Unsupported Media Type",
  417: "Expectation Failed",
  421: "Misdirected Request",
  425: "Too Early",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  501: "Not Implemented",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
  505: "HTTP Version Not Supported",
};

export function reasonPhrase(status: number): string {
  return REASONS[status] ?? "";
}
