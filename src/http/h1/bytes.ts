/**
 * Byte helpers for the HTTP/1.1 codec. Header bytes are octets, not UTF-8: they are held as
 * latin1 strings (one char per byte) so obs-text survives a round trip unchanged.
 */

const utf8 = new TextDecoder();
const encoder = new TextEncoder();

/** Bytes [start, end) as a latin1 string. */
export function latin1(bytes: Uint8Array, start: number, end: number): string {
  const n = end - start;
  if (n <= 0) return "";
  if (n < 64) {
    let ascii = true;
    for (let i = start; i < end; i++) {
      if (bytes[i] > 0x7f) {
        ascii = false;
        break;
      }
    }
    if (ascii) return String.fromCharCode.apply(null, bytes.subarray(start, end) as unknown as number[]);
  }
  let ascii = true;
  for (let i = start; i < end; i++) {
    if (bytes[i] > 0x7f) {
      ascii = false;
      break;
    }
  }
  if (ascii) return utf8.decode(bytes.subarray(start, end));
  let s = "";
  for (let i = start; i < end; i += 4096) {
    s += String.fromCharCode.apply(null, bytes.subarray(i, Math.min(end, i + 4096)) as unknown as number[]);
  }
  return s;
}

/**
 * latin1() through a small direct-mapped cache of recent short strings. Header values repeat
 * from message to message (Host, Server, Content-Type, Content-Length, Connection, the
 * method…); hashing and comparing a few bytes costs a third of making a new string, and the
 * garbage collector sees none. Bounded: INTERN_SLOTS entries of at most INTERN_MAX bytes, a
 * colliding value simply replaces the entry (a flood of distinct values only misses).
 */
const INTERN_SLOTS = 1024;
const INTERN_MAX = 64;
const internStrings: (string | undefined)[] = new Array(INTERN_SLOTS);
// Each slot's bytes in one preallocated arena (slot × INTERN_MAX): a miss copies into it
// instead of allocating a typed array per value (a backing store each, costly in V8), and a
// hit compares bytes with bytes, faster than with the string's char codes.
const internArena = new Uint8Array(INTERN_SLOTS * INTERN_MAX);
const internLengths = new Uint8Array(INTERN_SLOTS);

export function latin1Cached(bytes: Uint8Array, start: number, end: number): string {
  const n = end - start;
  if (n > INTERN_MAX || n <= 0) return latin1(bytes, start, end);
  let h = n;
  for (let i = start; i < end; i++) h = (Math.imul(h, 31) + bytes[i]) | 0;
  const slot = (h ^ (h >>> 10)) & (INTERN_SLOTS - 1);
  const base = slot * INTERN_MAX;
  if (internLengths[slot] === n) {
    let i = 0;
    while (i < n && internArena[base + i] === bytes[start + i]) i++;
    if (i === n) return internStrings[slot]!;
  }
  const s = latin1(bytes, start, end);
  internArena.set(bytes.subarray(start, end), base);
  internLengths[slot] = n;
  internStrings[slot] = s;
  return s;
}

/** Writes a latin1 string into `out` at `off`; returns the new offset. `out` must have room. */
export function writeLatin1(s: string, out: Uint8Array, off: number): number {
  // Heads are almost always ASCII, where the native encoder beats a char loop by far. A
  // latin1 char above 0x7f takes two bytes in UTF-8, which the counts reveal; then the loop
  // rewrites the same bytes correctly.
  // At offset 0 (a head is usually the first thing pushed) the buffer itself: no view to make.
  const r = encoder.encodeInto(s, off === 0 ? out : out.subarray(off));
  if (r.read === s.length && r.written === s.length) return off + s.length;
  for (let i = 0; i < s.length; i++) out[off++] = s.charCodeAt(i) & 0xff;
  return off;
}

/** Whole latin1 string → bytes. ASCII goes through the native encoder. */
export function latin1Bytes(s: string): Uint8Array {
  for (let i = 0; i < s.length; i++) {
    if (s.charCodeAt(i) > 0x7f) {
      const out = new Uint8Array(s.length);
      writeLatin1(s, out, 0);
      return out;
    }
  }
  return encoder.encode(s);
}

/** Concatenates two byte arrays into a new one. */
export function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/** Writes all of `bytes`, looping over partial writes. */
export async function writeAll(
  w: { write(p: Uint8Array): Promise<number> },
  bytes: Uint8Array,
): Promise<void> {
  let off = 0;
  while (off < bytes.length) {
    off += await w.write(off === 0 ? bytes : bytes.subarray(off));
  }
}
