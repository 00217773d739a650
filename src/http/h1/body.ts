/**
 * HTTP/1.1 body decoders over a ConnReader: Content-Length, chunked (with trailers) and
 * read-until-close. Each implements the exchange's Body: pull-based, zero-copy (a chunk is a
 * view into the connection buffer, valid until the next read()).
 *
 * Decoding is a synchronous step over the buffered bytes (`step()`); only when it needs more
 * does read() wait for the socket. tryRead() exposes the synchronous step, so a writer can
 * coalesce what is already buffered (a small response's head and body, chunk framing) into
 * one write without a promise per piece.
 *
 * `onEnd(clean)` tells the connection owner whether the framing ended exactly where it should,
 * i.e. whether the connection may carry another message.
 */

import type { Body, HeaderList } from "../exchange.ts";
import { H1ParseError, parseFields } from "./parse.ts";
import type { ConnReader } from "./reader.ts";

/** The body ended before its framing said it would (peer closed or reset). */
export class TruncatedBodyError extends Error {
  constructor(message = "body truncated: connection closed early") {
    super(message);
    this.name = "TruncatedBodyError";
  }
}

/** A request body passed max_body_size while streaming. */
export class BodyTooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`body larger than ${limit} bytes`);
    this.name = "BodyTooLargeError";
  }
}

const CR = 0x0d;
const LF = 0x0a;
const MAX_CHUNK_LINE = 4096;
/** step(): the buffered bytes are not enough; read more. */
const NEED = undefined;

abstract class DecodedBody implements Body {
  protected finished = false;
  protected failed = false;
  /** bytes delivered so far */
  received = 0;
  constructor(
    protected readonly reader: ConnReader,
    protected readonly limit: number,
    protected readonly onEnd: (clean: boolean) => void,
    protected readonly errorStatus: 400 | 502,
  ) {}

  abstract readonly length: number | undefined;
  /** Decodes from the buffered bytes: a chunk, null at the end, NEED for more bytes. Throws on bad framing. */
  protected abstract step(): Uint8Array | null | undefined;
  /** The socket reached EOF with nothing left to decode: the end (close-delimited) or truncation. */
  protected onEof(): null {
    throw new TruncatedBodyError();
  }

  /** The next chunk if it needs no socket read (null at the end), else undefined. */
  tryRead(): Uint8Array | null | undefined {
    if (this.finished) return null;
    if (this.failed) throw new TruncatedBodyError("body already failed");
    let chunk: Uint8Array | null | undefined;
    try {
      chunk = this.step();
    } catch (e) {
      this.fail();
      throw e;
    }
    return chunk === NEED ? NEED : this.#deliver(chunk);
  }

  async read(): Promise<Uint8Array | null> {
    const ready = this.tryRead();
    if (ready !== NEED) return ready;
    let chunk: Uint8Array | null | undefined;
    try {
      do {
        const filled = await this.reader.fillBody();
        // Cancelled while the read was pending (the exchange ended): nothing more is delivered.
        if (this.failed) throw new TruncatedBodyError("body cancelled");
        chunk = filled ? this.step() : this.onEof();
      } while (chunk === NEED);
    } catch (e) {
      this.fail();
      throw e instanceof H1ParseError || e instanceof BodyTooLargeError || e instanceof TruncatedBodyError
        ? e
        : new TruncatedBodyError(describe(e));
    }
    return this.#deliver(chunk);
  }

  #deliver(chunk: Uint8Array | null): Uint8Array | null {
    if (chunk === null) {
      this.finished = true;
      this.onEnd(true);
      return null;
    }
    this.received += chunk.length;
    if (this.received > this.limit) {
      this.fail();
      throw new BodyTooLargeError(this.limit);
    }
    return chunk;
  }

  trailers(): HeaderList | undefined {
    return undefined;
  }

  get done(): boolean {
    return this.finished || this.failed;
  }

  /** Read to its end: the message boundary is known (a cancelled or failed body is not). */
  get complete(): boolean {
    return this.finished;
  }

  cancel(): void {
    if (!this.finished && !this.failed) this.fail();
  }

  protected fail(): void {
    if (this.failed) return;
    this.failed = true;
    this.onEnd(false);
  }
}

function describe(e: unknown): string {
  return e instanceof Error ? `body read failed: ${e.message}` : "body read failed";
}

export class LengthBody extends DecodedBody {
  #remaining: number;
  constructor(
    reader: ConnReader,
    readonly length: number,
    limit: number,
    onEnd: (clean: boolean) => void,
    status: 400 | 502,
  ) {
    super(reader, limit, onEnd, status);
    this.#remaining = length;
  }

  get remaining(): number {
    return this.#remaining;
  }

  protected step(): Uint8Array | null | undefined {
    if (this.#remaining === 0) return null;
    if (this.reader.available === 0) return NEED;
    const chunk = this.reader.take(this.#remaining);
    this.#remaining -= chunk.length;
    return chunk;
  }
}

/** Reads until the peer closes (responses without framing; never requests). */
export class CloseBody extends DecodedBody {
  readonly length = undefined;
  protected step(): Uint8Array | null | undefined {
    if (this.reader.available > 0) return this.reader.take(this.reader.available);
    return this.reader.eof ? null : NEED;
  }
  protected override onEof(): null {
    return null;
  }
}

const enum ChunkState {
  Size,
  Data,
  DataEnd,
  Trailers,
  Done,
}

/**
 * RFC 9112 §7.1 chunked decoding. Strict: hex digits only (no sign, no "0x", a value
 * below 2^52), chunk extensions limited to visible characters, CRLF everywhere (bare LF is
 * an error), trailer fields parsed with the same rules as header fields.
 */
export class ChunkedBody extends DecodedBody {
  readonly length = undefined;
  #state = ChunkState.Size;
  #remaining = 0;
  #trailers: HeaderList | undefined;
  /** Bytes past reader.start already scanned for the current line (each byte examined once). */
  #scanned = 0;
  /** The trailer section has fields: waiting for the blank line that ends it. */
  #inTrailerFields = false;

  constructor(
    reader: ConnReader,
    limit: number,
    onEnd: (clean: boolean) => void,
    status: 400 | 502,
    private readonly maxTrailer = 32 * 1024,
  ) {
    super(reader, limit, onEnd, status);
  }

  override trailers(): HeaderList | undefined {
    return this.#trailers;
  }

  protected step(): Uint8Array | null | undefined {
    const r = this.reader;
    for (;;) {
      switch (this.#state) {
        case ChunkState.Size: {
          const lineEnd = this.#line(MAX_CHUNK_LINE);
          if (lineEnd < 0) return NEED;
          this.#remaining = this.#parseSizeLine(r.buf, r.start, lineEnd);
          r.start = lineEnd + 2;
          this.#state = this.#remaining === 0 ? ChunkState.Trailers : ChunkState.Data;
          break;
        }
        case ChunkState.Data: {
          if (r.available === 0) return NEED;
          const chunk = r.take(this.#remaining);
          this.#remaining -= chunk.length;
          if (this.#remaining === 0) this.#state = ChunkState.DataEnd;
          return chunk;
        }
        case ChunkState.DataEnd: {
          if (r.available < 2) return NEED;
          if (r.buf[r.start] !== CR || r.buf[r.start + 1] !== LF) {
            this.#error("missing CRLF after chunk data");
          }
          r.start += 2;
          this.#state = ChunkState.Size;
          break;
        }
        case ChunkState.Trailers: {
          // Either the blank line at once (no trailers) or a trailer section: find the blank
          // line ending it, then parse all fields at once.
          if (!this.#inTrailerFields) {
            const lineEnd = this.#line(this.maxTrailer);
            if (lineEnd < 0) return NEED;
            if (lineEnd === r.start) {
              r.start += 2;
              this.#state = ChunkState.Done;
              return null;
            }
            this.#inTrailerFields = true;
          }
          const end = this.#blankLine();
          if (end < 0) return NEED;
          this.#trailers = parseFields(r.buf, r.start, end, this.errorStatus);
          r.start = end;
          this.#state = ChunkState.Done;
          return null;
        }
        case ChunkState.Done:
          return null;
      }
    }
  }

  /** The offset of the CR ending the buffered line at reader.start, or -1 if incomplete. */
  #line(max: number): number {
    const r = this.reader;
    const buf = r.buf;
    for (let i = r.start + this.#scanned; i < r.end; i++) {
      const b = buf[i];
      if (b === LF) this.#error("bare LF in chunked framing");
      if (b === CR) {
        if (i + 1 >= r.end) break;
        if (buf[i + 1] !== LF) this.#error("bare CR in chunked framing");
        this.#scanned = 0;
        return i;
      }
    }
    if (r.end - r.start > max) this.#error("chunk line too long");
    // Rescan a trailing CR with its successor next time.
    this.#scanned = Math.max(0, r.end - r.start - 1);
    return -1;
  }

  /** The offset just past the CRLF CRLF ending a trailer section, or -1 if incomplete. */
  #blankLine(): number {
    const r = this.reader;
    const buf = r.buf;
    for (let i = r.start + 3; i < r.end; i++) {
      if (buf[i] === LF && buf[i - 1] === CR && buf[i - 2] === LF && buf[i - 3] === CR) {
        return i + 1;
      }
    }
    if (r.end - r.start > this.maxTrailer) this.#error("trailer section too large");
    return -1;
  }

  #parseSizeLine(buf: Uint8Array, s: number, e: number): number {
    let n = 0;
    let i = s;
    for (; i < e; i++) {
      const c = buf[i];
      const d = c >= 0x30 && c <= 0x39
        ? c - 0x30
        : c >= 0x61 && c <= 0x66
        ? c - 0x57
        : c >= 0x41 && c <= 0x46
        ? c - 0x37
        : -1;
      if (d < 0) break;
      // Below 2^52 whatever the leading zeros: exact in a double, and far past any real cap.
      if (n >= 0x1000000000000) this.#error("chunk size too large");
      n = n * 16 + d;
    }
    if (i === s) this.#error("invalid chunk size");
    // Optional BWS and chunk extensions: ';' then visible characters, SP or HTAB only.
    for (; i < e; i++) {
      const c = buf[i];
      if (c === 0x20 || c === 0x09) continue;
      if (c !== 0x3b) this.#error("invalid chunk size");
      for (i++; i < e; i++) {
        const x = buf[i];
        if (x < 0x20 && x !== 0x09 || x === 0x7f) this.#error("invalid chunk extension");
      }
    }
    return n;
  }

  #error(msg: string): never {
    throw new H1ParseError(this.errorStatus, msg);
  }
}
