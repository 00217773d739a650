/**
 * HTTP/1.1 serialization: heads and bodies (Content-Length, chunked with trailers, or
 * close-delimited), coalescing small pieces (head + first chunk, chunk framing) into one
 * write so a small response costs one syscall.
 */

import type { Body, HeaderList } from "../exchange.ts";
import { rawSocketRid, writeSocket } from "../../net/raw_socket.ts";
import { RESOLVED } from "../../net/resolved.ts";
import { writeLatin1 } from "./bytes.ts";

export interface Writable {
  write(p: Uint8Array): Promise<number>;
}

const COALESCE = 16 * 1024;

/**
 * Scratch buffers shared by every writer of the isolate. A writer holds one only between its
 * first push and the end of the flush that empties it, so an idle keep-alive connection holds
 * none: 10k idle connections cost no scratch memory, and busy ones reuse a few warm buffers.
 */
const freeBuffers: Uint8Array[] = [];
const MAX_FREE_BUFFERS = 256;

function takeBuffer(min: number): Uint8Array {
  if (min <= COALESCE) return freeBuffers.pop() ?? new Uint8Array(COALESCE);
  return new Uint8Array(min);
}

function giveBack(b: Uint8Array): void {
  if (b.length === COALESCE && freeBuffers.length < MAX_FREE_BUFFERS) freeBuffers.push(b);
}

export class ConnWriter {
  #buf: Uint8Array | null = null;
  #len = 0;
  /**
   * Total bytes handed to the socket (for access logs and metrics), counted when each write is
   * issued: a write that send() does not wait for is counted with the message it carries.
   */
  written = 0;
  /** Write operations completed (each took some bytes): the send timeout's sign of progress (net/send_watch.ts). */
  progress = 0;
  /** A write to the socket failed (the peer reset or closed it): tells a socket error from a producer's. */
  socketFailed = false;
  /** Why a write that send() did not wait for failed; the next flush() reports it. */
  #sendError: unknown = undefined;

  /** The socket's resource id for the raw write (net/raw_socket.ts), or -1: conn.write(). */
  readonly #rid: number;

  constructor(readonly conn: Writable) {
    this.#rid = rawSocketRid(conn);
  }

  /** The scratch buffer with room for `extra` more bytes (taken from the shared free list). */
  #room(extra: number): Uint8Array {
    const buf = this.#buf;
    if (buf === null) return this.#buf = takeBuffer(extra);
    if (this.#len + extra <= buf.length) return buf;
    const next = new Uint8Array(Math.max(buf.length * 2, this.#len + extra));
    next.set(buf.subarray(0, this.#len));
    giveBack(buf);
    return this.#buf = next;
  }

  /** Appends a latin1 string (a head); grows the scratch buffer if a head is larger. */
  pushText(s: string): void {
    this.#len = writeLatin1(s, this.#room(s.length), this.#len);
  }

  /**
   * Appends a latin1 string char by char (a char above 0xff keeps its low byte, as in
   * writeLatin1). For the short pieces of a head: measured here, writing a head's names and
   * values one by one costs a third of concatenating them and encoding the result (the
   * concatenation, its flattening, and the encoder's call overhead per head).
   */
  pushStr(s: string): void {
    const n = s.length;
    const buf = this.#room(n);
    const o = this.#len;
    for (let i = 0; i < n; i++) buf[o + i] = s.charCodeAt(i);
    this.#len = o + n;
  }

  /** Appends the field line `name: value` CRLF (see pushStr). */
  pushField(name: string, value: string): void {
    const nl = name.length, vl = value.length;
    const buf = this.#room(nl + vl + 4);
    let o = this.#len;
    for (let i = 0; i < nl; i++) buf[o++] = name.charCodeAt(i);
    buf[o++] = 0x3a; // ':'
    buf[o++] = 0x20;
    for (let i = 0; i < vl; i++) buf[o++] = value.charCodeAt(i);
    buf[o++] = 0x0d;
    buf[o++] = 0x0a;
    this.#len = o;
  }

  /**
   * Appends small bytes if they fit in the scratch buffer as it is (no write needed); returns
   * false when the caller must use pushBytes(). Saves a promise per piece on the hot path.
   */
  tryPush(b: Uint8Array): boolean {
    if (b.length > COALESCE) return false;
    const buf = this.#buf;
    if (buf !== null && this.#len + b.length > buf.length) return false;
    this.#room(b.length).set(b, this.#len);
    this.#len += b.length;
    return true;
  }

  /** Appends bytes; large ones are written straight from the caller's buffer (no copy). */
  async pushBytes(b: Uint8Array): Promise<void> {
    if (b.length <= COALESCE) {
      if (this.#buf !== null && this.#len + b.length > this.#buf.length) await this.flush();
      this.#room(b.length).set(b, this.#len);
      this.#len += b.length;
      return;
    }
    await this.flush();
    // Registered as the write in flight, so a flush meanwhile queues behind it.
    const seq = ++this.#seq, prev = this.#busy;
    const p = (prev === null ? this.#writeAll(b) : prev.then(() => this.#writeAll(b))).finally(() =>
      this.#settled(seq)
    );
    this.#busy = p;
    await p;
  }

  get pending(): number {
    return this.#len;
  }

  /** A write is in flight. */
  get busy(): boolean {
    return this.#busy !== null;
  }

  /**
   * Drops what was pushed and not yet handed to the socket (a response head whose body failed
   * before any of it was written). False when the writer has already failed: nothing more can
   * be said on this connection.
   */
  discardPending(): boolean {
    if (this.#sendError !== undefined) return false;
    const buf = this.#buf;
    if (buf !== null) giveBack(buf);
    this.#buf = null;
    this.#len = 0;
    return true;
  }

  /**
   * Writes what is pushed. The write owns the scratch buffer from here: a push while it is in
   * flight starts another buffer (Deno reads the bytes during the write, so writing over them
   * would corrupt what is sent, and giving the buffer back early would hand it to another
   * connection), and each buffer goes back to the free list when its own write has ended.
   * Writes leave in push order: a flush while another is in flight (a partial write's tail
   * included) is queued behind it.
   *
   * Not async: the usual flush is one write that takes everything, completed by two callbacks
   * made once per writer (#wrote, #failed) rather than by an async function per write (a
   * promise, a generator and a resumption; a request makes two flushes).
   */
  flush(): Promise<void> {
    const buf = this.#buf;
    if (this.#sendError !== undefined) {
      if (buf !== null) giveBack(buf);
      this.#buf = null;
      this.#len = 0;
      return Promise.reject(this.#sendError);
    }
    if (buf === null) return this.#busy ?? RESOLVED;
    const n = this.#len;
    this.#buf = null;
    this.#len = 0;
    if (n === 0) {
      giveBack(buf);
      return this.#busy ?? RESOLVED;
    }
    this.written += n;
    const seq = ++this.#seq;
    if (this.#busy === null) return this.#issue(buf, n, seq, this.#wrote, this.#failed);
    const p = this.#busy.then(
      () => this.#writeOwned(buf, 0, n, seq),
      (e) => {
        giveBack(buf);
        this.#settled(seq);
        throw e;
      },
    );
    this.#busy = p;
    return p;
  }

  /**
   * Writes buf[0, n) while nothing else is in flight: the buffer is owned by this write
   * (#flushing) until `done` (a partial write continues in #writeOwned) or `failed` runs; a
   * write that throws at once fails the same way.
   */
  #issue(
    buf: Uint8Array,
    n: number,
    seq: number,
    done: (k: number) => Promise<void> | undefined,
    failed: (e: unknown) => void,
  ): Promise<void> {
    this.#flushing = buf;
    this.#flushLen = n;
    this.#flushSeq = seq;
    let w: Promise<number>;
    try {
      w = writeSocket(this.conn, this.#rid, buf.subarray(0, n));
    } catch (e) {
      w = Promise.reject(e);
    }
    return this.#busy = w.then(done, failed);
  }

  /**
   * flush() for a caller whose next step is a read that fails too if this write fails: a
   * response written whole before reading the next request, a bodiless request before reading
   * its answer. The write is issued and not waited for (a promise hop and a resumption less per
   * message); a failure is kept and rejects the next flush(). Only when no other write is in
   * flight, so a connection holds at most one write nobody waits for (a client that pipelines
   * without reading is still held back by the flushes after it); returns false otherwise, and
   * the caller awaits flush() as usual. Closing the socket cuts an unfinished write: a caller
   * that closes next must flush() instead, or wait for idle().
   */
  send(): boolean {
    if (this.#busy !== null || this.#sendError !== undefined) return false;
    const buf = this.#buf;
    if (buf === null) return true;
    const n = this.#len;
    this.#buf = null;
    this.#len = 0;
    if (n === 0) {
      giveBack(buf);
      return true;
    }
    this.written += n;
    this.#issue(buf, n, ++this.#seq, this.#sent, this.#sendFailed);
    return true;
  }

  /** Resolves when no write is in flight any more (never rejects). */
  idle(): Promise<void> {
    const busy = this.#busy;
    return busy === null ? RESOLVED : busy.then(undefined, () => {});
  }

  // send()'s completions: #wrote and #failed, with the failure kept instead of thrown.
  readonly #sent = (k: number): Promise<void> | undefined => this.#wrote(k)?.catch(this.#keepError);

  readonly #sendFailed = (e: unknown): void => {
    try {
      this.#failed(e);
    } catch {
      this.#keepError(e);
    }
  };

  readonly #keepError = (e: unknown): void => {
    this.#sendError = e;
  };

  /** The latest write issued and not yet ended (null: none), and its sequence number. */
  #busy: Promise<void> | null = null;
  #seq = 0;
  /** The buffer of the write #issue() started (only when nothing was in flight). */
  #flushing: Uint8Array | null = null;
  #flushLen = 0;
  #flushSeq = 0;

  readonly #wrote = (k: number): Promise<void> | undefined => {
    const buf = this.#flushing!, n = this.#flushLen, seq = this.#flushSeq;
    this.#flushing = null;
    this.progress++;
    if (k < n) return this.#writeOwned(buf, k, n, seq);
    giveBack(buf);
    this.#settled(seq);
  };

  readonly #failed = (e: unknown): never => {
    this.socketFailed = true;
    const buf = this.#flushing!;
    this.#flushing = null;
    giveBack(buf);
    this.#settled(this.#flushSeq);
    throw e;
  };

  /** Writes buf[off, n) to the end, then gives buf back. */
  async #writeOwned(buf: Uint8Array, off: number, n: number, seq: number): Promise<void> {
    try {
      // A write send() did not wait for failed meanwhile: the connection is broken.
      if (this.#sendError !== undefined) throw this.#sendError;
      while (off < n) {
        off += await writeSocket(this.conn, this.#rid, buf.subarray(off, n)).catch(this.#socketError);
        this.progress++;
      }
    } finally {
      giveBack(buf);
      this.#settled(seq);
    }
  }

  readonly #socketError = (e: unknown): never => {
    this.socketFailed = true;
    throw e;
  };

  /** The write numbered `seq` ended: nothing is in flight unless a later one was issued. */
  #settled(seq: number): void {
    if (this.#seq === seq) this.#busy = null;
  }

  async #writeAll(b: Uint8Array): Promise<void> {
    let off = 0;
    this.written += b.length;
    while (off < b.length) {
      off += await writeSocket(this.conn, this.#rid, off === 0 ? b : b.subarray(off)).catch(
        this.#socketError,
      );
      this.progress++;
    }
  }
}

export function appendFields(w: ConnWriter, headers: HeaderList): void {
  let s = "";
  for (let i = 0; i < headers.length; i += 2) s += `${headers[i]}: ${headers[i + 1]}\r\n`;
  w.pushText(s);
}

export type BodyMode = "length" | "chunked" | "close" | "none";

/**
 * Streams `body` in `mode`. What the body has ready without a socket read (Body.tryRead) is
 * coalesced with what is already pushed (the head, chunk framing) into as few writes as
 * possible; before each wait for the producer the coalesced bytes go out, so a streaming
 * response (SSE, gRPC-web) is never held back. Each write is awaited before the next read
 * (backpressure: a slow reader on this side slows the producer on the other). Returns the
 * body bytes sent.
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
    let chunk = body.tryRead !== undefined ? body.tryRead() : undefined;
    if (chunk === undefined) {
      if (w.pending > 0) await w.flush();
      chunk = await body.read();
    }
    if (chunk === null) break;
    if (chunk.length === 0) continue;
    sent += chunk.length;
    if (mode === "chunked") {
      w.pushText(`${chunk.length.toString(16)}\r\n`);
      if (!w.tryPush(chunk)) await w.pushBytes(chunk);
      w.pushText("\r\n");
    } else if (!w.tryPush(chunk)) {
      await w.pushBytes(chunk);
    }
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

const statusLines: string[] = [];

/** "HTTP/1.1 <status> <reason>\r\n", built once per status rather than per response. */
export function statusLine(status: number): string {
  return statusLines[status] ??= `HTTP/1.1 ${status} ${reasonPhrase(status)}\r\n`;
}
