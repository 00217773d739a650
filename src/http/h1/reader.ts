/**
 * Buffered reads from one socket, shared by the head parser and the body decoders. The buffer
 * starts small (idle keep-alive connections should cost little memory), grows for a large
 * head up to the cap, and switches to a pooled BODY_BUFFER for bulk body reads (given back
 * between messages). Bytes in [start, end) are unread.
 *
 * No read-ahead into a second buffer while a chunk is being written: measured here it gained
 * nothing (the kernel's socket buffer already holds what the peer sent meanwhile, so the next
 * read returns at once) and cost 5-10% (two buffers' cache footprint, smaller reads).
 */

import {
  BODY_BUFFER,
  giveBodyBuffer,
  giveHeadBuffer,
  HEAD_BUFFER,
  isBodyBuffer,
  isHeadBuffer,
  takeBodyBuffer,
  takeHeadBuffer,
} from "../../net/buffers.ts";
import { rawSocketRid, readSocket } from "../../net/raw_socket.ts";

export { BODY_BUFFER };

export interface Readable {
  read(p: Uint8Array): Promise<number | null>;
}

/** A bulk read wants at least this much room; below it, live bytes move to make room. */
const MIN_BODY_ROOM = 16 * 1024;
const EMPTY = new Uint8Array(0);
const FALSE = Promise.resolve(false);

export class ConnReader {
  buf: Uint8Array;
  start = 0;
  end = 0;
  eof = false;
  /**
   * A read already started into buf[end..] (an idle pooled connection watching for the
   * backend's close). The next fill*() takes its result instead of starting another read; until
   * then nobody may move or replace `buf`.
   */
  pending: Promise<number | null> | undefined;
  /** Called before each socket read; lets the owner arm a timeout for that read. */
  beforeRead: (() => void) | undefined;
  afterRead: (() => void) | undefined;
  /** The small head buffer, kept while a body buffer is in use so shrink() need not allocate. */
  #small: Uint8Array | undefined;

  /** The socket's resource id for the raw read (net/raw_socket.ts), or -1: conn.read(). */
  readonly #rid: number;

  constructor(readonly conn: Readable, initial = HEAD_BUFFER) {
    this.buf = initial === HEAD_BUFFER ? takeHeadBuffer() : initial > 0 ? new Uint8Array(initial) : EMPTY;
    this.#rid = rawSocketRid(conn);
  }

  /** One socket read into `into` (never empty): bytes read, 0 or null at EOF. */
  #sock(into: Uint8Array): Promise<number | null> {
    return readSocket(this.conn, this.#rid, into);
  }

  /**
   * A reader whose first bytes were read from the socket by someone else (telling HTTP/1.1 from
   * h2c): it takes over the buffer they are in, from their start to the buffer's end, so they
   * are neither copied nor given a second buffer.
   */
  static holding(conn: Readable, bytes: Uint8Array): ConnReader {
    const r = new ConnReader(conn, 0);
    r.buf = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.buffer.byteLength - bytes.byteOffset);
    r.end = bytes.length;
    return r;
  }

  get available(): number {
    return this.end - this.start;
  }

  /**
   * Reads once more from the socket, making room for at least `want` bytes (compacting,
   * or growing the buffer up to `want`). Resolves false at EOF. For heads; bodies use
   * fillBody(). Not async: the read's promise is passed through (one promise less per read).
   *
   * The head loops (the server's request heads, the client's response heads) await this. An
   * earlier version awaited the read op's own promise there (one promise and one microtask
   * less). Paired runs of scripts/bench_ab.sh between the two said +4.6 % for fill() once and,
   * after the other changes of the same stop, +4.7 % for the direct await: the difference is
   * within the launch-to-launch variance of the gateway (docs/benchmarks.md), so the simpler
   * API stayed.
   */
  fill(want = HEAD_BUFFER): Promise<boolean> {
    if (this.eof) return FALSE;
    if (this.pending) return this.#takePending(this.pending);
    return this.#read(this.#headRoom(want));
  }

  /** Makes room for a head read of at least `want` bytes; the view to read into. */
  #headRoom(want: number): Uint8Array {
    if (this.start === this.end) {
      this.start = this.end = 0;
    }
    if (this.buf.length - this.end < want) {
      const live = this.end - this.start;
      if (this.buf.length - live >= want && this.start > 0) {
        this.buf.copyWithin(0, this.start, this.end);
      } else {
        this.#replace(new Uint8Array(Math.max(live + want, this.buf.length)));
      }
      this.start = 0;
      this.end = live;
    }
    return this.end === 0 ? this.buf : this.buf.subarray(this.end);
  }

  /**
   * A bulk read for a body: into a pooled BODY_BUFFER with at least MIN_BODY_ROOM free (live
   * bytes, at most a partial chunk line, are moved first). Resolves false at EOF.
   */
  fillBody(): Promise<boolean> {
    if (this.eof) return FALSE;
    if (this.pending) return this.#takePending(this.pending);
    const live = this.end - this.start;
    if (live === 0) this.start = this.end = 0;
    if (this.buf.length - this.end < MIN_BODY_ROOM || !isBodyBuffer(this.buf)) {
      if (isBodyBuffer(this.buf) && this.buf.length - live >= MIN_BODY_ROOM) {
        // Chunks handed out earlier are done with (the Body contract), so moving is safe.
        this.buf.copyWithin(0, this.start, this.end);
      } else {
        // Only a head-sized leftover can exceed a body buffer's room; grow like fill() then.
        this.#replace(
          live <= BODY_BUFFER - MIN_BODY_ROOM ? takeBodyBuffer() : new Uint8Array(live + BODY_BUFFER),
        );
      }
      this.start = 0;
      this.end = live;
    }
    return this.#read(this.buf.subarray(this.end));
  }

  /**
   * The socket read with its hooks and bookkeeping as two callbacks made once per reader
   * (#settled, #failed) rather than an async function per read: a request makes two reads, and
   * each async layer costs a promise, a generator and a resumption.
   */
  #read(into: Uint8Array): Promise<boolean> {
    this.beforeRead?.();
    let p: Promise<number | null>;
    try {
      p = this.#sock(into);
    } catch (e) {
      this.afterRead?.();
      return Promise.reject(e);
    }
    return p.then(this.#settled, this.#failed);
  }

  #takePending(p: Promise<number | null>): Promise<boolean> {
    this.pending = undefined;
    this.beforeRead?.();
    return p.then(this.#settled, this.#failed);
  }

  readonly #settled = (n: number | null): boolean => {
    this.afterRead?.();
    if (n === null || n === 0) {
      this.eof = true;
      return false;
    }
    this.end += n;
    return true;
  };

  readonly #failed = (e: unknown): never => {
    this.afterRead?.();
    throw e;
  };

  /**
   * Starts the next read now, while nobody needs its bytes yet (see `pending`). Returns the
   * promise so the owner can react if it settles first (the peer closed or sent unasked data).
   */
  readAhead(): Promise<number | null> {
    if (this.start === this.end) this.start = this.end = 0;
    if (this.buf.length - this.end < HEAD_BUFFER) {
      const live = this.end - this.start;
      this.#replace(new Uint8Array(Math.max(HEAD_BUFFER, live + HEAD_BUFFER)));
      this.start = 0;
      this.end = live;
    }
    return this.pending = this.#sock(this.end === 0 ? this.buf : this.buf.subarray(this.end));
  }

  /** Takes up to n buffered bytes as a view valid until the next fill*(). */
  take(n: number): Uint8Array {
    const k = Math.min(n, this.end - this.start);
    const out = this.buf.subarray(this.start, this.start + k);
    this.start += k;
    return out;
  }

  /**
   * Returns to a small buffer once nothing is buffered, so idle connections stay cheap. A body
   * buffer goes back to the pool: the owner calls this between messages, once the body ended,
   * when (the Body contract) no chunk taken from it is in use any more.
   */
  shrink(): void {
    if (this.start === this.end && this.buf.length > HEAD_BUFFER && !this.pending) {
      giveBodyBuffer(this.buf);
      this.buf = this.#small ?? takeHeadBuffer();
      this.#small = undefined;
      this.start = this.end = 0;
    }
  }

  /**
   * The connection is over: its buffers go back to their pools and the reader is left empty.
   * Only for an owner that knows no read into them is in flight (it awaited its last read) and
   * that no view of them is held elsewhere (a body chunk, a tunnel's first bytes); a read
   * started here (`pending`) keeps everything where it is.
   */
  release(): void {
    if (this.pending) return;
    const buf = this.buf, small = this.#small;
    this.buf = EMPTY;
    this.#small = undefined;
    this.start = this.end = 0;
    this.eof = true;
    if (isBodyBuffer(buf)) giveBodyBuffer(buf);
    else if (isHeadBuffer(buf)) giveHeadBuffer(buf);
    if (small !== undefined) giveHeadBuffer(small);
  }

  /**
   * Makes `next` the buffer, with the live bytes copied to its start (the caller sets start
   * and end). The old one goes back to the pool if it is a body buffer (its chunks were
   * consumed: fill*() is only called for more bytes), or is kept if it is the head buffer.
   */
  #replace(next: Uint8Array): void {
    const old = this.buf;
    next.set(old.subarray(this.start, this.end));
    this.buf = next;
    if (isBodyBuffer(old)) giveBodyBuffer(old);
    else if (old.length === HEAD_BUFFER && this.#small === undefined) this.#small = old;
  }
}
