/**
 * QPACK (RFC 9204): header compression for HTTP/3.
 *
 * Decoder: the static table, Huffman (the HPACK code, RFC 7541 Appendix B, shared with
 * src/http/h2/huffman.ts), and a dynamic table fed by the peer's encoder stream, bounded by the
 * capacity we advertise (SETTINGS_QPACK_MAX_TABLE_CAPACITY). Sections that reference entries not
 * yet received block their stream, at most SETTINGS_QPACK_BLOCKED_STREAMS of them. It emits
 * Section Acknowledgment, Insert Count Increment and Stream Cancellation for our decoder stream.
 *
 * Encoder: static table and literals only (never inserts), so it needs no encoder stream state
 * and a peer's decoder stream must carry nothing but Stream Cancellations.
 *
 * Bombs: the decoded size of a section (name + value + 32 per field, RFC 9114 §4.2.2) is counted
 * as it is decoded and decoding stops at SETTINGS_MAX_FIELD_SECTION_SIZE; every string length is
 * checked against what could legitimately follow before anything is allocated; the buffered
 * encoder-stream instruction is bounded by the table capacity.
 *
 * Field names and values are latin1 strings (one char per octet), as in the HPACK codec.
 */

import type { HeaderField } from "../h2/hpack.ts";
import { bytesToLatin1, huffmanDecode, huffmanEncodedLength, huffmanEncodeInto } from "../h2/huffman.ts";
import { H3, H3Error } from "./frames.ts";
import { RESOLVED } from "../../net/resolved.ts";

export type { HeaderField };

/** Per-entry overhead, for the dynamic table and for field-section size accounting. */
export const ENTRY_OVERHEAD = 32;

// --- static table (RFC 9204 Appendix A) -------------------------------------------------------

export const STATIC_TABLE: ReadonlyArray<readonly [string, string]> = [
  [":authority", ""],
  [":path", "/"],
  ["age", "0"],
  ["content-disposition", ""],
  ["content-length", "0"],
  ["cookie", ""],
  ["date", ""],
  ["etag", ""],
  ["if-modified-since", ""],
  ["if-none-match", ""],
  ["last-modified", ""],
  ["link", ""],
  ["location", ""],
  ["referer", ""],
  ["set-cookie", ""],
  [":method", "CONNECT"],
  [":method", "DELETE"],
  [":method", "GET"],
  [":method", "HEAD"],
  [":method", "OPTIONS"],
  [":method", "POST"],
  [":method", "PUT"],
  [":scheme", "http"],
  [":scheme", "https"],
  [":status", "103"],
  [":status", "200"],
  [":status", "304"],
  [":status", "404"],
  [":status", "503"],
  ["accept", "*/*"],
  ["accept", "application/dns-message"],
  ["accept-encoding", "gzip, deflate, br"],
  ["accept-ranges", "bytes"],
  ["access-control-allow-headers", "cache-control"],
  ["access-control-allow-headers", "content-type"],
  ["access-control-allow-origin", "*"],
  ["cache-control", "max-age=0"],
  ["cache-control", "max-age=2592000"],
  ["cache-control", "max-age=604800"],
  ["cache-control", "no-cache"],
  ["cache-control", "no-store"],
  ["cache-control", "public, max-age=31536000"],
  ["content-encoding", "br"],
  ["content-encoding", "gzip"],
  ["content-type", "application/dns-message"],
  ["content-type", "application/javascript"],
  ["content-type", "application/json"],
  ["content-type", "application/x-www-form-urlencoded"],
  ["content-type", "image/gif"],
  ["content-type", "image/jpeg"],
  ["content-type", "image/png"],
  ["content-type", "text/css"],
  ["content-type", "text/html; charset=utf-8"],
  ["content-type", "text/plain"],
  ["content-type", "text/plain;charset=utf-8"],
  ["range", "bytes=0-"],
  ["strict-transport-security", "max-age=31536000"],
  ["strict-transport-security", "max-age=31536000; includesubdomains"],
  ["strict-transport-security", "max-age=31536000; includesubdomains; preload"],
  ["vary", "accept-encoding"],
  ["vary", "origin"],
  ["x-content-type-options", "nosniff"],
  ["x-xss-protection", "1; mode=block"],
  [":status", "100"],
  [":status", "204"],
  [":status", "206"],
  [":status", "302"],
  [":status", "400"],
  [":status", "403"],
  [":status", "421"],
  [":status", "425"],
  [":status", "500"],
  ["accept-language", ""],
  ["access-control-allow-credentials", "FALSE"],
  ["access-control-allow-credentials", "TRUE"],
  ["access-control-allow-headers", "*"],
  ["access-control-allow-methods", "get"],
  ["access-control-allow-methods", "get, post, options"],
  ["access-control-allow-methods", "options"],
  ["access-control-expose-headers", "content-length"],
  ["access-control-request-headers", "content-type"],
  ["access-control-request-method", "get"],
  ["access-control-request-method", "post"],
  ["alt-svc", "clear"],
  ["authorization", ""],
  ["content-security-policy", "script-src 'none'; object-src 'none'; base-uri 'none'"],
  ["early-data", "1"],
  ["expect-ct", ""],
  ["forwarded", ""],
  ["if-range", ""],
  ["origin", ""],
  ["purpose", "prefetch"],
  ["server", ""],
  ["timing-allow-origin", "*"],
  ["upgrade-insecure-requests", "1"],
  ["user-agent", ""],
  ["x-forwarded-for", ""],
  ["x-frame-options", "deny"],
  ["x-frame-options", "sameorigin"],
];

/** name → lowest index with that name; "name\0value" → index of the exact entry. */
const STATIC_NAME = new Map<string, number>();
const STATIC_EXACT = new Map<string, number>();
for (let i = STATIC_TABLE.length - 1; i >= 0; i--) {
  const [n, v] = STATIC_TABLE[i];
  STATIC_NAME.set(n, i);
  STATIC_EXACT.set(`${n}\u0000${v}`, i);
}

// --- errors ----------------------------------------------------------------------------------

/** The field section decoded to more than the limit; only the stream is refused (431). */
export class FieldSectionTooLarge extends Error {
  constructor(readonly limit: number) {
    super(`field section larger than ${limit} octets`);
    this.name = "FieldSectionTooLarge";
  }
}

function decompressionFailed(msg: string): H3Error {
  return new H3Error(H3.QPACK_DECOMPRESSION_FAILED, msg);
}

// --- primitives (RFC 9204 §4.1, RFC 7541 §5) --------------------------------------------------

/** Integers beyond this are refused (no legitimate QPACK value comes close). */
const MAX_INT = 2 ** 32;

/**
 * Prefix integer with an N-bit prefix at `pos` (the prefix bits of buf[pos]). Returns
 * [value, next] or null when `end` cuts it; throws `err` when it is absurdly large.
 */
export function readPrefixInt(
  buf: Uint8Array,
  pos: number,
  end: number,
  bits: number,
  err: (m: string) => Error,
): [number, number] | null {
  if (pos >= end) return null;
  const max = (1 << bits) - 1;
  let v = buf[pos++] & max;
  if (v < max) return [v, pos];
  let shift = 0;
  for (;;) {
    if (pos >= end) return null;
    const b = buf[pos++];
    v += (b & 0x7f) * 2 ** shift;
    if (v > MAX_INT) throw err("integer too large");
    if ((b & 0x80) === 0) return [v, pos];
    shift += 7;
  }
}

/**
 * String literal whose H flag is the bit just above the N-bit length prefix. Returns
 * [string, next] or null when `end` cuts it. `maxLen` bounds the encoded length.
 */
function readString(
  buf: Uint8Array,
  pos: number,
  end: number,
  bits: number,
  maxLen: number,
  err: (m: string) => Error,
): [string, number] | null {
  if (pos >= end) return null;
  const huffman = (buf[pos] & (1 << bits)) !== 0;
  const len = readPrefixInt(buf, pos, end, bits, err);
  if (!len) return null;
  if (len[0] > maxLen) throw err(`string literal of ${len[0]} octets is too long`);
  const s = len[1];
  if (s + len[0] > end) return null;
  let str: string;
  try {
    str = huffman ? huffmanDecode(buf, s, s + len[0]) : bytesToLatin1(buf, s, s + len[0]);
  } catch (e) {
    throw err(e instanceof Error ? e.message : "bad huffman string");
  }
  return [str, s + len[0]];
}

/** A growable byte buffer for encoding. */
class Bytes {
  buf = new Uint8Array(256);
  len = 0;
  ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const b = new Uint8Array(Math.max(this.buf.length * 2, this.len + n));
    b.set(this.buf.subarray(0, this.len));
    this.buf = b;
  }
  int(flags: number, bits: number, v: number): void {
    this.ensure(10);
    const max = (1 << bits) - 1;
    if (v < max) {
      this.buf[this.len++] = flags | v;
      return;
    }
    this.buf[this.len++] = flags | max;
    v -= max;
    while (v >= 0x80) {
      this.buf[this.len++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.buf[this.len++] = v;
  }
  /** String with H flag at bit `bits` of the first octet and `flags` above it. */
  str(flags: number, bits: number, s: string): void {
    const h = huffmanEncodedLength(s);
    if (h < s.length) {
      this.int(flags | (1 << bits), bits, h);
      this.ensure(h);
      this.len = huffmanEncodeInto(s, this.buf, this.len);
    } else {
      this.int(flags, bits, s.length);
      this.ensure(s.length);
      for (let i = 0; i < s.length; i++) this.buf[this.len++] = s.charCodeAt(i) & 0xff;
    }
  }
  take(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

// --- encoder (static + literals) --------------------------------------------------------------

/**
 * Encodes a field section with the static table and literals only: Required Insert Count 0,
 * so it never blocks the peer and never needs an acknowledgment.
 */
export function encodeFieldSection(fields: readonly HeaderField[]): Uint8Array {
  const out = new Bytes();
  out.int(0, 8, 0); // Required Insert Count
  out.int(0, 7, 0); // S = 0, Delta Base = 0
  for (const f of fields) {
    const name = f[0];
    const value = f[1];
    const never = f[2] === true;
    if (!never) {
      const exact = STATIC_EXACT.get(`${name}\u0000${value}`);
      if (exact !== undefined) {
        out.int(0xc0, 6, exact); // 1 T=1 index
        continue;
      }
    }
    const ni = STATIC_NAME.get(name);
    if (ni !== undefined) {
      out.int(0x50 | (never ? 0x20 : 0), 4, ni); // 01 N T=1 index
      out.str(0, 7, value);
    } else {
      out.str(0x20 | (never ? 0x10 : 0), 3, name); // 001 N H len
      out.str(0, 7, value);
    }
  }
  return out.take();
}

// --- dynamic table ----------------------------------------------------------------------------

class DynamicTable {
  /** Entries by absolute index - dropped (oldest first). */
  readonly names: string[] = [];
  readonly values: string[] = [];
  /** Absolute index of names[0]. */
  dropped = 0;
  size = 0;
  capacity = 0;

  get insertCount(): number {
    return this.dropped + this.names.length;
  }

  get(abs: number): number {
    const i = abs - this.dropped;
    return i >= 0 && i < this.names.length ? i : -1;
  }

  #evictTo(limit: number): void {
    while (this.size > limit && this.names.length > 0) {
      this.size -= this.names[0].length + this.values[0].length + ENTRY_OVERHEAD;
      this.names.shift();
      this.values.shift();
      this.dropped++;
    }
  }

  setCapacity(c: number): void {
    this.capacity = c;
    this.#evictTo(c);
  }

  insert(name: string, value: string): boolean {
    const s = name.length + value.length + ENTRY_OVERHEAD;
    if (s > this.capacity) return false;
    this.#evictTo(this.capacity - s);
    this.names.push(name);
    this.values.push(value);
    this.size += s;
    return true;
  }
}

// --- decoder ----------------------------------------------------------------------------------

export interface QpackDecoderOptions {
  /** SETTINGS_QPACK_MAX_TABLE_CAPACITY we advertise (0 = static/literals only). */
  maxTableCapacity: number;
  /** SETTINGS_QPACK_BLOCKED_STREAMS we advertise. */
  maxBlockedStreams: number;
  /** SETTINGS_MAX_FIELD_SECTION_SIZE we advertise (decoded size, RFC 9114 §4.2.2). */
  maxFieldSectionSize: number;
}

export type DecodeResult =
  /** Decoded; `ack` is a Section Acknowledgment to send on our decoder stream (or null). */
  | { fields: HeaderField[]; ack: Uint8Array | null }
  /** Larger than maxFieldSectionSize: refuse the message (431); `ack` as above. */
  | { fields: null; ack: Uint8Array | null }
  /** References entries not received yet: await waitFor(requiredInsertCount), then decode again. */
  | { blocked: number };

function encoderStreamError(m: string): H3Error {
  return new H3Error(H3.QPACK_ENCODER_STREAM_ERROR, m);
}

export class QpackDecoder {
  readonly #table = new DynamicTable();
  #pending = new Uint8Array(0);
  /** Inserts the peer's encoder knows we have (Insert Count Increment / acks sent). */
  #knownReceived = 0;
  #blocked = 0;
  #waiters: Array<{ ric: number; resolve: () => void; reject: (e: unknown) => void }> = [];
  #failed: unknown;

  constructor(readonly opts: QpackDecoderOptions) {}

  get insertCount(): number {
    return this.#table.insertCount;
  }
  get tableSize(): number {
    return this.#table.size;
  }
  get tableCapacity(): number {
    return this.#table.capacity;
  }
  get blockedStreams(): number {
    return this.#blocked;
  }

  /** The longest encoded literal that could still fit in a table entry (Huffman ≤ 30/8 per octet). */
  get #maxEncoderString(): number {
    return Math.ceil(this.opts.maxTableCapacity * 30 / 8) + 8;
  }

  /**
   * Bytes from the peer's encoder stream. Applies every complete instruction and returns what
   * to send on our decoder stream (an Insert Count Increment), or null.
   */
  onEncoderStream(chunk: Uint8Array): Uint8Array | null {
    let buf: Uint8Array;
    if (this.#pending.length === 0) buf = chunk;
    else {
      buf = new Uint8Array(this.#pending.length + chunk.length);
      buf.set(this.#pending);
      buf.set(chunk, this.#pending.length);
    }
    let pos = 0;
    const end = buf.length;
    const t = this.#table;
    const maxStr = this.#maxEncoderString;
    try {
      for (;;) {
        if (pos >= end) break;
        const b = buf[pos];
        let next: number;
        if (b & 0x80) {
          // Insert With Name Reference: 1 T index(6), value(H, 7)
          const idx = readPrefixInt(buf, pos, end, 6, encoderStreamError);
          if (!idx) break;
          let name: string;
          if (b & 0x40) {
            const e = STATIC_TABLE[idx[0]];
            if (!e) throw encoderStreamError(`static index ${idx[0]} out of range`);
            name = e[0];
          } else {
            const rel = t.get(t.insertCount - 1 - idx[0]);
            if (rel < 0) throw encoderStreamError(`dynamic relative index ${idx[0]} not in the table`);
            name = t.names[rel];
          }
          const v = readString(buf, idx[1], end, 7, maxStr, encoderStreamError);
          if (!v) break;
          if (!t.insert(name, v[0])) throw encoderStreamError("entry larger than the table capacity");
          next = v[1];
        } else if (b & 0x40) {
          // Insert With Literal Name: 01 H len(5), value(H, 7)
          const n = readString(buf, pos, end, 5, maxStr, encoderStreamError);
          if (!n) break;
          const v = readString(buf, n[1], end, 7, maxStr, encoderStreamError);
          if (!v) break;
          if (!t.insert(n[0], v[0])) throw encoderStreamError("entry larger than the table capacity");
          next = v[1];
        } else if (b & 0x20) {
          // Set Dynamic Table Capacity: 001 capacity(5)
          const c = readPrefixInt(buf, pos, end, 5, encoderStreamError);
          if (!c) break;
          if (c[0] > this.opts.maxTableCapacity) {
            throw encoderStreamError(`capacity ${c[0]} above our maximum ${this.opts.maxTableCapacity}`);
          }
          t.setCapacity(c[0]);
          next = c[1];
        } else {
          // Duplicate: 000 index(5)
          const idx = readPrefixInt(buf, pos, end, 5, encoderStreamError);
          if (!idx) break;
          const rel = t.get(t.insertCount - 1 - idx[0]);
          if (rel < 0) throw encoderStreamError(`duplicate of index ${idx[0]} not in the table`);
          if (!t.insert(t.names[rel], t.values[rel])) throw encoderStreamError("duplicate does not fit");
          next = idx[1];
        }
        pos = next;
      }
    } catch (e) {
      this.fail(e);
      throw e;
    }
    const rest = end - pos;
    if (rest > 2 * maxStr + 16) {
      const e = encoderStreamError("encoder instruction longer than any entry could be");
      this.fail(e);
      throw e;
    }
    this.#pending = rest === 0 ? new Uint8Array(0) : buf.slice(pos);
    this.#wake();
    const inc = t.insertCount - this.#knownReceived;
    if (inc <= 0) return null;
    this.#knownReceived = t.insertCount;
    const out = new Bytes();
    out.int(0x00, 6, inc); // Insert Count Increment: 00 increment(6)
    return out.take();
  }

  #wake(): void {
    if (this.#waiters.length === 0) return;
    const ic = this.#table.insertCount;
    this.#waiters = this.#waiters.filter((w) => {
      if (w.ric > ic) return true;
      this.#blocked--;
      w.resolve();
      return false;
    });
  }

  /**
   * Waits until the table has `ric` inserts. Counts as a blocked stream; refuses (connection
   * error) past SETTINGS_QPACK_BLOCKED_STREAMS (RFC 9204 §2.1.2). `signal` gives up (a stream
   * that timed out or was abandoned), freeing its blocked-stream slot.
   */
  waitFor(ric: number, signal?: AbortSignal): Promise<void> {
    if (this.#failed) return Promise.reject(this.#failed);
    if (ric <= this.#table.insertCount) return RESOLVED;
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#blocked >= this.opts.maxBlockedStreams) {
      return Promise.reject(decompressionFailed("more blocked streams than SETTINGS_QPACK_BLOCKED_STREAMS"));
    }
    this.#blocked++;
    return new Promise((resolve, reject) => {
      const w = { ric, resolve, reject };
      this.#waiters.push(w);
      signal?.addEventListener("abort", () => {
        const i = this.#waiters.indexOf(w);
        if (i < 0) return;
        this.#waiters.splice(i, 1);
        this.#blocked--;
        reject(signal.reason);
      }, { once: true });
    });
  }

  /** The connection is gone: blocked streams fail. */
  fail(e: unknown): void {
    this.#failed ??= e;
    for (const w of this.#waiters) w.reject(e);
    this.#blocked -= this.#waiters.length;
    this.#waiters = [];
  }

  /**
   * Decodes one encoded field section (a HEADERS frame payload) of stream `streamId`.
   * Throws H3Error(QPACK_DECOMPRESSION_FAILED) for malformed input.
   */
  decode(section: Uint8Array, streamId: number): DecodeResult {
    const end = section.length;
    const t = this.#table;
    const truncated = () => decompressionFailed("field section truncated");
    const ricRaw = readPrefixInt(section, 0, end, 8, decompressionFailed);
    if (!ricRaw) throw truncated();
    const ric = this.#requiredInsertCount(ricRaw[0]);
    let pos = ricRaw[1];
    if (pos >= end) throw truncated();
    const negative = (section[pos] & 0x80) !== 0;
    const delta = readPrefixInt(section, pos, end, 7, decompressionFailed);
    if (!delta) throw truncated();
    pos = delta[1];
    let base: number;
    if (negative) {
      if (delta[0] + 1 > ric) throw decompressionFailed("negative base below zero");
      base = ric - delta[0] - 1;
    } else base = ric + delta[0];
    if (ric > t.insertCount) return { blocked: ric };
    const ack = ric > 0 ? this.#sectionAck(streamId, ric) : null;

    const limit = this.opts.maxFieldSectionSize;
    const maxStr = end; // a literal can't be longer than the section that carries it
    let size = 0;
    const fields: HeaderField[] = [];
    const dyn = (abs: number): number => {
      if (abs >= ric) {
        throw decompressionFailed(`reference to entry ${abs} at or above Required Insert Count ${ric}`);
      }
      const i = t.get(abs);
      if (i < 0) throw decompressionFailed(`reference to evicted entry ${abs}`);
      return i;
    };
    while (pos < end) {
      const b = section[pos];
      let name: string;
      let value: string;
      let never = false;
      if (b & 0x80) {
        // Indexed Field Line: 1 T index(6)
        const idx = readPrefixInt(section, pos, end, 6, decompressionFailed);
        if (!idx) throw truncated();
        pos = idx[1];
        if (b & 0x40) {
          const e = STATIC_TABLE[idx[0]];
          if (!e) throw decompressionFailed(`static index ${idx[0]} out of range`);
          name = e[0];
          value = e[1];
        } else {
          const i = dyn(base - 1 - idx[0]);
          name = t.names[i];
          value = t.values[i];
        }
      } else if (b & 0x40) {
        // Literal With Name Reference: 01 N T index(4), value
        never = (b & 0x20) !== 0;
        const idx = readPrefixInt(section, pos, end, 4, decompressionFailed);
        if (!idx) throw truncated();
        if (b & 0x10) {
          const e = STATIC_TABLE[idx[0]];
          if (!e) throw decompressionFailed(`static index ${idx[0]} out of range`);
          name = e[0];
        } else name = t.names[dyn(base - 1 - idx[0])];
        const v = readString(section, idx[1], end, 7, maxStr, decompressionFailed);
        if (!v) throw truncated();
        value = v[0];
        pos = v[1];
      } else if (b & 0x20) {
        // Literal With Literal Name: 001 N H len(3), value
        never = (b & 0x10) !== 0;
        const n = readString(section, pos, end, 3, maxStr, decompressionFailed);
        if (!n) throw truncated();
        const v = readString(section, n[1], end, 7, maxStr, decompressionFailed);
        if (!v) throw truncated();
        name = n[0];
        value = v[0];
        pos = v[1];
      } else if (b & 0x10) {
        // Indexed Field Line With Post-Base Index: 0001 index(4)
        const idx = readPrefixInt(section, pos, end, 4, decompressionFailed);
        if (!idx) throw truncated();
        const i = dyn(base + idx[0]);
        name = t.names[i];
        value = t.values[i];
        pos = idx[1];
      } else {
        // Literal With Post-Base Name Reference: 0000 N index(3), value
        never = (b & 0x08) !== 0;
        const idx = readPrefixInt(section, pos, end, 3, decompressionFailed);
        if (!idx) throw truncated();
        name = t.names[dyn(base + idx[0])];
        const v = readString(section, idx[1], end, 7, maxStr, decompressionFailed);
        if (!v) throw truncated();
        value = v[0];
        pos = v[1];
      }
      size += name.length + value.length + ENTRY_OVERHEAD;
      if (size > limit) return { fields: null, ack };
      fields.push(never ? [name, value, true] : [name, value]);
    }
    return { fields, ack };
  }

  /** RFC 9204 §4.5.1.1. */
  #requiredInsertCount(encoded: number): number {
    if (encoded === 0) return 0;
    const maxEntries = Math.floor(this.opts.maxTableCapacity / 32);
    const fullRange = 2 * maxEntries;
    if (encoded > fullRange) throw decompressionFailed("Required Insert Count out of range");
    const maxValue = this.#table.insertCount + maxEntries;
    const maxWrapped = Math.floor(maxValue / fullRange) * fullRange;
    let ric = maxWrapped + encoded - 1;
    if (ric > maxValue) {
      if (ric <= fullRange) throw decompressionFailed("Required Insert Count out of range");
      ric -= fullRange;
    }
    if (ric === 0) throw decompressionFailed("Required Insert Count of zero encoded as non-zero");
    return ric;
  }

  #sectionAck(streamId: number, ric: number): Uint8Array {
    if (ric > this.#knownReceived) this.#knownReceived = ric;
    const out = new Bytes();
    out.int(0x80, 7, streamId); // Section Acknowledgment: 1 stream id(7)
    return out.take();
  }

  /**
   * A Stream Cancellation for our decoder stream when we abandon a stream whose sections we
   * may not have decoded (RFC 9204 §4.4.2); null when the table is unused (§2.2.2.2).
   */
  streamCancellation(streamId: number): Uint8Array | null {
    if (this.opts.maxTableCapacity === 0) return null;
    const out = new Bytes();
    out.int(0x40, 6, streamId); // 01 stream id(6)
    return out.take();
  }
}

/**
 * The peer's decoder stream, as seen by our literal-only encoder: we never insert and never
 * send a section with a non-zero Required Insert Count, so only Stream Cancellation is valid
 * (RFC 9204 §4.4: an acknowledgment or increment we can't have caused is
 * QPACK_DECODER_STREAM_ERROR).
 */
export class DecoderStreamParser {
  #pending = new Uint8Array(0);

  feed(chunk: Uint8Array): void {
    let buf = chunk;
    if (this.#pending.length > 0) {
      buf = new Uint8Array(this.#pending.length + chunk.length);
      buf.set(this.#pending);
      buf.set(chunk, this.#pending.length);
    }
    const err = (m: string) => new H3Error(H3.QPACK_DECODER_STREAM_ERROR, m);
    let pos = 0;
    while (pos < buf.length) {
      const b = buf[pos];
      if (b & 0x80) throw err("Section Acknowledgment for a section without dynamic references");
      const r = readPrefixInt(buf, pos, buf.length, 6, err);
      if (!r) break;
      if ((b & 0x40) === 0) throw err(`Insert Count Increment of ${r[0]} beyond our inserts (0)`);
      pos = r[1]; // Stream Cancellation: nothing to release
    }
    if (buf.length - pos > 16) throw err("oversized decoder instruction");
    this.#pending = buf.slice(pos);
  }
}
