/**
 * The two carriers of a tunnel side as ByteStreams: a socket (HTTP/1.1 after 101 or after a
 * CONNECT's 200, either towards the client or the backend; TCP or TLS) and an HTTP/2 stream (an
 * extended or plain CONNECT, towards the client or the backend). Both are pull-based with
 * awaited writes, so a relay built on them holds at most one read buffer per direction, and HTTP/2
 * flow control (window returned only as bytes are read) bounds what a stalled peer can make us hold.
 */

import type { ByteStream } from "../http/exchange.ts";
import type { H2Session } from "../http/h2/connection.ts";
import { ErrorCode } from "../http/h2/frames.ts";
import type { H2Stream } from "../http/h2/stream.ts";
import { rawSocketRid, readSocket, writeSocket } from "../net/raw_socket.ts";

/** Read buffers start small (idle WebSockets should be cheap) and grow while reads fill them. */
const BUFFER_MIN = 16 * 1024;
const BUFFER_MAX = 64 * 1024;
const EMPTY = new Uint8Array(0);

export class ConnStream implements ByteStream {
  #pre: Uint8Array | null;
  #buf: Uint8Array | undefined;
  #aborted = false;
  /** For the raw socket ops (src/net/raw_socket.ts); -1: conn.read() and conn.write(). */
  readonly #rid: number;

  constructor(
    readonly conn: Deno.Conn,
    /** Bytes already read past the HTTP head (the codec's buffer; no longer used by it). */
    pre?: Uint8Array,
    /** How to close it (the owning codec's abort), instead of closing the socket directly. */
    private readonly onAbort?: () => void,
  ) {
    this.#pre = pre && pre.length > 0 ? pre : null;
    this.#rid = rawSocketRid(conn);
  }

  async read(): Promise<Uint8Array | null> {
    const pre = this.#pre;
    if (pre) {
      this.#pre = null;
      return pre;
    }
    let buf = this.#buf ??= new Uint8Array(BUFFER_MIN);
    const n = await readSocket(this.conn, this.#rid, buf);
    if (!n) return null;
    const out = buf.subarray(0, n);
    if (n === buf.length && buf.length < BUFFER_MAX) {
      buf = new Uint8Array(buf.length * 2); // the chunk handed out stays valid: it views the old one
      this.#buf = buf;
    }
    return out;
  }

  async write(chunk: Uint8Array): Promise<void> {
    let off = 0;
    while (off < chunk.length) {
      off += await writeSocket(this.conn, this.#rid, off === 0 ? chunk : chunk.subarray(off));
    }
  }

  async closeWrite(): Promise<void> {
    try {
      await this.conn.closeWrite();
    } catch { /* already closed */ }
  }

  abort(): void {
    if (this.#aborted) return;
    this.#aborted = true;
    if (this.onAbort) this.onAbort();
    else {
      try {
        this.conn.close();
      } catch { /* already closed */ }
    }
  }
}

/** An HTTP/2 stream carrying a tunnel (either end of the gateway). */
export class H2TunnelStream implements ByteStream {
  constructor(readonly session: H2Session, readonly stream: H2Stream) {
    // The tunnel's own idle timeout governs; body_timeout / response_timeout no longer apply.
    stream.waitTimeoutMs = 0;
    stream.disarm();
  }

  read(): Promise<Uint8Array | null> {
    return this.stream.read();
  }

  write(chunk: Uint8Array): Promise<void> {
    return this.session.sendData(this.stream, chunk, false);
  }

  async closeWrite(): Promise<void> {
    const s = this.stream;
    try {
      if (!s.sendEnded && !s.closed) await this.session.sendData(s, EMPTY, true);
      await this.session.writer.settled();
    } catch { /* reset or connection gone */ }
  }

  abort(): void {
    const s = this.stream;
    if (!s.closed && !this.session.closed) this.session.resetStream(s, ErrorCode.CANCEL);
  }
}
