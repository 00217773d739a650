/**
 * HPACK header compression for HTTP/2 (RFC 7541): the static table (§2.3.1, Appendix A), the dynamic
 * table with its size accounting and eviction (§2.3.2, §4), integer (§5.1) and string (§5.2)
 * representations, the field representations (§6.1-§6.3) and the security guidance on never-indexed
 * fields (§7.1.3). Pure: no I/O, no timers.
 *
 * Field names and values are "latin1" strings — one char per octet (see huffman.ts) — because field
 * values are octets on the wire, not UTF-8 text. Octet lengths therefore equal `string.length`, which
 * is what both the table accounting (§4.1) and the header-list limit (RFC 9113 §6.5.2) count.
 *
 * Error split, which the connection layer relies on:
 *   - HpackError: the block is malformed, or the decoder state can no longer be trusted → connection
 *     error COMPRESSION_ERROR (RFC 9113 §4.3). The decoder must be discarded with the connection.
 *   - HeaderListTooLarge: the block was valid and fully processed (the dynamic table is in sync) but
 *     the decoded list exceeds our SETTINGS_MAX_HEADER_LIST_SIZE → refuse just that stream (e.g. 431 or
 *     RST_STREAM); the connection and this decoder remain usable.
 */

import {
  bytesToLatin1,
  huffmanDecode,
  huffmanEncodedLength,
  huffmanEncodeInto,
  HuffmanError,
  huffmanValidate,
} from "./huffman.ts";

/**
 * One header field. Names are lowercase on the wire in HTTP/2 (the message layer checks that; HPACK
 * neither lowercases nor rejects). The optional third element marks a field that was, or must be,
 * sent with the "never indexed" representation (RFC 7541 §6.2.3): the decoder sets it when the peer
 * used that representation, and the encoder honours it, so a proxy re-encoding a field keeps it
 * out of compression contexts as §6.2.3 requires of intermediaries.
 */
export type HeaderField = [name: string, value: string, neverIndex?: boolean];

/** Malformed HPACK input: the caller must treat it as a connection error of type COMPRESSION_ERROR. */
export class HpackError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "HpackError";
  }
}

/**
 * The decoded header list exceeds maxHeaderListSize (RFC 9113 §6.5.2 accounting). Deliberately NOT an
 * HpackError: the block was fully consumed, the dynamic table is consistent, and only the stream that
 * carried it needs to be refused.
 */
export class HeaderListTooLarge extends Error {
  constructor(
    /** Accounted size of the list up to the point the decoder stopped counting (≥ limit + 1). */
    readonly size: number,
    readonly limit: number,
  ) {
    super(`header list size exceeds the limit of ${limit} octets`);
    this.name = "HeaderListTooLarge";
  }
}

/** Per-entry overhead of the dynamic table and of the header-list size (RFC 7541 §4.1, RFC 9113 §6.5.2). */
export const ENTRY_OVERHEAD = 32;
/** Longest Huffman literal the decoder remembers (HpackDecoder.#string). */
const LITERAL_CACHE_MAX = 64;

/** The protocol's initial SETTINGS_HEADER_TABLE_SIZE (RFC 9113 §6.5.2). */
export const DEFAULT_HEADER_TABLE_SIZE = 4096;
/** Our default SETTINGS_MAX_HEADER_LIST_SIZE when the caller does not give one. */
export const DEFAULT_MAX_HEADER_LIST_SIZE = 65536;

// ---------------------------------------------------------------------------------------------
// Static table (RFC 7541 Appendix A). Index 1..61; slot 0 is a placeholder so indices line up.
// ---------------------------------------------------------------------------------------------

const STATIC_TABLE: ReadonlyArray<readonly [string, string]> = [
  ["", ""],
  [":authority", ""],
  [":method", "GET"],
  [":method", "POST"],
  [":path", "/"],
  [":path", "/index.html"],
  [":scheme", "http"],
  [":scheme", "https"],
  [":status", "200"],
  [":status", "204"],
  [":status", "206"],
  [":status", "304"],
  [":status", "400"],
  [":status", "404"],
  [":status", "500"],
  ["accept-charset", ""],
  ["accept-encoding", "gzip, deflate"],
  ["accept-language", ""],
  ["accept-ranges", ""],
  ["accept", ""],
  ["access-control-allow-origin", ""],
  ["age", ""],
  ["allow", ""],
  ["authorization", ""],
  ["cache-control", ""],
  ["content-disposition", ""],
  ["content-encoding", ""],
  ["content-language", ""],
  ["content-length", ""],
  ["content-location", ""],
  ["content-range", ""],
  ["content-type", ""],
  ["cookie", ""],
  ["date", ""],
  ["etag", ""],
  ["expect", ""],
  ["expires", ""],
  ["from", ""],
  ["host", ""],
  ["if-match", ""],
  ["if-modified-since", ""],
  ["if-none-match", ""],
  ["if-range", ""],
  ["if-unmodified-since", ""],
  ["last-modified", ""],
  ["link", ""],
  ["location", ""],
  ["max-forwards", ""],
  ["proxy-authenticate", ""],
  ["proxy-authorization", ""],
  ["range", ""],
  ["referer", ""],
  ["refresh", ""],
  ["retry-after", ""],
  ["server", ""],
  ["set-cookie", ""],
  ["strict-transport-security", ""],
  ["transfer-encoding", ""],
  ["user-agent", ""],
  ["vary", ""],
  ["via", ""],
  ["www-authenticate", ""],
];
/** Number of static entries; dynamic index i is addressed on the wire as STATIC_COUNT + i. */
export const STATIC_COUNT = 61;

/** Encoder lookup: name → lowest static index with that name, and exact (name, value) matches. */
const STATIC_BY_NAME = new Map<string, { index: number; values: Map<string, number> }>();
for (let i = 1; i <= STATIC_COUNT; i++) {
  const [name, value] = STATIC_TABLE[i];
  let e = STATIC_BY_NAME.get(name);
  if (!e) STATIC_BY_NAME.set(name, e = { index: i, values: new Map() });
  // Duplicate (name, value) pairs keep their lowest index. Empty static values are real values too:
  // ["accept", ""] is an exact match for index 19.
  if (!e.values.has(value)) e.values.set(value, i);
}

// ---------------------------------------------------------------------------------------------
// Dynamic table (RFC 7541 §2.3.2, §4): a FIFO ring, newest entry = index 1.
// ---------------------------------------------------------------------------------------------

class DynamicTable {
  names: string[] = new Array(32);
  values: string[] = new Array(32);
  /** Index of the oldest entry in the ring. */
  head = 0;
  count = 0;
  /** Sum of entry sizes (name + value + 32), RFC 7541 §4.1. */
  size = 0;
  /** Total entries ever inserted; the newest entry's sequence number is inserted - 1. */
  inserted = 0;
  /** Called for every evicted entry with its sequence number (the encoder keeps a reverse index). */
  onEvict: ((name: string, value: string, seq: number) => void) | null = null;

  constructor(public maxSize: number) {}

  /** Entry by 1-based dynamic index (1 = newest). Caller checks 1 <= i <= count. */
  name(i: number): string {
    return this.names[(this.head + this.count - i) & (this.names.length - 1)];
  }
  value(i: number): string {
    return this.values[(this.head + this.count - i) & (this.values.length - 1)];
  }

  /** Inserts per §4.4: evict until it fits; an entry larger than the whole table just empties it. */
  add(name: string, value: string): void {
    const entrySize = name.length + value.length + ENTRY_OVERHEAD;
    if (entrySize > this.maxSize) {
      this.evictTo(0);
      return;
    }
    this.evictTo(this.maxSize - entrySize);
    if (this.count === this.names.length) this.grow();
    const slot = (this.head + this.count) & (this.names.length - 1);
    this.names[slot] = name;
    this.values[slot] = value;
    this.count++;
    this.size += entrySize;
    this.inserted++;
  }

  /** Changes the maximum size (§4.3), evicting as needed. */
  resize(maxSize: number): void {
    this.maxSize = maxSize;
    this.evictTo(maxSize);
  }

  private evictTo(target: number): void {
    const mask = this.names.length - 1;
    while (this.size > target && this.count > 0) {
      const slot = this.head;
      const name = this.names[slot];
      const value = this.values[slot];
      this.size -= name.length + value.length + ENTRY_OVERHEAD;
      if (this.onEvict !== null) this.onEvict(name, value, this.inserted - this.count);
      // Drop the references so evicted strings can be collected.
      this.names[slot] = "";
      this.values[slot] = "";
      this.head = (slot + 1) & mask;
      this.count--;
    }
  }

  private grow(): void {
    const n = this.names.length;
    const names = new Array<string>(n * 2);
    const values = new Array<string>(n * 2);
    for (let i = 0; i < this.count; i++) {
      names[i] = this.names[(this.head + i) & (n - 1)];
      values[i] = this.values[(this.head + i) & (n - 1)];
    }
    this.names = names;
    this.values = values;
    this.head = 0;
  }
}

// ---------------------------------------------------------------------------------------------
// Decoder
// ---------------------------------------------------------------------------------------------

const EMPTY = new Uint8Array(0);

export interface HpackDecoderOptions {
  /** SETTINGS_HEADER_TABLE_SIZE we advertise (the peer encoder's ceiling). Default 4096. */
  maxTableSize?: number;
  /** SETTINGS_MAX_HEADER_LIST_SIZE we enforce, in RFC 9113 §6.5.2 octets. Default 65536. */
  maxHeaderListSize?: number;
}

export class HpackDecoder {
  readonly #table: DynamicTable;
  /** Largest table size the peer may select with a size update (our acknowledged setting). */
  #limit: number;
  #maxHeaderListSize: number;
  /** We lowered the limit below the table's current maximum: the next block must start with an update. */
  #updateRequired = false;
  // Cursor over the block being decoded; decode() is synchronous and never re-entered.
  #buf: Uint8Array = EMPTY;
  #pos = 0;

  constructor(opts: HpackDecoderOptions = {}) {
    const maxTableSize = opts.maxTableSize ?? DEFAULT_HEADER_TABLE_SIZE;
    checkSize("maxTableSize", maxTableSize);
    this.#limit = maxTableSize;
    this.#table = new DynamicTable(maxTableSize);
    this.#maxHeaderListSize = opts.maxHeaderListSize ?? DEFAULT_MAX_HEADER_LIST_SIZE;
  }

  /**
   * Call when the peer has acknowledged a SETTINGS frame that changed our SETTINGS_HEADER_TABLE_SIZE.
   * If the new limit is below the table's current maximum, RFC 7541 §4.2 requires the peer to start
   * its next header block with a size update to at most `n`; a block that does not is an HpackError.
   */
  setMaxTableSizeLimit(n: number): void {
    checkSize("maxTableSize", n);
    this.#limit = n;
    this.#updateRequired = this.#table.maxSize > n;
  }

  /** Changes SETTINGS_MAX_HEADER_LIST_SIZE enforcement for subsequent blocks. */
  setMaxHeaderListSize(n: number): void {
    this.#maxHeaderListSize = n;
  }

  /** Current dynamic table size in octets (§4.1), for tests and metrics. */
  get dynamicTableSize(): number {
    return this.#table.size;
  }
  /** Current maximum dynamic table size as last set by the peer (§4.2). */
  get dynamicTableMaxSize(): number {
    return this.#table.maxSize;
  }
  /** Snapshot of the dynamic table, newest first (index 62 first on the wire). For tests/debugging. */
  dynamicTableEntries(): HeaderField[] {
    const out: HeaderField[] = [];
    for (let i = 1; i <= this.#table.count; i++) out.push([this.#table.name(i), this.#table.value(i)]);
    return out;
  }

  /**
   * Decodes one complete header block (all CONTINUATION fragments concatenated).
   * Throws HpackError (→ COMPRESSION_ERROR) on malformed input; throws HeaderListTooLarge after
   * processing the whole block if the decoded list is over the limit. Once over the limit, fields are
   * no longer collected and non-indexed literals are validated but not materialised, so a block that
   * references one big table entry many times (an "HPACK bomb") costs no memory proportional to its
   * expansion.
   */
  decode(block: Uint8Array): HeaderField[] {
    this.#buf = block;
    this.#pos = 0;
    try {
      return this.#decode(block);
    } catch (e) {
      if (e instanceof HuffmanError) throw new HpackError(e.message);
      throw e;
    } finally {
      this.#buf = EMPTY; // do not pin the caller's buffer
    }
  }

  #decode(block: Uint8Array): HeaderField[] {
    const table = this.#table;
    const limit = this.#maxHeaderListSize;
    const end = block.length;
    const fields: HeaderField[] = [];
    let listSize = 0;
    let over = false;
    let sawField = false;

    while (this.#pos < end) {
      const b = block[this.#pos];

      if ((b & 0xe0) === 0x20) {
        // §6.3 Dynamic Table Size Update: 001xxxxx. Only before the first field (§4.2).
        if (sawField) throw new HpackError("dynamic table size update after a header field");
        const n = this.#int(5);
        if (n > this.#limit) {
          throw new HpackError(`dynamic table size update to ${n} exceeds the limit ${this.#limit}`);
        }
        table.resize(n);
        this.#updateRequired = false;
        continue;
      }

      if (!sawField) {
        if (this.#updateRequired) {
          throw new HpackError("header block must start with a dynamic table size update");
        }
        sawField = true;
      }

      if (b & 0x80) {
        // §6.1 Indexed Header Field: 1xxxxxxx.
        const index = this.#int(7);
        if (index === 0) throw new HpackError("indexed header field with index 0");
        let name: string;
        let value: string;
        if (index <= STATIC_COUNT) {
          name = STATIC_TABLE[index][0];
          value = STATIC_TABLE[index][1];
        } else if (index - STATIC_COUNT <= table.count) {
          name = table.name(index - STATIC_COUNT);
          value = table.value(index - STATIC_COUNT);
        } else {
          throw new HpackError(`header field index ${index} is beyond the table`);
        }
        if (!over) {
          listSize += name.length + value.length + ENTRY_OVERHEAD;
          if (listSize > limit) over = true;
          else fields.push([name, value]);
        }
        continue;
      }

      // Literals. §6.2.1 with incremental indexing: 01xxxxxx (6-bit index);
      // §6.2.2 without indexing: 0000xxxx and §6.2.3 never indexed: 0001xxxx (4-bit index).
      const indexing = (b & 0x40) !== 0;
      const neverIndexed = !indexing && (b & 0x10) !== 0;
      const nameIndex = this.#int(indexing ? 6 : 4);

      if (!indexing && over) {
        // Nothing will be kept: validate and step over the strings without building them.
        if (nameIndex === 0) this.#skipString();
        else this.#checkIndex(nameIndex);
        this.#skipString();
        continue;
      }

      const name = nameIndex === 0 ? this.#string() : this.#nameAt(nameIndex);
      // A never-indexed value (credentials, cookies) is not kept in the literal cache either.
      const value = this.#string(!neverIndexed);
      if (indexing) table.add(name, value);
      if (!over) {
        listSize += name.length + value.length + ENTRY_OVERHEAD;
        if (listSize > limit) over = true;
        else fields.push(neverIndexed ? [name, value, true] : [name, value]);
      }
    }

    if (over) throw new HeaderListTooLarge(listSize, limit);
    return fields;
  }

  #checkIndex(index: number): void {
    if (index > STATIC_COUNT + this.#table.count) {
      throw new HpackError(`header name index ${index} is beyond the table`);
    }
  }

  #nameAt(index: number): string {
    if (index <= STATIC_COUNT) return STATIC_TABLE[index][0];
    this.#checkIndex(index);
    return this.#table.name(index - STATIC_COUNT);
  }

  /**
   * §5.1 integer with an N-bit prefix, starting at the current octet. At most 4 continuation octets
   * are accepted, which bounds the value below 2^28 + 255 — far above any legitimate length, index or
   * table size, and below 2^31, so no separate overflow check is needed, int32 arithmetic stays
   * exact, and a run of 0x80 octets cannot keep the loop going. A fifth continuation octet (which
   * could carry the value past 2^31) is an HpackError.
   */
  #int(prefixBits: number): number {
    const buf = this.#buf;
    const mask = (1 << prefixBits) - 1;
    let value = buf[this.#pos++] & mask;
    if (value < mask) return value;
    let shift = 0;
    for (;;) {
      if (this.#pos >= buf.length) throw new HpackError("truncated integer");
      if (shift > 21) throw new HpackError("integer too large (more than 4 continuation octets)");
      const b = buf[this.#pos++];
      value += (b & 0x7f) << shift; // shift ≤ 21: (127 << 21) < 2^28, exact in int32
      if ((b & 0x80) === 0) break;
      shift += 7;
    }
    return value;
  }

  /**
   * §5.2 string literal at the current position, as a latin1 string; `cacheable` false keeps a
   * Huffman literal out of the one-entry literal cache.
   */
  #string(cacheable = true): string {
    if (this.#pos >= this.#buf.length) throw new HpackError("truncated block: string literal expected");
    const huffman = (this.#buf[this.#pos] & 0x80) !== 0;
    const len = this.#int(7);
    const start = this.#pos;
    const end = start + len;
    if (end > this.#buf.length) throw new HpackError("string literal length exceeds the block");
    this.#pos = end;
    if (!huffman) return bytesToLatin1(this.#buf, start, end);
    if (len > LITERAL_CACHE_MAX || !cacheable) return huffmanDecode(this.#buf, start, end);
    // The same literal as last time (a client that sends :path without indexing repeats it
    // request after request): the bytes compared instead of decoded into a new string.
    const buf = this.#buf, last = this.#lastLiteral;
    if (len === this.#lastLiteralLen) {
      let i = 0;
      while (i < len && buf[start + i] === last[i]) i++;
      if (i === len) return this.#lastLiteralText;
    }
    const text = huffmanDecode(buf, start, end);
    last.set(buf.subarray(start, end));
    this.#lastLiteralLen = len;
    this.#lastLiteralText = text;
    return text;
  }

  /** The last Huffman-coded literal of at most LITERAL_CACHE_MAX octets and its decoded text. */
  readonly #lastLiteral = new Uint8Array(LITERAL_CACHE_MAX);
  #lastLiteralLen = -1;
  #lastLiteralText = "";

  /** Like #string but only validates (Huffman padding/EOS rules still apply) and advances. */
  #skipString(): void {
    if (this.#pos >= this.#buf.length) throw new HpackError("truncated block: string literal expected");
    const huffman = (this.#buf[this.#pos] & 0x80) !== 0;
    const len = this.#int(7);
    const start = this.#pos;
    const end = start + len;
    if (end > this.#buf.length) throw new HpackError("string literal length exceeds the block");
    this.#pos = end;
    if (huffman) huffmanValidate(this.#buf, start, end);
  }
}

// ---------------------------------------------------------------------------------------------
// Encoder
// ---------------------------------------------------------------------------------------------

/**
 * Always sent "never indexed" (§7.1.3): credentials, and set-cookie, whose values are per-user and
 * rarely repeat on a connection anyway.
 */
const NEVER_INDEX = new Set(["authorization", "proxy-authorization", "set-cookie"]);
/** Short cookies have little entropy and are guessable by CRIME-style probing (§7.1.3). */
const COOKIE_NEVER_INDEX_BELOW = 20;
/**
 * Indexing these would only churn the dynamic table: their values are (nearly) unique per message.
 * They are still sent with a static/dynamic name index, just without adding an entry.
 */
const NO_INDEX = new Set([
  "content-length",
  "etag",
  "if-modified-since",
  "if-none-match",
  "if-unmodified-since",
  "last-modified",
  "age",
  "content-range",
  "range",
  "x-request-id",
  "traceparent",
]);

export interface HpackEncoderOptions {
  /**
   * Ceiling on the dynamic table size this encoder uses, whatever the peer allows (memory bound).
   * Default 4096. The effective size is min(this, peer's SETTINGS_HEADER_TABLE_SIZE).
   */
  maxTableSize?: number;
  /** Use Huffman coding for a string when it is shorter than the raw octets. Default true. */
  huffman?: boolean;
}

interface NameRefs {
  /** Sequence number of the newest dynamic entry with this name. */
  latest: number;
  /** value → sequence number of the newest entry with exactly this (name, value). */
  values: Map<string, number>;
}

export class HpackEncoder {
  readonly #table: DynamicTable;
  readonly #cap: number;
  readonly #huffman: boolean;
  /** name → dynamic entries, kept in sync through the table's eviction hook. */
  readonly #byName = new Map<string, NameRefs>();
  /** Smallest table size chosen since the last block, or -1 when no size update is pending. */
  #pendingMin = -1;
  #out = new Uint8Array(512);
  #pos = 0;

  constructor(opts: HpackEncoderOptions = {}) {
    this.#cap = opts.maxTableSize ?? DEFAULT_HEADER_TABLE_SIZE;
    checkSize("maxTableSize", this.#cap);
    this.#huffman = opts.huffman ?? true;
    // The peer's decoder starts at the protocol default of 4096 (RFC 9113 §6.5.2).
    const initial = Math.min(this.#cap, DEFAULT_HEADER_TABLE_SIZE);
    this.#table = new DynamicTable(DEFAULT_HEADER_TABLE_SIZE);
    this.#table.onEvict = (name, value, seq) => this.#forget(name, value, seq);
    if (initial !== DEFAULT_HEADER_TABLE_SIZE) this.#resize(initial);
  }

  /**
   * The peer's SETTINGS_HEADER_TABLE_SIZE changed (call when its SETTINGS frame is processed). If our
   * effective size changes, the next block starts with a size update — the smallest size chosen in
   * between first, then the final one, as §4.2 requires when it changed more than once.
   */
  setPeerMaxTableSize(n: number): void {
    checkSize("peer SETTINGS_HEADER_TABLE_SIZE", n);
    const size = Math.min(n, this.#cap);
    if (size !== this.#table.maxSize) this.#resize(size);
  }

  /** Current dynamic table size in octets (for tests and metrics). */
  get dynamicTableSize(): number {
    return this.#table.size;
  }

  /**
   * Encodes a header list into one header block. Names must already be lowercase and all strings
   * latin1 (char codes ≤ 0xFF; higher code units are truncated to their low octet).
   */
  encode(fields: readonly HeaderField[]): Uint8Array {
    return this.encodeView(fields).slice();
  }

  /**
   * encode() without the copy: the block is a view of the encoder's buffer, valid only until the
   * next call (for a caller that copies it into its output at once).
   */
  encodeView(fields: readonly HeaderField[]): Uint8Array {
    this.#begin();
    for (let i = 0; i < fields.length; i++) {
      const f = fields[i];
      this.#field(f[0], f[1], f[2] === true);
    }
    return this.#out.subarray(0, this.#pos);
  }

  /**
   * encodeView() of a flat list `[name0, value0, name1, value1, …]` (none marked never-indexed
   * beyond what the encoder decides itself), with neither a pair array per field nor a view:
   * returns the block's length, and the block is that many octets at the start of `lastBlock`,
   * valid only until the next call (the per-response path copies it into its frames at once).
   */
  encodeFlat(list: readonly string[]): number {
    this.#begin();
    for (let i = 0; i + 1 < list.length; i += 2) this.#field(list[i], list[i + 1], false);
    return this.#pos;
  }

  /** The buffer holding the block the last encode call produced (it may be replaced as it grows). */
  get lastBlock(): Uint8Array {
    return this.#out;
  }

  /** Starts a block: the pending dynamic table size update(s) first (§4.2). */
  #begin(): void {
    this.#pos = 0;
    if (this.#pendingMin >= 0) {
      this.#ensure(12);
      if (this.#pendingMin < this.#table.maxSize) this.#int(0x20, 5, this.#pendingMin);
      this.#int(0x20, 5, this.#table.maxSize);
      this.#pendingMin = -1;
    }
  }

  #field(name: string, value: string, neverIndex: boolean): void {
    // Worst case: 1 + 5 octets of index/flags, 2 × 5 octets of length prefixes, raw strings.
    this.#ensure(16 + name.length + value.length);
    const table = this.#table;
    const stat = STATIC_BY_NAME.get(name);
    const sensitive = neverIndex || NEVER_INDEX.has(name) ||
      (name === "cookie" && value.length < COOKIE_NEVER_INDEX_BELOW);
    const dyn = this.#byName.get(name);

    if (!sensitive) {
      // §6.1: a full match costs one or two octets.
      const s = stat?.values.get(value);
      if (s !== undefined) return this.#int(0x80, 7, s);
      const seq = dyn?.values.get(value);
      if (seq !== undefined) return this.#int(0x80, 7, STATIC_COUNT + table.inserted - seq);
    }

    const nameIndex = stat !== undefined
      ? stat.index
      : dyn !== undefined
      ? STATIC_COUNT + table.inserted - dyn.latest
      : 0;

    if (sensitive) {
      this.#int(0x10, 4, nameIndex); // §6.2.3
    } else if (
      !NO_INDEX.has(name) && (name.length + value.length + ENTRY_OVERHEAD) * 4 <= table.maxSize * 3
    ) {
      // §6.2.1. Entries bigger than 3/4 of the table are not worth flushing everything else for.
      this.#int(0x40, 6, nameIndex);
      if (nameIndex === 0) this.#string(name);
      this.#string(value);
      this.#remember(name, value);
      return;
    } else {
      this.#int(0x00, 4, nameIndex); // §6.2.2
    }
    if (nameIndex === 0) this.#string(name);
    this.#string(value);
  }

  #remember(name: string, value: string): void {
    // #field only indexes entries of at most 3/4 of the table, so this always stores the entry
    // (after evicting, and #forget-ing, older ones as needed).
    this.#table.add(name, value);
    const seq = this.#table.inserted - 1;
    let refs = this.#byName.get(name);
    if (refs === undefined) this.#byName.set(name, refs = { latest: seq, values: new Map() });
    refs.latest = seq;
    refs.values.set(value, seq);
  }

  #forget(name: string, value: string, seq: number): void {
    const refs = this.#byName.get(name);
    if (refs === undefined) return;
    if (refs.values.get(value) === seq) refs.values.delete(value);
    // FIFO eviction: if the newest entry with this name is going, every older one has gone already.
    if (refs.latest === seq) this.#byName.delete(name);
  }

  #resize(size: number): void {
    this.#table.resize(size);
    this.#pendingMin = this.#pendingMin < 0 ? size : Math.min(this.#pendingMin, size);
  }

  /** §5.1: writes `value` with an N-bit prefix; `flags` are the representation's high bits. */
  #int(flags: number, prefixBits: number, value: number): void {
    const out = this.#out;
    const mask = (1 << prefixBits) - 1;
    if (value < mask) {
      out[this.#pos++] = flags | value;
      return;
    }
    out[this.#pos++] = flags | mask;
    value -= mask;
    while (value >= 0x80) {
      out[this.#pos++] = (value & 0x7f) | 0x80;
      value >>>= 7;
    }
    out[this.#pos++] = value;
  }

  /** §5.2: Huffman when it is strictly shorter, raw octets otherwise. */
  #string(s: string): void {
    if (this.#huffman && s.length > 0) {
      const hlen = huffmanEncodedLength(s);
      if (hlen < s.length) {
        this.#int(0x80, 7, hlen);
        this.#pos = huffmanEncodeInto(s, this.#out, this.#pos);
        return;
      }
    }
    this.#int(0x00, 7, s.length);
    const out = this.#out;
    let pos = this.#pos;
    for (let i = 0; i < s.length; i++) out[pos++] = s.charCodeAt(i) & 0xff;
    this.#pos = pos;
  }

  #ensure(extra: number): void {
    const need = this.#pos + extra;
    if (need <= this.#out.length) return;
    let size = this.#out.length * 2;
    while (size < need) size *= 2;
    const out = new Uint8Array(size);
    out.set(this.#out.subarray(0, this.#pos));
    this.#out = out;
  }
}

function checkSize(what: string, n: number): void {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) {
    throw new RangeError(`${what} must be a uint32, got ${n}`);
  }
}
