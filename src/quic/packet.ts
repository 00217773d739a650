/**
 * QUIC packet headers, as far as a load balancer may read them without keys: the invariant
 * fields (RFC 8999) plus the v1 / v2 long-header types (RFC 9000 §17.2, RFC 9369 §3.2). Used by
 * the Mode A passthrough (passthrough.ts) to route datagrams by Destination Connection ID.
 *
 * Nothing here throws on bad input: a datagram that is not a QUIC packet gives `{ ok: false }`
 * with a reason, so the relay can count and drop it.
 *
 * The routing hash is eg_hash32 (src/balancer/hash.ts) over the raw CID bytes, seed 0, so the
 * XDP fast path can compute the same Maglev slot in C:
 *
 *     slot = eg_hash32(dcid, dcid_len, 0) % M
 */

import { fmix32 } from "../balancer/hash.ts";

export const QUIC_V1 = 0x00000001;
export const QUIC_V2 = 0x6b3343cf;
/** RFC 9000 §17.2: a v1 (and v2) connection ID is at most 20 bytes. */
export const MAX_CID_LENGTH = 20;
/** RFC 9000 §14.1: a client's Initial travels in a datagram of at least 1200 bytes. */
export const MIN_INITIAL_DATAGRAM = 1200;
/** RFC 9000 §7.2: the client's first Destination Connection ID is at least 8 bytes. */
export const MIN_INITIAL_DCID = 8;

export type PacketKind =
  | "initial"
  | "0rtt"
  | "handshake"
  | "retry"
  | "version_negotiation"
  /** A long header of a version we do not know: only the invariant fields are read. */
  | "long_unknown"
  | "short";

export interface QuicHeader {
  ok: true;
  kind: PacketKind;
  long: boolean;
  /** 0 for Version Negotiation; undefined for short headers. */
  version?: number;
  dcid: Uint8Array;
  /** Long headers only. */
  scid?: Uint8Array;
  /** Initial only. */
  token?: Uint8Array;
  /** Offset of the byte after this packet (coalesced packets may follow); datagram length if unknown. */
  end: number;
}

export interface ParseFailure {
  ok: false;
  reason: "empty" | "truncated" | "cid_too_long" | "bad_length";
}

/** v1 long-header type bits → kind (RFC 9000 Table 5). */
const V1_TYPES: readonly PacketKind[] = ["initial", "0rtt", "handshake", "retry"];
/** v2 changes the type bits (RFC 9369 §3.2): Initial 0b01, 0-RTT 0b10, Handshake 0b11, Retry 0b00. */
const V2_TYPES: readonly PacketKind[] = ["retry", "initial", "0rtt", "handshake"];

/** The long-header type bits of `kind` in `version` (for building packets in tests and tools). */
export function longTypeBits(version: number, kind: "initial" | "0rtt" | "handshake" | "retry"): number {
  return (version === QUIC_V2 ? V2_TYPES : V1_TYPES).indexOf(kind);
}

/** RFC 9000 §16 variable-length integer at `off`: [value, next offset], or undefined if truncated. */
export function readVarint(b: Uint8Array, off: number): [number, number] | undefined {
  if (off >= b.length) return undefined;
  const len = 1 << (b[off] >> 6);
  if (off + len > b.length) return undefined;
  let v = b[off] & 0x3f;
  for (let i = 1; i < len; i++) v = v * 256 + b[off + i]; // up to 2^62: exact enough for lengths
  return [v, off + len];
}

/**
 * Reads the header of the first packet in a datagram. `shortDcidLength` is the length of the
 * connection IDs the servers choose: a short header does not carry it (RFC 9000 §17.3).
 */
export function parseHeader(b: Uint8Array, shortDcidLength: number): QuicHeader | ParseFailure {
  if (b.length === 0) return { ok: false, reason: "empty" };
  const first = b[0];
  if ((first & 0x80) === 0) {
    if (b.length < 1 + shortDcidLength) return { ok: false, reason: "truncated" };
    return { ok: true, kind: "short", long: false, dcid: b.subarray(1, 1 + shortDcidLength), end: b.length };
  }
  if (b.length < 7) return { ok: false, reason: "truncated" };
  const version = ((b[1] << 24) | (b[2] << 16) | (b[3] << 8) | b[4]) >>> 0;
  const known = version === QUIC_V1 || version === QUIC_V2;
  let off = 5;
  const dcidLen = b[off++];
  if (known && dcidLen > MAX_CID_LENGTH) return { ok: false, reason: "cid_too_long" };
  if (off + dcidLen + 1 > b.length) return { ok: false, reason: "truncated" };
  const dcid = b.subarray(off, off + dcidLen);
  off += dcidLen;
  const scidLen = b[off++];
  if (known && scidLen > MAX_CID_LENGTH) return { ok: false, reason: "cid_too_long" };
  if (off + scidLen > b.length) return { ok: false, reason: "truncated" };
  const scid = b.subarray(off, off + scidLen);
  off += scidLen;
  if (version === 0) {
    return { ok: true, kind: "version_negotiation", long: true, version, dcid, scid, end: b.length };
  }
  if (!known) return { ok: true, kind: "long_unknown", long: true, version, dcid, scid, end: b.length };
  const kind = (version === QUIC_V2 ? V2_TYPES : V1_TYPES)[(first >> 4) & 0x03];
  if (kind === "retry") {
    // Retry Token + 16-byte Retry Integrity Tag (RFC 9001 §5.8): at least the tag must be there.
    if (b.length - off < 16) return { ok: false, reason: "truncated" };
    return { ok: true, kind, long: true, version, dcid, scid, end: b.length };
  }
  let token: Uint8Array | undefined;
  if (kind === "initial") {
    const t = readVarint(b, off);
    if (!t) return { ok: false, reason: "truncated" };
    if (t[1] + t[0] > b.length) return { ok: false, reason: "truncated" };
    token = b.subarray(t[1], t[1] + t[0]);
    off = t[1] + t[0];
  }
  const l = readVarint(b, off);
  if (!l) return { ok: false, reason: "truncated" };
  // Length covers the packet number (1-4 bytes) and the protected payload (≥ 16-byte AEAD tag).
  if (l[0] < 1 + 16) return { ok: false, reason: "bad_length" };
  const end = l[1] + l[0];
  if (end > b.length) return { ok: false, reason: "truncated" };
  const h: QuicHeader = { ok: true, kind, long: true, version, dcid, scid, end };
  if (token) h.token = token;
  return h;
}

/** eg_hash32 over raw bytes (FNV-1a 32 with seed, then fmix32): the C in hash.ts, byte for byte. */
export function hashBytes(b: Uint8Array, seed = 0): number {
  let h = (0x811c9dc5 ^ seed) | 0;
  for (let i = 0; i < b.length; i++) h = Math.imul(h ^ b[i], 0x01000193);
  return fmix32(h);
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

/** A connection ID as a map key (lower-case hex; "" for the empty CID). */
export function cidKey(cid: Uint8Array): string {
  let s = "";
  for (let i = 0; i < cid.length; i++) s += HEX[cid[i]];
  return s;
}
