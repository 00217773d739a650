/**
 * Dependency-free string hashes for the hashing algorithms (maglev, ring_hash,
 * session_affinity) and the request hash-key extraction they share.
 *
 * `hash32` is FNV-1a (32-bit) over the string's UTF-8 bytes, finished with murmur3's fmix32.
 * FNV-1a alone is fast but mixes its last bytes poorly, and backend keys differ only in a few
 * trailing characters ("…:8081" vs "…:8082"); fmix32 gives full avalanche. A seed XORed into
 * the offset basis yields further, independent-enough hashes (maglev needs two per backend).
 * It is deliberately simple so the XDP side can reproduce it byte for byte in C:
 *
 *     uint32_t eg_hash32(const uint8_t *s, size_t n, uint32_t seed) {
 *       uint32_t h = 2166136261u ^ seed;
 *       for (size_t i = 0; i < n; i++) { h ^= s[i]; h *= 16777619u; }
 *       h ^= h >> 16; h *= 0x85ebca6bu; h ^= h >> 13; h *= 0xc2b2ae35u; h ^= h >> 16;
 *       return h;
 *     }
 *
 * `hash64Hex` is plain FNV-1a 64, used for opaque affinity tokens. Neither hash is
 * cryptographic: they spread keys, they do not keep secrets.
 */

import type { PickRequest } from "./picker.ts";

const FNV32_OFFSET = 0x811c9dc5;
const FNV32_PRIME = 0x01000193;

/**
 * FNV-1a over the UTF-8 encoding of `s`, encoded inline because TextEncoder would allocate
 * per request. Lone surrogates encode as U+FFFD, as TextEncoder does, so C sees the same bytes.
 */
function fnv1a32Utf8(s: string, h: number): number {
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) {
      h = Math.imul(h ^ c, FNV32_PRIME);
      continue;
    }
    if (c < 0x800) {
      h = Math.imul(h ^ (0xc0 | (c >> 6)), FNV32_PRIME);
      h = Math.imul(h ^ (0x80 | (c & 0x3f)), FNV32_PRIME);
      continue;
    }
    if (c >= 0xd800 && c <= 0xdfff) {
      const d = i + 1 < s.length ? s.charCodeAt(i + 1) : 0;
      if (c <= 0xdbff && d >= 0xdc00 && d <= 0xdfff) {
        const cp = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
        i++;
        h = Math.imul(h ^ (0xf0 | (cp >> 18)), FNV32_PRIME);
        h = Math.imul(h ^ (0x80 | ((cp >> 12) & 0x3f)), FNV32_PRIME);
        h = Math.imul(h ^ (0x80 | ((cp >> 6) & 0x3f)), FNV32_PRIME);
        h = Math.imul(h ^ (0x80 | (cp & 0x3f)), FNV32_PRIME);
        continue;
      }
      c = 0xfffd;
    }
    h = Math.imul(h ^ (0xe0 | (c >> 12)), FNV32_PRIME);
    h = Math.imul(h ^ (0x80 | ((c >> 6) & 0x3f)), FNV32_PRIME);
    h = Math.imul(h ^ (0x80 | (c & 0x3f)), FNV32_PRIME);
  }
  return h;
}

/** Plain FNV-1a 32 of the UTF-8 bytes of `s` (offset basis XOR `seed`), unsigned. */
export function fnv1a32(s: string, seed = 0): number {
  return fnv1a32Utf8(s, (FNV32_OFFSET ^ seed) | 0) >>> 0;
}

/** murmur3's 32-bit finaliser: every input bit affects every output bit. */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The balancer's string hash: fmix32(FNV-1a 32 with seed), unsigned 32-bit. See the C above. */
export function hash32(s: string, seed = 0): number {
  return fmix32(fnv1a32Utf8(s, (FNV32_OFFSET ^ seed) | 0));
}

/**
 * FNV-1a 64 of the UTF-8 bytes of `s` as 16 lower-case hex digits. 64-bit arithmetic is done
 * in two 32-bit halves: the prime is 2^40 + 0x1b3, so h * p = h * 0x1b3 + (h << 40).
 */
export function hash64Hex(s: string): string {
  let hi = 0xcbf29ce4;
  let lo = 0x84222325;
  const bytes = new TextEncoder().encode(s);
  for (let i = 0; i < bytes.length; i++) {
    lo = (lo ^ bytes[i]) >>> 0;
    const l = lo * 0x1b3; // < 2^41: exact in a double
    hi = (Math.imul(hi, 0x1b3) + Math.floor(l / 0x100000000) + (lo << 8)) >>> 0;
    lo = l >>> 0;
  }
  return hi.toString(16).padStart(8, "0") + lo.toString(16).padStart(8, "0");
}

/** Reads the hash key of a request; built once per Picker so the hot path does no parsing. */
export type HashKeyReader = (req: PickRequest) => string;

const byClientIp: HashKeyReader = (req) => req.clientIp;

/**
 * Compiles a `hash_key` setting (`header:NAME` | `cookie:NAME` | `client_ip`, default
 * client_ip). A missing or empty header/cookie falls back to the client IP, so such clients
 * still spread across backends instead of all landing on the hash of "".
 */
export function hashKeyReader(hashKey?: string): HashKeyReader {
  if (hashKey === undefined || hashKey === "" || hashKey === "client_ip") return byClientIp;
  if (hashKey.startsWith("header:") && hashKey.length > 7) {
    const name = hashKey.slice(7).toLowerCase();
    return (req) => req.header(name) || req.clientIp;
  }
  if (hashKey.startsWith("cookie:") && hashKey.length > 7) {
    const name = hashKey.slice(7);
    return (req) => req.cookie(name) || req.clientIp;
  }
  throw new Error(`hash_key '${hashKey}' is not header:NAME, cookie:NAME or client_ip`);
}

/** The hash key of one request (see hashKeyReader; pickers compile the setting once instead). */
export function requestHashKey(req: PickRequest, hashKey?: string): string {
  if (hashKey === undefined || hashKey === "" || hashKey === "client_ip") return req.clientIp;
  return hashKeyReader(hashKey)(req);
}
