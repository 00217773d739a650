/**
 * HTTP/3 framing (RFC 9114 §7) and QUIC variable-length integers (RFC 9000 §16): constants,
 * encoders, payload parsers, and a buffered frame reader over one QUIC receive stream.
 *
 * Pure except for FrameReader, which pulls from a QuicRecvStream only when asked (backpressure
 * stays with the caller). Errors are H3Error with the RFC 9114 §8.1 code to close with.
 */

import type { QuicRecvStream } from "../../quic/engine.ts";

/** RFC 9114 §8.1 and RFC 9204 §6 error codes. */
export const H3 = {
  NO_ERROR: 0x100,
  GENERAL_PROTOCOL_ERROR: 0x101,
  INTERNAL_ERROR: 0x102,
  STREAM_CREATION_ERROR: 0x103,
  CLOSED_CRITICAL_STREAM: 0x104,
  FRAME_UNEXPECTED: 0x105,
  FRAME_ERROR: 0x106,
  EXCESSIVE_LOAD: 0x107,
  ID_ERROR: 0x108,
  SETTINGS_ERROR: 0x109,
  MISSING_SETTINGS: 0x10a,
  REQUEST_REJECTED: 0x10b,
  REQUEST_CANCELLED: 0x10c,
  REQUEST_INCOMPLETE: 0x10d,
  MESSAGE_ERROR: 0x10e,
  CONNECT_ERROR: 0x10f,
  VERSION_FALLBACK: 0x110,
  QPACK_DECOMPRESSION_FAILED: 0x200,
  QPACK_ENCODER_STREAM_ERROR: 0x201,
  QPACK_DECODER_STREAM_ERROR: 0x202,
} as const;

const CODE_NAMES = new Map<number, string>(Object.entries(H3).map(([k, v]) => [v, `H3_${k}`]));

export function errorName(code: number): string {
  return CODE_NAMES.get(code) ?? `0x${code.toString(16)}`;
}

/** A protocol violation, with the code to close the connection (or reset the stream) with. */
export class H3Error extends Error {
  constructor(readonly code: number, message: string) {
    super(`${errorName(code)}: ${message}`);
    this.name = "H3Error";
  }
}

/** Frame types (RFC 9114 §7.2). */
export const FrameType = {
  DATA: 0x00,
  HEADERS: 0x01,
  CANCEL_PUSH: 0x03,
  SETTINGS: 0x04,
  PUSH_PROMISE: 0x05,
  GOAWAY: 0x07,
  MAX_PUSH_ID: 0x0d,
} as const;

/** HTTP/2 frame types with no HTTP/3 meaning: receiving one is H3_FRAME_UNEXPECTED (§7.2.8). */
export function isReservedH2FrameType(t: number): boolean {
  return t === 0x02 || t === 0x06 || t === 0x08 || t === 0x09;
}

/**
 * Frame types that may never appear on a request stream (§7.2), sent by the `from` side: each is
 * a connection error. A client never sends PUSH_PROMISE (H3_FRAME_UNEXPECTED); a server may only
 * after the client's MAX_PUSH_ID, which the gateway never sends, so from a backend it is
 * H3_ID_ERROR (§7.2.5).
 */
export function checkRequestStreamFrame(type: number, from: "client" | "server" = "client"): void {
  switch (type) {
    case FrameType.SETTINGS:
    case FrameType.GOAWAY:
    case FrameType.MAX_PUSH_ID:
    case FrameType.CANCEL_PUSH:
      throw new H3Error(H3.FRAME_UNEXPECTED, `control frame 0x${type.toString(16)} on a request stream`);
    case FrameType.PUSH_PROMISE:
      throw from === "client"
        ? new H3Error(H3.FRAME_UNEXPECTED, "PUSH_PROMISE from a client")
        : new H3Error(H3.ID_ERROR, "PUSH_PROMISE without MAX_PUSH_ID");
  }
  if (isReservedH2FrameType(type)) {
    throw new H3Error(H3.FRAME_UNEXPECTED, `HTTP/2 frame type 0x${type.toString(16)}`);
  }
}

/** Unidirectional stream types (§6.2, RFC 9204 §4.2). */
export const StreamType = { CONTROL: 0x00, PUSH: 0x01, QPACK_ENCODER: 0x02, QPACK_DECODER: 0x03 } as const;

/** SETTINGS identifiers (§7.2.4.1, RFC 9204 §5, RFC 9220). */
export const Setting = {
  QPACK_MAX_TABLE_CAPACITY: 0x01,
  MAX_FIELD_SECTION_SIZE: 0x06,
  QPACK_BLOCKED_STREAMS: 0x07,
  ENABLE_CONNECT_PROTOCOL: 0x08,
  H3_DATAGRAM: 0x33,
} as const;

/** HTTP/2 settings identifiers that are an error in HTTP/3 (§7.2.4.1). */
function isReservedH2Setting(id: number): boolean {
  return id === 0x02 || id === 0x03 || id === 0x04 || id === 0x05;
}

// --- varints (RFC 9000 §16) -------------------------------------------------------------------

/** Largest varint (2^62 - 1); values above 2^53 lose precision as numbers, which only matters
 * for identifiers we ignore (GREASE types) — lengths that big are refused. */
export const MAX_VARINT = 2 ** 62 - 1;

export function varintLength(v: number): number {
  if (v < 0x40) return 1;
  if (v < 0x4000) return 2;
  if (v < 0x40000000) return 4;
  return 8;
}

/** Writes `v` at `pos`; returns the position after it. */
export function writeVarint(out: Uint8Array, pos: number, v: number): number {
  if (v < 0x40) {
    out[pos] = v;
    return pos + 1;
  }
  if (v < 0x4000) {
    out[pos] = 0x40 | (v >>> 8);
    out[pos + 1] = v & 0xff;
    return pos + 2;
  }
  if (v < 0x40000000) {
    out[pos] = 0x80 | (v >>> 24);
    out[pos + 1] = (v >>> 16) & 0xff;
    out[pos + 2] = (v >>> 8) & 0xff;
    out[pos + 3] = v & 0xff;
    return pos + 4;
  }
  const hi = Math.floor(v / 0x100000000);
  const lo = v >>> 0;
  out[pos] = 0xc0 | ((hi >>> 24) & 0x3f);
  out[pos + 1] = (hi >>> 16) & 0xff;
  out[pos + 2] = (hi >>> 8) & 0xff;
  out[pos + 3] = hi & 0xff;
  out[pos + 4] = lo >>> 24;
  out[pos + 5] = (lo >>> 16) & 0xff;
  out[pos + 6] = (lo >>> 8) & 0xff;
  out[pos + 7] = lo & 0xff;
  return pos + 8;
}

export function encodeVarint(v: number): Uint8Array {
  const out = new Uint8Array(varintLength(v));
  writeVarint(out, 0, v);
  return out;
}

/**
 * Reads a varint at `pos` in `buf[..end)`. Returns [value, nextPos], or null if `end` cuts it.
 */
export function readVarint(buf: Uint8Array, pos: number, end: number): [number, number] | null {
  if (pos >= end) return null;
  const first = buf[pos];
  const len = 1 << (first >>> 6);
  if (pos + len > end) return null;
  let v = first & 0x3f;
  for (let i = 1; i < len; i++) v = v * 256 + buf[pos + i];
  return [v, pos + len];
}

// --- frame encoding ---------------------------------------------------------------------------

/** Type + length header for a frame whose payload follows separately. */
export function frameHeader(type: number, length: number): Uint8Array {
  const out = new Uint8Array(varintLength(type) + varintLength(length));
  writeVarint(out, writeVarint(out, 0, type), length);
  return out;
}

/** A whole frame. */
export function encodeFrame(type: number, payload: Uint8Array): Uint8Array {
  const hl = varintLength(type) + varintLength(payload.length);
  const out = new Uint8Array(hl + payload.length);
  writeVarint(out, writeVarint(out, 0, type), payload.length);
  out.set(payload, hl);
  return out;
}

export function encodeSettings(settings: ReadonlyArray<readonly [number, number]>): Uint8Array {
  let n = 0;
  for (const [id, v] of settings) n += varintLength(id) + varintLength(v);
  const p = new Uint8Array(n);
  let pos = 0;
  for (const [id, v] of settings) pos = writeVarint(p, writeVarint(p, pos, id), v);
  return encodeFrame(FrameType.SETTINGS, p);
}

export function encodeGoaway(id: number): Uint8Array {
  return encodeFrame(FrameType.GOAWAY, encodeVarint(id));
}

/** A reserved (GREASE) frame or stream type: 0x1f * N + 0x21 (§7.2.8, §6.2.3). */
export function greaseType(n: number): number {
  return 0x1f * n + 0x21;
}

// --- payload parsing --------------------------------------------------------------------------

/**
 * SETTINGS payload → map. Duplicate identifiers and HTTP/2-only identifiers are
 * H3_SETTINGS_ERROR (§7.2.4); unknown identifiers (GREASE) are kept but ignored by callers.
 */
export function parseSettings(p: Uint8Array): Map<number, number> {
  const out = new Map<number, number>();
  let pos = 0;
  while (pos < p.length) {
    const id = readVarint(p, pos, p.length);
    if (!id) throw new H3Error(H3.FRAME_ERROR, "truncated SETTINGS identifier");
    const v = readVarint(p, id[1], p.length);
    if (!v) throw new H3Error(H3.FRAME_ERROR, "truncated SETTINGS value");
    pos = v[1];
    if (isReservedH2Setting(id[0])) {
      throw new H3Error(H3.SETTINGS_ERROR, `HTTP/2 setting 0x${id[0].toString(16)} in HTTP/3 SETTINGS`);
    }
    if (out.has(id[0])) throw new H3Error(H3.SETTINGS_ERROR, `duplicate setting 0x${id[0].toString(16)}`);
    out.set(id[0], v[0]);
  }
  return out;
}

/** A payload that is exactly one varint (GOAWAY, MAX_PUSH_ID, CANCEL_PUSH). */
export function parseSingleVarint(p: Uint8Array, what: string): number {
  const v = readVarint(p, 0, p.length);
  if (!v || v[1] !== p.length) throw new H3Error(H3.FRAME_ERROR, `malformed ${what} frame`);
  return v[0];
}

// --- reading frames from a stream -------------------------------------------------------------

/**
 * First buffer of a stream: most request streams carry a HEADERS frame and little else, and a
 * 64 KiB buffer per stream showed up as GC time under load. A read that fills the buffer
 * doubles it (up to MAX_READ) so bulk bodies still move in large reads.
 */
const FIRST_READ = 4 * 1024;
const MAX_READ = 256 * 1024;

/**
 * A buffered reader over one QUIC receive stream. Bytes are read into an owned buffer with a
 * BYOB reader (no allocation per read), and only when the caller asks for more, so an
 * unread stream exerts QUIC flow control on the peer.
 */
export class FrameReader {
  buf: Uint8Array<ArrayBuffer>;
  start = 0;
  end = 0;
  eof = false;
  /** Bytes taken from the stream so far. */
  received = 0;

  constructor(readonly stream: QuicRecvStream, size = FIRST_READ) {
    this.buf = new Uint8Array(size);
  }

  get available(): number {
    return this.end - this.start;
  }

  #inflight: Promise<boolean> | undefined;
  /** The last read filled all the free space: the peer has more, read bigger. */
  #filled = false;

  /** A read is under way (started by more(), not awaited yet). */
  get reading(): boolean {
    return this.#inflight !== undefined;
  }

  /**
   * Reads at least once more from the stream; false at FIN. Concurrent callers share one read,
   * so a read started early (to learn whether the stream already ended) is not lost.
   */
  more(): Promise<boolean> {
    if (this.eof) return Promise.resolve(false);
    return this.#inflight ??= this.#more().finally(() => this.#inflight = undefined);
  }

  async #more(): Promise<boolean> {
    if (this.start === this.end) {
      this.start = this.end = 0;
      if (this.#filled && this.buf.length < MAX_READ) this.buf = new Uint8Array(this.buf.length * 2);
    } else if (this.end === this.buf.length) {
      if (this.start > 0) {
        this.buf.copyWithin(0, this.start, this.end);
        this.end -= this.start;
        this.start = 0;
      } else {
        const bigger = new Uint8Array(this.buf.length * 2);
        bigger.set(this.buf.subarray(0, this.end));
        this.buf = bigger;
      }
    }
    const view = new Uint8Array(this.buf.buffer, this.end, this.buf.length - this.end);
    const got = await this.stream.readInto(view);
    if (got === null) {
      this.eof = true;
      // The FIN read transferred our buffer as well: adopt it, bytes still unread included.
      const b = this.stream.finalBuffer;
      if (b) this.buf = new Uint8Array(b);
      return false;
    }
    this.#filled = got.length === view.length;
    // BYOB transferred the buffer: adopt the new one (same contents).
    this.buf = new Uint8Array(got.buffer);
    this.end += got.length;
    this.received += got.length;
    return true;
  }

  /** Next varint, or null at a clean FIN before its first byte. A FIN inside it throws. */
  async varint(): Promise<number | null> {
    for (;;) {
      const r = readVarint(this.buf, this.start, this.end);
      if (r) {
        this.start = r[1];
        return r[0];
      }
      if (!(await this.more())) {
        if (this.available === 0) return null;
        throw new H3Error(H3.FRAME_ERROR, "stream ended inside a varint");
      }
    }
  }

  /**
   * Next frame header, or null at a clean FIN between frames. `inFrame` errors (FIN after the
   * type) are H3_FRAME_ERROR.
   */
  async frameHeader(): Promise<{ type: number; length: number } | null> {
    const type = await this.varint();
    if (type === null) return null;
    const length = await this.varint();
    if (length === null) throw new H3Error(H3.FRAME_ERROR, "stream ended inside a frame header");
    if (length > Number.MAX_SAFE_INTEGER) throw new H3Error(H3.EXCESSIVE_LOAD, "frame length too large");
    return { type, length };
  }

  /** The whole payload of `length` bytes (caller bounds `length`). Copied: safe to keep. */
  async payload(length: number): Promise<Uint8Array> {
    while (this.available < length) {
      if (!(await this.more())) throw new H3Error(H3.FRAME_ERROR, "stream ended inside a frame");
    }
    const out = this.buf.slice(this.start, this.start + length);
    this.start += length;
    return out;
  }

  /** Up to `max` bytes of frame payload already here or read now; a view valid until the next call. */
  async some(max: number): Promise<Uint8Array> {
    if (this.available === 0 && !(await this.more())) {
      throw new H3Error(H3.FRAME_ERROR, "stream ended inside a frame");
    }
    const n = Math.min(max, this.available);
    const out = this.buf.subarray(this.start, this.start + n);
    this.start += n;
    return out;
  }

  /** Drops `length` bytes of payload (unknown frames), reading as needed. */
  async discard(length: number): Promise<void> {
    while (length > 0) {
      if (this.available === 0 && !(await this.more())) {
        throw new H3Error(H3.FRAME_ERROR, "stream ended inside a frame");
      }
      const n = Math.min(length, this.available);
      this.start += n;
      length -= n;
    }
  }
}

/**
 * Reads a critical stream (QPACK encoder or decoder) to its forbidden end, feeding `onChunk` what
 * arrived, the bytes that came with the stream type first. Its end, or a reset, is
 * H3_CLOSED_CRITICAL_STREAM (RFC 9204 §4.2) unless `closing()` says the connection is going anyway.
 */
export async function readCriticalStream(
  r: FrameReader,
  what: string,
  onChunk: (b: Uint8Array) => void,
  closing: () => boolean,
): Promise<void> {
  for (;;) {
    if (r.available > 0) {
      onChunk(r.buf.subarray(r.start, r.end));
      r.start = r.end;
    }
    let more: boolean;
    try {
      more = await r.more();
    } catch {
      more = false;
    }
    if (!more) {
      if (closing()) return;
      throw new H3Error(H3.CLOSED_CRITICAL_STREAM, `peer closed its ${what} stream`);
    }
  }
}

/**
 * The next frame header on a peer's control stream. Its end or a reset is
 * H3_CLOSED_CRITICAL_STREAM (RFC 9114 §6.2.1); null instead when `closing()` says the connection
 * is going anyway.
 */
export async function nextControlFrame(
  r: FrameReader,
  closing: () => boolean,
): Promise<{ type: number; length: number } | null> {
  let h: { type: number; length: number } | null;
  try {
    h = await r.frameHeader();
  } catch (e) {
    if (closing()) return null;
    if (e instanceof H3Error) throw e;
    h = null; // reset
  }
  if (h !== null) return h;
  if (closing()) return null;
  throw new H3Error(H3.CLOSED_CRITICAL_STREAM, "peer closed its control stream");
}
