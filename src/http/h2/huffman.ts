/**
 * The HPACK Huffman code: RFC 7541 §5.2 (string literal representation) and Appendix B (the code).
 *
 * Pure, no I/O. Header octets are handled as "latin1" strings — one UTF-16 code unit per octet, value
 * 0..255 — because HTTP field values are octets, not text (RFC 9110 §5.5); see bytesToLatin1 below.
 *
 * Encoding walks the 257-entry code table with a small bit accumulator. Decoding uses a byte-at-a-time
 * state machine built once at module load: the states are the 256 internal nodes of the code tree, and
 * for every (state, input byte) pair the table says which node we end in, which symbols (at most two:
 * the shortest code is 5 bits) were completed on the way, whether EOS was hit, and whether stopping
 * there is legal. Decoding is then one table load per input byte with no per-bit work.
 */

/**
 * RFC 7541 Appendix B, typed in as [code (LSB-aligned), bit length] per symbol 0..255, then EOS (256).
 * The code is canonical (codes of equal length are consecutive in symbol order, shorter codes sort
 * first), which tests/unit/h2/huffman.test.ts checks along with the Kraft sum, so a typo in either
 * column is caught rather than silently mis-decoding a rare octet.
 */
const CODE_TABLE: ReadonlyArray<readonly [number, number]> = [
  [0x1ff8, 13],
  [0x7fffd8, 23],
  [0xfffffe2, 28],
  [0xfffffe3, 28], // 0-3
  [0xfffffe4, 28],
  [0xfffffe5, 28],
  [0xfffffe6, 28],
  [0xfffffe7, 28], // 4-7
  [0xfffffe8, 28],
  [0xffffea, 24],
  [0x3ffffffc, 30],
  [0xfffffe9, 28], // 8-11
  [0xfffffea, 28],
  [0x3ffffffd, 30],
  [0xfffffeb, 28],
  [0xfffffec, 28], // 12-15
  [0xfffffed, 28],
  [0xfffffee, 28],
  [0xfffffef, 28],
  [0xffffff0, 28], // 16-19
  [0xffffff1, 28],
  [0xffffff2, 28],
  [0x3ffffffe, 30],
  [0xffffff3, 28], // 20-23
  [0xffffff4, 28],
  [0xffffff5, 28],
  [0xffffff6, 28],
  [0xffffff7, 28], // 24-27
  [0xffffff8, 28],
  [0xffffff9, 28],
  [0xffffffa, 28],
  [0xffffffb, 28], // 28-31
  [0x14, 6],
  [0x3f8, 10],
  [0x3f9, 10],
  [0xffa, 12], // ' ' ! " #
  [0x1ff9, 13],
  [0x15, 6],
  [0xf8, 8],
  [0x7fa, 11], // $ % & '
  [0x3fa, 10],
  [0x3fb, 10],
  [0xf9, 8],
  [0x7fb, 11], // ( ) * +
  [0xfa, 8],
  [0x16, 6],
  [0x17, 6],
  [0x18, 6], // , - . /
  [0x0, 5],
  [0x1, 5],
  [0x2, 5],
  [0x19, 6], // 0 1 2 3
  [0x1a, 6],
  [0x1b, 6],
  [0x1c, 6],
  [0x1d, 6], // 4 5 6 7
  [0x1e, 6],
  [0x1f, 6],
  [0x5c, 7],
  [0xfb, 8], // 8 9 : ;
  [0x7ffc, 15],
  [0x20, 6],
  [0xffb, 12],
  [0x3fc, 10], // < = > ?
  [0x1ffa, 13],
  [0x21, 6],
  [0x5d, 7],
  [0x5e, 7], // @ A B C
  [0x5f, 7],
  [0x60, 7],
  [0x61, 7],
  [0x62, 7], // D E F G
  [0x63, 7],
  [0x64, 7],
  [0x65, 7],
  [0x66, 7], // H I J K
  [0x67, 7],
  [0x68, 7],
  [0x69, 7],
  [0x6a, 7], // L M N O
  [0x6b, 7],
  [0x6c, 7],
  [0x6d, 7],
  [0x6e, 7], // P Q R S
  [0x6f, 7],
  [0x70, 7],
  [0x71, 7],
  [0x72, 7], // T U V W
  [0xfc, 8],
  [0x73, 7],
  [0xfd, 8],
  [0x1ffb, 13], // X Y Z [
  [0x7fff0, 19],
  [0x1ffc, 13],
  [0x3ffc, 14],
  [0x22, 6], // \ ] ^ _
  [0x7ffd, 15],
  [0x3, 5],
  [0x23, 6],
  [0x4, 5], // ` a b c
  [0x24, 6],
  [0x5, 5],
  [0x25, 6],
  [0x26, 6], // d e f g
  [0x27, 6],
  [0x6, 5],
  [0x74, 7],
  [0x75, 7], // h i j k
  [0x28, 6],
  [0x29, 6],
  [0x2a, 6],
  [0x7, 5], // l m n o
  [0x2b, 6],
  [0x76, 7],
  [0x2c, 6],
  [0x8, 5], // p q r s
  [0x9, 5],
  [0x2d, 6],
  [0x77, 7],
  [0x78, 7], // t u v w
  [0x79, 7],
  [0x7a, 7],
  [0x7b, 7],
  [0x7ffe, 15], // x y z {
  [0x7fc, 11],
  [0x3ffd, 14],
  [0x1ffd, 13],
  [0xffffffc, 28], // | } ~ DEL
  [0xfffe6, 20],
  [0x3fffd2, 22],
  [0xfffe7, 20],
  [0xfffe8, 20], // 128-131
  [0x3fffd3, 22],
  [0x3fffd4, 22],
  [0x3fffd5, 22],
  [0x7fffd9, 23], // 132-135
  [0x3fffd6, 22],
  [0x7fffda, 23],
  [0x7fffdb, 23],
  [0x7fffdc, 23], // 136-139
  [0x7fffdd, 23],
  [0x7fffde, 23],
  [0xffffeb, 24],
  [0x7fffdf, 23], // 140-143
  [0xffffec, 24],
  [0xffffed, 24],
  [0x3fffd7, 22],
  [0x7fffe0, 23], // 144-147
  [0xffffee, 24],
  [0x7fffe1, 23],
  [0x7fffe2, 23],
  [0x7fffe3, 23], // 148-151
  [0x7fffe4, 23],
  [0x1fffdc, 21],
  [0x3fffd8, 22],
  [0x7fffe5, 23], // 152-155
  [0x3fffd9, 22],
  [0x7fffe6, 23],
  [0x7fffe7, 23],
  [0xffffef, 24], // 156-159
  [0x3fffda, 22],
  [0x1fffdd, 21],
  [0xfffe9, 20],
  [0x3fffdb, 22], // 160-163
  [0x3fffdc, 22],
  [0x7fffe8, 23],
  [0x7fffe9, 23],
  [0x1fffde, 21], // 164-167
  [0x7fffea, 23],
  [0x3fffdd, 22],
  [0x3fffde, 22],
  [0xfffff0, 24], // 168-171
  [0x1fffdf, 21],
  [0x3fffdf, 22],
  [0x7fffeb, 23],
  [0x7fffec, 23], // 172-175
  [0x1fffe0, 21],
  [0x1fffe1, 21],
  [0x3fffe0, 22],
  [0x1fffe2, 21], // 176-179
  [0x7fffed, 23],
  [0x3fffe1, 22],
  [0x7fffee, 23],
  [0x7fffef, 23], // 180-183
  [0xfffea, 20],
  [0x3fffe2, 22],
  [0x3fffe3, 22],
  [0x3fffe4, 22], // 184-187
  [0x7ffff0, 23],
  [0x3fffe5, 22],
  [0x3fffe6, 22],
  [0x7ffff1, 23], // 188-191
  [0x3ffffe0, 26],
  [0x3ffffe1, 26],
  [0xfffeb, 20],
  [0x7fff1, 19], // 192-195
  [0x3fffe7, 22],
  [0x7ffff2, 23],
  [0x3fffe8, 22],
  [0x1ffffec, 25], // 196-199
  [0x3ffffe2, 26],
  [0x3ffffe3, 26],
  [0x3ffffe4, 26],
  [0x7ffffde, 27], // 200-203
  [0x7ffffdf, 27],
  [0x3ffffe5, 26],
  [0xfffff1, 24],
  [0x1ffffed, 25], // 204-207
  [0x7fff2, 19],
  [0x1fffe3, 21],
  [0x3ffffe6, 26],
  [0x7ffffe0, 27], // 208-211
  [0x7ffffe1, 27],
  [0x3ffffe7, 26],
  [0x7ffffe2, 27],
  [0xfffff2, 24], // 212-215
  [0x1fffe4, 21],
  [0x1fffe5, 21],
  [0x3ffffe8, 26],
  [0x3ffffe9, 26], // 216-219
  [0xffffffd, 28],
  [0x7ffffe3, 27],
  [0x7ffffe4, 27],
  [0x7ffffe5, 27], // 220-223
  [0xfffec, 20],
  [0xfffff3, 24],
  [0xfffed, 20],
  [0x1fffe6, 21], // 224-227
  [0x3fffe9, 22],
  [0x1fffe7, 21],
  [0x1fffe8, 21],
  [0x7ffff3, 23], // 228-231
  [0x3fffea, 22],
  [0x3fffeb, 22],
  [0x1ffffee, 25],
  [0x1ffffef, 25], // 232-235
  [0xfffff4, 24],
  [0xfffff5, 24],
  [0x3ffffea, 26],
  [0x7ffff4, 23], // 236-239
  [0x3ffffeb, 26],
  [0x7ffffe6, 27],
  [0x3ffffec, 26],
  [0x3ffffed, 26], // 240-243
  [0x7ffffe7, 27],
  [0x7ffffe8, 27],
  [0x7ffffe9, 27],
  [0x7ffffea, 27], // 244-247
  [0x7ffffeb, 27],
  [0xffffffe, 28],
  [0x7ffffec, 27],
  [0x7ffffed, 27], // 248-251
  [0x7ffffee, 27],
  [0x7ffffef, 27],
  [0x7fffff0, 27],
  [0x3ffffee, 26], // 252-255
  [0x3fffffff, 30], // EOS (256)
];

/** Symbol index of EOS. It may appear only as (a prefix of) padding, never as a decoded symbol. */
export const EOS = 256;

/** Codes, LSB-aligned, indexed by symbol (0..256). Exported for the table self-checks in the tests. */
export const HUFFMAN_CODES: Uint32Array = new Uint32Array(257);
/** Code lengths in bits, indexed by symbol (0..256). */
export const HUFFMAN_LENGTHS: Uint8Array = new Uint8Array(257);
for (let s = 0; s < 257; s++) {
  HUFFMAN_CODES[s] = CODE_TABLE[s][0];
  HUFFMAN_LENGTHS[s] = CODE_TABLE[s][1];
}

/** Thrown for a malformed Huffman string; the HPACK layer turns it into COMPRESSION_ERROR. */
export class HuffmanError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "HuffmanError";
  }
}

// ---------------------------------------------------------------------------------------------
// Latin1 <-> octets. TextDecoder("latin1") is really windows-1252 (WHATWG Encoding maps that label),
// which rewrites 0x80-0x9F, so it cannot be used; String.fromCharCode.apply over a view is exact and,
// measured on Deno 2.9, the fastest option for header-sized strings.
// ---------------------------------------------------------------------------------------------

/** Maximum arguments passed to one fromCharCode.apply call (stays far from engine argument limits). */
const APPLY_CHUNK = 8192;

/** Octets [start, end) of `bytes` as a latin1 string (one char per octet). */
export function bytesToLatin1(bytes: Uint8Array, start = 0, end = bytes.length): string {
  const n = end - start;
  if (n <= 0) return "";
  if (n <= APPLY_CHUNK) {
    return String.fromCharCode.apply(null, bytes.subarray(start, end) as unknown as number[]);
  }
  const parts: string[] = [];
  for (let i = start; i < end; i += APPLY_CHUNK) {
    const j = Math.min(end, i + APPLY_CHUNK);
    parts.push(String.fromCharCode.apply(null, bytes.subarray(i, j) as unknown as number[]));
  }
  return parts.join("");
}

/** A latin1 string back to octets. Code units above 0xFF are truncated (`& 0xff`) — callers validate. */
export function latin1ToBytes(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i) & 0xff;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Encoder
// ---------------------------------------------------------------------------------------------

/** Exact number of octets the Huffman encoding of latin1 string `s` takes (RFC 7541 §5.2 padding included). */
export function huffmanEncodedLength(s: string): number {
  let bits = 0;
  for (let i = 0; i < s.length; i++) bits += HUFFMAN_LENGTHS[s.charCodeAt(i) & 0xff];
  return (bits + 7) >>> 3;
}

/**
 * Huffman-encodes latin1 string `s` into `out` at `pos`; returns the position after the last octet.
 * `out` must have huffmanEncodedLength(s) octets free from `pos`.
 */
export function huffmanEncodeInto(s: string, out: Uint8Array, pos: number): number {
  // `acc` holds fewer than 8 pending bits between symbols. Adding a code of up to 25 bits keeps the
  // value within 32 bits, so plain 32-bit shifts are exact; the few longer codes (26-30 bits, rare
  // octets) are fed in two pieces.
  let acc = 0;
  let bits = 0;
  for (let i = 0; i < s.length; i++) {
    const sym = s.charCodeAt(i) & 0xff;
    let code = HUFFMAN_CODES[sym];
    let len = HUFFMAN_LENGTHS[sym];
    if (len > 25) {
      const hiLen = len - 16;
      acc = (acc << hiLen) | (code >>> 16);
      bits += hiLen;
      while (bits >= 8) {
        bits -= 8;
        out[pos++] = acc >>> bits;
      }
      acc &= (1 << bits) - 1;
      code &= 0xffff;
      len = 16;
    }
    acc = (acc << len) | code;
    bits += len;
    while (bits >= 8) {
      bits -= 8;
      out[pos++] = acc >>> bits;
    }
    acc &= (1 << bits) - 1;
  }
  if (bits > 0) {
    // Pad with the most significant bits of EOS, i.e. ones (RFC 7541 §5.2).
    out[pos++] = (acc << (8 - bits)) | (0xff >>> bits);
  }
  return pos;
}

/** Huffman-encodes latin1 string `s` into a new array. */
export function huffmanEncode(s: string): Uint8Array {
  const out = new Uint8Array(huffmanEncodedLength(s));
  huffmanEncodeInto(s, out, 0);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Decoder: code tree -> byte-wide state machine
// ---------------------------------------------------------------------------------------------

/**
 * The code tree. A complete prefix code with 257 leaves has exactly 256 internal nodes; node 0 is the
 * root. CHILD[node * 2 + bit] is either another internal node (>= 0) or a leaf encoded as -(symbol + 1).
 */
const CHILD = new Int16Array(512);
{
  let nodes = 1;
  for (let sym = 0; sym < 257; sym++) {
    const code = HUFFMAN_CODES[sym];
    const len = HUFFMAN_LENGTHS[sym];
    let node = 0;
    for (let i = len - 1; i > 0; i--) {
      const slot = node * 2 + ((code >>> i) & 1);
      if (CHILD[slot] === 0) {
        // 0 doubles as "unset" because the root is never anybody's child.
        if (nodes >= 256) throw new Error("huffman: code table is not a prefix code");
        CHILD[slot] = nodes++;
      } else if (CHILD[slot] < 0) {
        throw new Error("huffman: code table is not a prefix code");
      }
      node = CHILD[slot];
    }
    const slot = node * 2 + (code & 1);
    if (CHILD[slot] !== 0) throw new Error("huffman: code table is not a prefix code");
    CHILD[slot] = -(sym + 1);
  }
  if (nodes !== 256) throw new Error("huffman: code table is not complete");
}

// Entry layout of the transition table (one Uint32 per (state, byte)):
const NEXT_MASK = 0xff; // bits 0-7: state after the byte
const SYM1_SHIFT = 8; // bits 8-15: first symbol completed in this byte
const SYM2_SHIFT = 16; // bits 16-23: second symbol completed in this byte
const COUNT_SHIFT = 24; // bits 24-25: number of symbols completed (0..2)
const ACCEPT = 1 << 26; // the string may legally end after this byte
const FAIL = 1 << 27; // EOS was decoded inside the string

/**
 * Which states may end a string: the root (the last symbol ended on a byte boundary) and the nodes
 * reached from the root by 1..7 one-bits. Anything else is padding that is too long (> 7 bits,
 * RFC 7541 §5.2 "MUST be treated as a decoding error") or not a prefix of EOS (i.e. not all ones).
 * Since no symbol code of 7 bits or fewer is all ones, those nodes are all internal.
 */
const ACCEPTING = new Uint8Array(256);
{
  ACCEPTING[0] = 1;
  let node = 0;
  for (let depth = 1; depth <= 7; depth++) {
    node = CHILD[node * 2 + 1];
    ACCEPTING[node] = 1;
  }
}

const TRANSITIONS = new Uint32Array(256 * 256);
for (let state = 0; state < 256; state++) {
  for (let byte = 0; byte < 256; byte++) {
    let node = state;
    let count = 0;
    let entry = 0;
    for (let bit = 7; bit >= 0; bit--) {
      const child = CHILD[node * 2 + ((byte >>> bit) & 1)];
      if (child >= 0) {
        node = child;
        continue;
      }
      const sym = -child - 1;
      if (sym === EOS) {
        entry |= FAIL;
        break;
      }
      entry |= sym << (count === 0 ? SYM1_SHIFT : SYM2_SHIFT);
      count++;
      node = 0;
    }
    if ((entry & FAIL) === 0) {
      entry |= node | (count << COUNT_SHIFT);
      if (ACCEPTING[node]) entry |= ACCEPT;
    }
    TRANSITIONS[(state << 8) | byte] = entry >>> 0;
  }
}

/** Scratch for decoded octets, grown on demand and reused (decoding is synchronous, never re-entered). */
let scratch = new Uint8Array(4096);

/**
 * Runs the state machine over `src[start, end)`. If `out` is given, decoded octets are written there
 * (it must hold at least ((end - start) * 8 / 5) octets) and the count is returned; with `out` null the
 * input is only validated. Throws HuffmanError on EOS, over-long padding or padding that is not ones.
 */
function run(src: Uint8Array, start: number, end: number, out: Uint8Array | null): number {
  let state = 0;
  let entry = ACCEPT; // the empty string is valid
  let o = 0;
  for (let i = start; i < end; i++) {
    entry = TRANSITIONS[(state << 8) | src[i]];
    if (entry & FAIL) throw new HuffmanError("huffman: EOS symbol inside a string literal");
    if (out !== null) {
      const count = (entry >>> COUNT_SHIFT) & 3;
      if (count !== 0) {
        out[o++] = entry >>> SYM1_SHIFT;
        if (count === 2) out[o++] = entry >>> SYM2_SHIFT;
      }
    }
    state = entry & NEXT_MASK;
  }
  if ((entry & ACCEPT) === 0) {
    throw new HuffmanError("huffman: invalid padding (longer than 7 bits or not a prefix of EOS)");
  }
  return o;
}

/** Decodes the Huffman string in `src[start, end)` to a latin1 string. */
export function huffmanDecode(src: Uint8Array, start = 0, end = src.length): string {
  // Every symbol is at least 5 bits, so n input octets yield at most floor(8n / 5) output octets.
  const max = Math.floor(((end - start) * 8) / 5);
  if (scratch.length < max) scratch = new Uint8Array(Math.max(max, scratch.length * 2));
  const n = run(src, start, end, scratch);
  return bytesToLatin1(scratch, 0, n);
}

/** Validates the Huffman string in `src[start, end)` without materialising it (for skipped literals). */
export function huffmanValidate(src: Uint8Array, start = 0, end = src.length): void {
  run(src, start, end, null);
}
