/**
 * Which codec serves a new client connection: on TLS the ALPN result of the handshake ("h2" →
 * HTTP/2), on cleartext the first bytes (the h2c prior-knowledge preface "PRI * HTTP/2.0…" →
 * HTTP/2, anything else → HTTP/1.1). Both waits are bounded by the listener's header_timeout.
 * The bytes read while sniffing are handed to the chosen codec as `initial` (the HTTP/1.1
 * codec starts its read buffer with them, so its reads go straight to the socket).
 */

import { turnNow } from "../../net/clock.ts";
import { giveHeadBuffer, takeHeadBuffer } from "../../net/buffers.ts";
import { type Deadline, sweeper } from "../../net/deadlines.ts";
import { rawSocketRid, readSocket } from "../../net/raw_socket.ts";
import type { ServerConnection } from "../h1/server.ts";
import { CONNECTION_PREFACE } from "./frames.ts";

export interface Detected {
  protocol: "h1" | "h2";
  conn: Deno.Conn;
  /** Bytes already read, for the codec to take before reading from `conn`. */
  initial?: Uint8Array;
}

/** A connection still being classified; the data plane can drain or abort it like any other. */
export class PendingConnection implements ServerConnection, Deadline {
  deadline: number;
  reason = "detect";
  #closed = false;

  constructor(readonly conn: Deno.Conn, timeoutMs: number) {
    // The turn's clock (no op call per connection): the accept that made this connection read it.
    this.deadline = turnNow() + timeoutMs;
    sweeper.add(this);
  }

  get active(): boolean {
    return false;
  }

  get aborted(): boolean {
    return this.#closed;
  }

  drain(): void {
    this.abort();
  }

  abort(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.done();
    try {
      this.conn.close();
    } catch { /* already closed */ }
  }

  onExpire(): void {
    this.abort();
  }

  /** Stops the timer (the chosen codec arms its own). */
  done(): void {
    sweeper.delete(this);
  }

  /** Classifies the connection; null when it closed, failed or timed out first. */
  async detect(tls: boolean): Promise<Detected | null> {
    let buf: Uint8Array | undefined;
    try {
      if (tls) {
        const info = await (this.conn as Deno.TlsConn).handshake();
        if (this.#closed) return null;
        return { protocol: info.alpnProtocol === "h2" ? "h2" : "h1", conn: this.conn };
      }
      // A pooled head buffer (net/buffers.ts): the HTTP/1.1 reader goes on with it.
      buf = takeHeadBuffer();
      // The raw read (net/raw_socket.ts): no async wrapper per read, as in the codecs after us.
      const rid = rawSocketRid(this.conn);
      let n = 0;
      for (;;) {
        const r = await readSocket(this.conn, rid, n === 0 ? buf : buf.subarray(n));
        if (!r || this.#closed) {
          giveHeadBuffer(buf); // the read is over and nobody else saw the buffer
          return null;
        }
        n += r;
        const k = Math.min(n, CONNECTION_PREFACE.length);
        let match = true;
        for (let i = 0; i < k; i++) {
          if (buf[i] !== CONNECTION_PREFACE[i]) {
            match = false;
            break;
          }
        }
        if (!match) return { protocol: "h1", conn: this.conn, initial: buf.subarray(0, n) };
        if (n >= CONNECTION_PREFACE.length) {
          return { protocol: "h2", conn: this.conn, initial: buf.subarray(0, n) };
        }
      }
    } catch {
      if (buf !== undefined) giveHeadBuffer(buf); // the failed read is over
      return null;
    } finally {
      this.done();
    }
  }
}
