/**
 * The one serialized writer of an HTTP/2 connection. Every stream and the control logic append
 * frames into a buffer (no per-frame allocation: headers are written in place, payloads copied
 * once); a single flush loop writes the buffer with one socket write, double-buffered so frames
 * keep accumulating while a write is in flight. Appends are synchronous, so a HEADERS +
 * CONTINUATION sequence can never be interleaved with another stream's frames (§6.10).
 *
 * Backpressure: data producers call `writable()` and wait while `pending` is at or above the high
 * water mark; the flush loop wakes them as the socket drains. A peer that stops reading therefore
 * stalls the producers (and through them the upstream reads), never memory.
 */

import { sweeper } from "../../net/deadlines.ts";
import { rawSocketRid, writeSocket } from "../../net/raw_socket.ts";
import { RESOLVED } from "../../net/resolved.ts";
import { FrameType, writeFrameHeader } from "./frames.ts";

export interface FrameSink {
  write(p: Uint8Array): Promise<number>;
}

const INITIAL_BUFFER = 16 * 1024;
/** Payloads up to this many octets are copied byte by byte: cheaper than a view and set(). */
const SMALL_COPY = 64;

/**
 * Copies src[start, end) into dst at `at`. A small run (a typical response's header block, a
 * WINDOW_UPDATE-sized payload) byte by byte: set(subarray()) costs a view object and a call.
 */
function copyInto(dst: Uint8Array, at: number, src: Uint8Array, start: number, end: number): void {
  const n = end - start;
  if (n <= SMALL_COPY) { for (let i = 0; i < n; i++) dst[at + i] = src[start + i]; }
  else dst.set(start === 0 && end === src.length ? src : src.subarray(start, end), at);
}
const FLAG_END_STREAM = 0x1;
/** Grown buffers up to this size are kept for reuse; bigger ones are dropped after a write. */
const KEEP_BUFFER = 512 * 1024;

export class FrameWriter {
  #buf: Uint8Array = new Uint8Array(INITIAL_BUFFER);
  #len = 0;
  #spare: Uint8Array | null = null;
  #takeSpare(): Uint8Array {
    const s = this.#spare;
    this.#spare = null;
    return s ?? new Uint8Array(INITIAL_BUFFER);
  }
  #keep(buf: Uint8Array): void {
    const s = this.#spare;
    if (buf.length <= KEEP_BUFFER && (s === null || buf.length > s.length)) this.#spare = buf;
  }
  #inflight = 0;
  /** Offset in #buf of the last DATA frame appended since the buffer was handed over, else -1. */
  #lastData = -1;
  #lastDataStream = 0;
  #writing = false;
  #scheduled = false;
  #closed = false;
  #waiters: Array<() => void> = [];
  #idle: Array<() => void> = [];
  /** Total bytes handed to the socket. */
  written = 0;

  /** The socket's resource id for the raw write (net/raw_socket.ts), or -1: sink.write(). */
  readonly #rid: number;

  constructor(
    private readonly sink: FrameSink,
    readonly highWater: number,
    private readonly onError: (e: unknown) => void,
  ) {
    this.#rid = rawSocketRid(sink);
  }

  /** Bytes queued or being written. */
  get pending(): number {
    return this.#len + this.#inflight;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Resolves once `pending` is below the high water mark (or the writer closed). */
  writable(): Promise<void> {
    if (this.#closed || this.pending < this.highWater) return RESOLVED;
    return new Promise((r) => this.#waiters.push(r));
  }

  /** Resolves once everything queued so far has been written (or the writer closed). */
  settled(): Promise<void> {
    if (this.#closed || (this.#len === 0 && !this.#writing && !this.#scheduled)) return RESOLVED;
    return new Promise((r) => this.#idle.push(r));
  }

  /** Bytes of buffer memory held (the buffer being filled and the spare). */
  get capacity(): number {
    return this.#buf.length + (this.#spare?.length ?? 0);
  }

  /** Returns grown buffers once nothing is queued (an idle connection keeps 16 KiB). */
  trim(): void {
    this.#spare = null;
    if (this.#len === 0 && !this.#writing && this.#buf.length > INITIAL_BUFFER) {
      this.#buf = new Uint8Array(INITIAL_BUFFER);
    }
  }

  /** Stops writing; wakes every waiter. Queued bytes are dropped. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#len = 0;
    this.#lastData = -1;
    this.#wake();
    for (const r of this.#idle.splice(0)) r();
  }

  // --- frame appenders ------------------------------------------------------------------------

  /** Pre-encoded bytes (preface, SETTINGS). */
  raw(bytes: Uint8Array): void {
    const o = this.#reserve(bytes.length);
    this.#buf.set(bytes, o);
    this.#schedule();
  }

  /** A frame whose payload is `payload[off, off + n)`. */
  frame(type: number, flags: number, streamId: number, payload?: Uint8Array, off = 0, n = 0): void {
    const o = this.#reserve(9 + n);
    const b = this.#buf;
    writeFrameHeader(b, o, n, type, flags, streamId);
    if (n > 0) copyInto(b, o + 9, payload!, off, off + n);
    if (type === FrameType.DATA) {
      this.#lastData = o;
      this.#lastDataStream = streamId;
    } else if (streamId === this.#lastDataStream) this.#lastData = -1;
    this.#schedule();
  }

  /**
   * Sets END_STREAM on the last DATA frame appended, if it belongs to `streamId` and has not been
   * handed to the socket yet (it is in the buffer still filling) and no other frame of that stream
   * followed it. True when done: the stream needs no empty DATA frame.
   */
  endStreamOnLastData(streamId: number): boolean {
    if (this.#lastData < 0 || this.#lastDataStream !== streamId || this.#closed) return false;
    this.#buf[this.#lastData + 4] |= FLAG_END_STREAM;
    this.#lastData = -1;
    return true;
  }

  /** RST_STREAM or WINDOW_UPDATE: one 32-bit value. */
  u32(type: number, streamId: number, value: number): void {
    const o = this.#reserve(13);
    const b = this.#buf;
    writeFrameHeader(b, o, 4, type, 0, streamId);
    b[o + 9] = value >>> 24;
    b[o + 10] = value >>> 16;
    b[o + 11] = value >>> 8;
    b[o + 12] = value;
    if (streamId === this.#lastDataStream) this.#lastData = -1;
    this.#schedule();
  }

  /**
   * A field block (`block`'s first `length` octets) as HEADERS + CONTINUATION frames of at most
   * `maxFrame` octets, appended at once.
   */
  headers(
    streamId: number,
    block: Uint8Array,
    endStream: boolean,
    maxFrame: number,
    length = block.length,
  ): void {
    const frames = Math.max(1, Math.ceil(length / maxFrame));
    let o = this.#reserve(length + frames * 9);
    const b = this.#buf;
    for (let i = 0; i < frames; i++) {
      const start = i * maxFrame;
      const end = Math.min(length, start + maxFrame);
      let flags = i === frames - 1 ? 0x4 : 0; // END_HEADERS on the last
      if (i === 0 && endStream) flags |= 0x1; // END_STREAM on the HEADERS frame
      writeFrameHeader(
        b,
        o,
        end - start,
        i === 0 ? FrameType.HEADERS : FrameType.CONTINUATION,
        flags,
        streamId,
      );
      copyInto(b, o + 9, block, start, end);
      o += 9 + end - start;
    }
    if (streamId === this.#lastDataStream) this.#lastData = -1;
    this.#schedule();
  }

  /** GOAWAY with an optional short debug text (ASCII). */
  goaway(lastStreamId: number, code: number, debug = ""): void {
    const n = 8 + debug.length;
    const o = this.#reserve(9 + n);
    const b = this.#buf;
    writeFrameHeader(b, o, n, FrameType.GOAWAY, 0, 0);
    writeU32(b, o + 9, lastStreamId);
    writeU32(b, o + 13, code);
    for (let i = 0; i < debug.length; i++) b[o + 17 + i] = debug.charCodeAt(i) & 0x7f;
    this.#schedule();
  }

  // --- internals ------------------------------------------------------------------------------

  #reserve(n: number): number {
    const need = this.#len + n;
    if (need > this.#buf.length) {
      let size = this.#buf.length * 2;
      while (size < need) size *= 2;
      const next = new Uint8Array(size);
      next.set(this.#buf.subarray(0, this.#len));
      this.#buf = next;
    }
    const o = this.#len;
    this.#len = need;
    return o;
  }

  #schedule(): void {
    if (this.#writing || this.#scheduled || this.#closed) return;
    this.#scheduled = true;
    queueMicrotask(() => this.#flush());
  }

  async #flush(): Promise<void> {
    if (this.#writing) return;
    this.#writing = true;
    try {
      // Let the promise chains that are already runnable (a response body's next chunk, other
      // streams finishing the same tick) append first, so they share this write.
      await RESOLVED;
      await RESOLVED;
      await RESOLVED;
      this.#scheduled = false;
      while (this.#len > 0 && !this.#closed) {
        const buf = this.#buf;
        const n = this.#len;
        this.#buf = this.#takeSpare();
        this.#len = 0;
        this.#lastData = -1;
        this.#inflight = n;
        let off = 0;
        while (off < n) {
          off += await writeSocket(
            this.sink,
            this.#rid,
            off === 0 && n === buf.length ? buf : buf.subarray(off, n),
          );
        }
        this.written += n;
        this.#inflight = 0;
        this.#keep(buf);
        if (this.#len < this.highWater) this.#wake();
      }
    } catch (e) {
      this.#closed = true;
      this.#len = 0;
      this.#inflight = 0;
      this.#wake();
      this.onError(e);
    } finally {
      this.#scheduled = false;
      this.#writing = false;
      this.#inflight = 0;
      if (this.#len > 0 && !this.#closed) this.#schedule();
      else for (const r of this.#idle.splice(0)) r();
    }
  }

  #wake(): void {
    if (this.#waiters.length === 0) return;
    const ws = this.#waiters;
    this.#waiters = [];
    for (const r of ws) r();
  }
}

function writeU32(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24;
  b[o + 1] = v >>> 16;
  b[o + 2] = v >>> 8;
  b[o + 3] = v;
}

/** What trimWhenIdle() needs of a connection. */
export interface TrimOwner {
  readonly writer: FrameWriter;
  /** The connection has open streams again. */
  readonly active: boolean;
  readonly closed: boolean;
  /** In idleTrim now (a field the connection declares, so its shape never changes). */
  trimQueued: boolean;
}

/**
 * Connections whose last stream ended: at the next sweep (DeadlineSweeper, ≤ 250 ms), those
 * still without a stream give back their grown write buffers (an idle connection keeps 16 KiB).
 * Deferred rather than done at once because a busy connection runs out of streams between every
 * two bursts of requests, and trimming there only makes the next write allocate a buffer again.
 * An array replaced at each sweep, not a process-wide Set: a cleared Set's old hash tables keep
 * every connection they held reachable for scavenges until the next full GC (net/member_list.ts).
 */
let idleTrim: TrimOwner[] = [];
const idleTrimSweep = {
  deadline: Infinity,
  reason: "h2_idle_trim",
  armed: false,
  onExpire(): void {
    const due = idleTrim;
    idleTrim = [];
    for (const c of due) {
      c.trimQueued = false;
      if (!c.active && !c.closed) c.writer.trim();
    }
    this.armed = false;
    sweeper.delete(this);
  },
};

/** Trims `c`'s writer at the next sweep if `c` is idle then (see idleTrim). */
export function trimWhenIdle(c: TrimOwner): void {
  if (!c.trimQueued) {
    c.trimQueued = true;
    idleTrim.push(c);
  }
  if (!idleTrimSweep.armed) {
    idleTrimSweep.armed = true;
    idleTrimSweep.deadline = 0; // the next sweep
    sweeper.add(idleTrimSweep);
  }
}
