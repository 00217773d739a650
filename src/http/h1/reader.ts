/**
 * Buffered reads from one socket, shared by the head parser and the body decoders. The buffer
 * starts small (idle keep-alive connections should cost little memory), grows for a large
 * head up to the cap, and grows to BODY_BUFFER for bulk body reads. Bytes in
 * [start, end) are unread.
 */

export interface Readable {
  read(p: Uint8Array): Promise<number | null>;
}

const HEAD_BUFFER = 4096;
export const BODY_BUFFER = 64 * 1024;
const EMPTY = new Uint8Array(0);

export class ConnReader {
  buf: Uint8Array;
  start = 0;
  end = 0;
  eof = false;
  /**
   * A read already started into buf[end..] (an idle pooled connection watching for the
   * backend's close). The next fill() takes its result instead of starting another read; until
   * then nobody may move or replace `buf`.
   */
  pending: Promise<number | null> | undefined;
  /** Called before each socket read; lets the owner arm a timeout for that read. */
  beforeRead: (() => void) | undefined;
  afterRead: (() => void) | undefined;

  constructor(readonly conn: Readable, initial = HEAD_BUFFER) {
    this.buf = initial > 0 ? new Uint8Array(initial) : EMPTY;
  }

  get available(): number {
    return this.end - this.start;
  }

  /**
   * Reads once more from the socket, making room for at least `want` bytes (compacting,
   * or growing the buffer up to `want`). Returns false at EOF.
   */
  async fill(want = HEAD_BUFFER): Promise<boolean> {
    if (this.eof) return false;
    if (this.pending) return await this.#takePending(this.pending);
    if (this.start === this.end) {
      this.start = this.end = 0;
    }
    if (this.buf.length - this.end < want) {
      const live = this.end - this.start;
      if (this.buf.length - live >= want && this.start > 0) {
        this.buf.copyWithin(0, this.start, this.end);
      } else {
        const next = new Uint8Array(Math.max(live + want, this.buf.length));
        next.set(this.buf.subarray(this.start, this.end));
        this.buf = next;
      }
      this.start = 0;
      this.end = live;
    }
    this.beforeRead?.();
    let n: number | null;
    try {
      n = await this.conn.read(this.buf.subarray(this.end));
    } finally {
      this.afterRead?.();
    }
    if (n === null) {
      this.eof = true;
      return false;
    }
    this.end += n;
    return true;
  }

  async #takePending(p: Promise<number | null>): Promise<boolean> {
    this.pending = undefined;
    this.beforeRead?.();
    let n: number | null;
    try {
      n = await p;
    } finally {
      this.afterRead?.();
    }
    if (n === null) {
      this.eof = true;
      return false;
    }
    this.end += n;
    return true;
  }

  /**
   * Starts the next read now, while nobody needs its bytes yet (see `pending`). Returns the
   * promise so the owner can react if it settles first (the peer closed or sent unasked data).
   */
  readAhead(): Promise<number | null> {
    if (this.start === this.end) this.start = this.end = 0;
    if (this.buf.length - this.end < HEAD_BUFFER) {
      const next = new Uint8Array(Math.max(HEAD_BUFFER, this.end - this.start + HEAD_BUFFER));
      next.set(this.buf.subarray(this.start, this.end));
      this.end -= this.start;
      this.start = 0;
      this.buf = next;
    }
    return this.pending = this.conn.read(this.buf.subarray(this.end));
  }

  /** Takes up to n buffered bytes as a view valid until the next fill(). */
  take(n: number): Uint8Array {
    const k = Math.min(n, this.end - this.start);
    const out = this.buf.subarray(this.start, this.start + k);
    this.start += k;
    return out;
  }

  /** Returns to a small buffer once nothing is buffered, so idle connections stay cheap. */
  shrink(): void {
    if (this.start === this.end && this.buf.length > HEAD_BUFFER && !this.pending) {
      this.buf = new Uint8Array(HEAD_BUFFER);
      this.start = this.end = 0;
    }
  }
}
