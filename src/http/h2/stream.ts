/**
 * One HTTP/2 stream: its state (RFC 9113 §5.1, reduced to the two half-close flags plus
 * "closed"), its two flow-control windows, and the receive side as an exchange Body.
 *
 * Receive backpressure: DATA is queued here and counted against our windows; the session returns
 * window (WINDOW_UPDATE) only when read() hands bytes to the consumer, so a consumer that stops
 * reading stops the peer once the stream window is used up — the queue never exceeds the window.
 *
 * A chunk returned by read() is a view into the connection's read slab (never overwritten), or a
 * copy when the DATA was small compared to its slab (so a few queued bytes cannot pin many slabs).
 */

import type { Deadline } from "../../net/deadlines.ts";
import { sweeper } from "../../net/deadlines.ts";
import { turnNow } from "../../net/clock.ts";
import type { Body, HeaderList } from "../exchange.ts";
import { TruncatedBodyError } from "../h1/body.ts";
import { errorCodeName } from "./frames.ts";

// The failures below extend TruncatedBodyError: to whoever reads a body, a stream that ends
// without END_STREAM is a truncated body, whichever codec writes it next.

/** The stream was reset (by the peer: `remote`, or by us). */
export class H2StreamReset extends TruncatedBodyError {
  constructor(readonly code: number, readonly remote: boolean, message?: string) {
    super(message ?? `stream reset ${remote ? "by the peer" : "locally"} (${errorCodeName(code)})`);
    this.name = "H2StreamReset";
  }
}

/** The connection ended (closed, GOAWAY'd or failed) before the stream completed. */
export class H2ConnectionLost extends TruncatedBodyError {
  constructor(
    message: string,
    /** The peer's GOAWAY says it never processed this stream: safe to retry elsewhere. */
    readonly unprocessed = false,
  ) {
    super(message);
    this.name = "H2ConnectionLost";
  }
}

/** A waiting read or response head exceeded its timeout. */
export class H2StreamTimeout extends TruncatedBodyError {
  constructor(readonly ms: number) {
    super(`no progress on the stream within ${ms}ms`);
    this.name = "H2StreamTimeout";
  }
}

/** What the session needs from a stream's owner; implemented by H2Session. */
export interface StreamHost {
  /** `n` bytes left the queue towards the consumer: return window. */
  consumed(s: H2Stream, n: number): void;
  /** Bytes dropped without being consumed (cancel / reset): return connection window only. */
  dropped(n: number): void;
  /** The consumer is about to wait for data (e.g. time to send 100 Continue). */
  readWait(s: H2Stream): void;
  /** A wait armed by `arm()` expired. */
  streamTimeout(s: H2Stream): void;
  /** The consumer cancelled the receive side. */
  cancelRecv(s: H2Stream): void;
}

type Resolve = (c: Uint8Array | null) => void;

/** DATA payloads up to this size are coalesced while queued, into buffers of COALESCE_BYTES. */
const COALESCE_MAX = 4096;
const COALESCE_BYTES = 16 * 1024;

const EMPTY = new Uint8Array(0);

export class H2Stream implements Body, Deadline {
  // --- receive side ---
  /** Octets the peer may still send on this stream. */
  recvWindow: number;
  /** END_STREAM (or trailers) received, or the receive side was abandoned. */
  recvEnded = false;
  /** Received DATA is dropped on arrival (its window returned at once). */
  discarding = false;
  /** Sum of DATA payload lengths received (content-length checks). */
  arrived = 0;
  /** Encoded field block bytes received (headers and trailers), for logs and byte counters. */
  headerBytes = 0;
  /** content-length of the message being received, -1 when absent. */
  expectedLength = -1;
  /** Stream-level window owed to the peer, sent in batches. */
  creditPending = 0;
  #chunks: (Uint8Array | undefined)[] = [];
  #head = 0;
  #queued = 0;
  /**
   * The buffer behind the last queued chunk while small DATA payloads are appended to it (null:
   * none). One object per tiny frame would let 4 MiB of connection window, sent as 1-byte DATA
   * frames, queue 4 million of them (hundreds of MB); coalesced, it is 256 buffers of 16 KiB.
   */
  #open: Uint8Array | null = null;
  #openLen = 0;
  #delivered = 0;
  #waiter: Resolve | null = null;
  #reject: ((e: unknown) => void) | null = null;
  #failure: Error | undefined;
  /** Why the receive side was given up before the reader had all of it (abandonRecv). */
  #abandoned: Error | undefined;
  #trailers: HeaderList | undefined;

  // --- send side ---
  /** Octets we may still send (may go negative after a SETTINGS change, §6.9.2). */
  sendWindow: number;
  sendEnded = false;
  /** performance.now() since which the sender is blocked (flow control or a full socket); -1 if not. */
  stallSince = -1;
  /** Header block and DATA bytes sent (for logs). */
  bytesSent = 0;
  #sendWaiter: (() => void) | null = null;

  // --- lifecycle ---
  /** Removed from the session (both sides ended, or reset). */
  closed = false;
  /** Error code of a reset (sent or received), -1 if none. */
  resetCode = -1;
  /** Called once if the stream fails (reset / connection loss) — the client rejects its head wait. */
  onFail: ((e: Error) => void) | null = null;

  // --- Deadline (armed only while someone waits on this stream) ---
  deadline = Infinity;
  reason = "stream";
  /** How long one wait may last (body_timeout / response_timeout); 0 disables. */
  waitTimeoutMs = 0;
  #armed = false;

  constructor(readonly id: number, readonly host: StreamHost, recvWindow: number, sendWindow: number) {
    this.recvWindow = recvWindow;
    this.sendWindow = sendWindow;
  }

  // --- Body -----------------------------------------------------------------------------------

  get length(): number | undefined {
    return this.expectedLength >= 0 ? this.expectedLength : undefined;
  }

  get received(): number {
    return this.#delivered;
  }

  /** Bytes queued and not yet read. */
  get queued(): number {
    return this.#queued;
  }

  get failure(): Error | undefined {
    return this.#failure;
  }

  read(): Promise<Uint8Array | null> {
    if (this.#head < this.#chunks.length) return Promise.resolve(this.#shift());
    if (this.#failure) return Promise.reject(this.#failure);
    if (this.#abandoned) return Promise.reject(this.#abandoned);
    if (this.recvEnded) return Promise.resolve(null);
    if (this.#waiter) return Promise.reject(new Error("concurrent read on an HTTP/2 stream"));
    return new Promise<Uint8Array | null>((resolve, reject) => {
      this.#waiter = resolve;
      this.#reject = reject;
      this.arm();
      this.host.readWait(this);
    });
  }

  /** read() without a promise: a queued chunk, null at the end, undefined when read() must wait. */
  tryRead(): Uint8Array | null | undefined {
    if (this.#head < this.#chunks.length) return this.#shift();
    if (this.#failure) throw this.#failure;
    if (this.#abandoned) throw this.#abandoned;
    if (this.recvEnded) return null;
    return undefined;
  }

  trailers(): HeaderList | undefined {
    return this.#trailers;
  }

  cancel(_reason?: unknown): void {
    if (this.recvEnded && this.#queued === 0) return;
    this.host.cancelRecv(this);
  }

  // --- fed by the session ---------------------------------------------------------------------

  /** DATA payload (after flow-control accounting). `slabSize` is the size of the buffer it views. */
  pushData(data: Uint8Array, endStream: boolean): void {
    if (this.discarding) {
      if (data.length > 0) this.host.dropped(data.length);
    } else if (data.length > 0) {
      if (this.#waiter && this.#head === this.#chunks.length) {
        const w = this.#waiter;
        this.#waiter = this.#reject = null;
        this.disarm();
        this.#delivered += data.length;
        this.host.consumed(this, data.length);
        w(data);
      } else {
        const n = data.length, open = this.#open;
        if (open !== null && this.#openLen + n <= open.length) {
          // Appended to the last queued chunk (its bytes are ours: nobody has been given them).
          open.set(data, this.#openLen);
          this.#openLen += n;
          this.#chunks[this.#chunks.length - 1] = open.subarray(0, this.#openLen);
        } else if (n <= COALESCE_MAX) {
          // Copied (a few queued bytes must not pin a whole read slab), into room for more.
          const buf = new Uint8Array(COALESCE_BYTES);
          buf.set(data);
          this.#open = buf;
          this.#openLen = n;
          this.#chunks.push(buf.subarray(0, n));
        } else {
          this.#open = null;
          this.#chunks.push(n * 8 < data.buffer.byteLength ? data.slice() : data);
        }
        this.#queued += n;
      }
    }
    if (endStream) this.#end();
  }

  /** Trailers end the receive side. */
  endWithTrailers(trailers: HeaderList | undefined): void {
    this.#trailers = trailers;
    this.#end();
  }

  #end(): void {
    this.recvEnded = true;
    if (this.#waiter && this.#head === this.#chunks.length) {
      const w = this.#waiter;
      this.#waiter = this.#reject = null;
      this.disarm();
      w(null);
    }
  }

  #shift(): Uint8Array {
    const c = this.#chunks[this.#head]!;
    this.#chunks[this.#head++] = undefined;
    if (this.#head === this.#chunks.length) {
      this.#chunks.length = 0;
      this.#head = 0;
      this.#open = null; // the consumer has it now
    }
    this.#queued -= c.length;
    this.#delivered += c.length;
    this.host.consumed(this, c.length);
    return c;
  }

  /** Drops everything queued (returning connection window); later DATA is dropped on arrival. */
  abandonRecv(reason?: Error): void {
    this.discarding = true;
    // What the reader has not had is gone: from now on a read says so, never that the body ended
    // (an upstream writer reading on would hand its backend a cut body as complete: a 413 or a
    // body timeout of ours, a response that ended first). A body the reader had whole stays so.
    if (!this.recvEnded || this.#queued > 0) {
      this.#abandoned ??= reason ?? new Error("request body abandoned");
    }
    if (this.#queued > 0) {
      this.host.dropped(this.#queued);
      this.#queued = 0;
    }
    this.#chunks.length = 0;
    this.#head = 0;
    this.#open = null;
    if (this.#waiter) {
      const r = this.#reject!;
      this.#waiter = this.#reject = null;
      this.disarm();
      r(reason ?? new Error("request body abandoned"));
    }
  }

  /** The stream failed: pending and future reads reject, senders wake up and see `closed`. */
  fail(e: Error): void {
    if (!this.#failure) this.#failure = e;
    this.abandonRecv(this.#failure);
    this.wakeSend();
    this.disarm();
    const f = this.onFail;
    this.onFail = null;
    f?.(e);
  }

  // --- send side ------------------------------------------------------------------------------

  /** Resolves when a window update, a reset or the connection's end might let the sender go on. */
  waitSend(): Promise<void> {
    return new Promise((r) => this.#sendWaiter = r);
  }

  wakeSend(): void {
    const w = this.#sendWaiter;
    if (w) {
      this.#sendWaiter = null;
      w();
    }
  }

  get sendBlocked(): boolean {
    return this.#sendWaiter !== null;
  }

  // --- timeouts -------------------------------------------------------------------------------

  arm(): void {
    if (this.waitTimeoutMs <= 0) return;
    this.deadline = turnNow() + this.waitTimeoutMs;
    if (!this.#armed) {
      this.#armed = true;
      sweeper.add(this);
    }
  }

  disarm(): void {
    if (!this.#armed) return;
    this.#armed = false;
    this.deadline = Infinity;
    sweeper.delete(this);
  }

  onExpire(): void {
    this.#armed = false;
    sweeper.delete(this);
    this.host.streamTimeout(this);
  }
}

export { EMPTY as EMPTY_BYTES };
