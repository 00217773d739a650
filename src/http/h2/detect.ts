/**
 * Which codec serves a new client connection: on TLS the ALPN result of the handshake ("h2" →
 * HTTP/2), on cleartext the first bytes (the h2c prior-knowledge preface "PRI * HTTP/2.0…" →
 * HTTP/2, anything else → HTTP/1.1). Both waits are bounded by the listener's header_timeout.
 * The bytes read while sniffing are handed to the chosen codec: to HTTP/2 as `initial`, to
 * HTTP/1.1 through PrefixedConn, which returns them from its first read().
 */

import { type Deadline, sweeper } from "../../net/deadlines.ts";
import type { ServerConnection } from "../h1/server.ts";
import { CONNECTION_PREFACE } from "./frames.ts";

export interface Detected {
  protocol: "h1" | "h2";
  /** The connection to give the codec (a PrefixedConn when bytes were read ahead for HTTP/1.1). */
  conn: Deno.Conn;
  /** Bytes already read, for the HTTP/2 codec. */
  initial?: Uint8Array;
}

/** A connection still being classified; the data plane can drain or abort it like any other. */
export class PendingConnection implements ServerConnection, Deadline {
  deadline: number;
  reason = "detect";
  #closed = false;

  constructor(readonly conn: Deno.Conn, timeoutMs: number) {
    this.deadline = performance.now() + timeoutMs;
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
    try {
      if (tls) {
        const info = await (this.conn as Deno.TlsConn).handshake();
        if (this.#closed) return null;
        return { protocol: info.alpnProtocol === "h2" ? "h2" : "h1", conn: this.conn };
      }
      const buf = new Uint8Array(4096);
      let n = 0;
      for (;;) {
        const r = await this.conn.read(buf.subarray(n));
        if (r === null || this.#closed) return null;
        n += r;
        const k = Math.min(n, CONNECTION_PREFACE.length);
        let match = true;
        for (let i = 0; i < k; i++) {
          if (buf[i] !== CONNECTION_PREFACE[i]) {
            match = false;
            break;
          }
        }
        if (!match) return { protocol: "h1", conn: asConn(new PrefixedConn(this.conn, buf.subarray(0, n))) };
        if (n >= CONNECTION_PREFACE.length) {
          return { protocol: "h2", conn: this.conn, initial: buf.subarray(0, n) };
        }
      }
    } catch {
      return null;
    } finally {
      this.done();
    }
  }
}

/** A Deno.Conn whose first read() returns bytes read ahead; everything else is the inner conn. */
export class PrefixedConn {
  #prefix: Uint8Array | null;

  constructor(readonly inner: Deno.Conn, prefix: Uint8Array) {
    this.#prefix = prefix.length > 0 ? prefix : null;
  }

  read(p: Uint8Array): Promise<number | null> {
    const pre = this.#prefix;
    if (pre === null) return this.inner.read(p);
    const n = Math.min(p.length, pre.length);
    p.set(pre.subarray(0, n));
    this.#prefix = n < pre.length ? pre.subarray(n) : null;
    return Promise.resolve(n);
  }

  write(p: Uint8Array): Promise<number> {
    return this.inner.write(p);
  }

  close(): void {
    this.inner.close();
  }

  closeWrite(): Promise<void> {
    return this.inner.closeWrite();
  }

  get localAddr(): Deno.Addr {
    return this.inner.localAddr;
  }

  get remoteAddr(): Deno.Addr {
    return this.inner.remoteAddr;
  }

  get readable(): ReadableStream<Uint8Array> {
    return this.inner.readable;
  }

  get writable(): WritableStream<Uint8Array> {
    return this.inner.writable;
  }
}

/** PrefixedConn where a Deno.Conn is expected (the codecs use read/write/close only). */
export function asConn(c: Deno.Conn | PrefixedConn): Deno.Conn {
  return c as unknown as Deno.Conn;
}
