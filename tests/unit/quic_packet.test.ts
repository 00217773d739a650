/**
 * The QUIC header parser of the Mode A passthrough (src/quic/packet.ts), on hand-built
 * packets: long headers of v1 and v2 (whose type bits differ, RFC 9369 §3.2), Retry, Version
 * Negotiation, unknown versions, short headers, and truncated or garbage input, which must
 * come back as { ok: false } and never throw.
 */
import assert from "node:assert/strict";
import {
  cidKey,
  hashBytes,
  longTypeBits,
  parseHeader,
  QUIC_V1,
  QUIC_V2,
  readVarint,
} from "../../src/quic/packet.ts";
import { hash32 } from "../../src/balancer/hash.ts";

const DCID = Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]);
const SCID = Uint8Array.from([0xaa, 0xbb, 0xcc, 0xdd]);

function varint(n: number): number[] {
  if (n < 64) return [n];
  if (n < 16384) return [0x40 | (n >> 8), n & 0xff];
  return [0x80 | (n >>> 24), (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff];
}

function be32(v: number): number[] {
  return [(v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];
}

/** A long-header packet: header, then `payload` bytes of (fake) packet number + ciphertext. */
function longPacket(
  version: number,
  kind: "initial" | "0rtt" | "handshake",
  opts: { dcid?: Uint8Array; scid?: Uint8Array; token?: number[]; payload?: number } = {},
): Uint8Array {
  const dcid = opts.dcid ?? DCID, scid = opts.scid ?? SCID;
  const payload = opts.payload ?? 40;
  const out = [0xc0 | (longTypeBits(version, kind) << 4), ...be32(version), dcid.length, ...dcid];
  out.push(scid.length, ...scid);
  if (kind === "initial") out.push(...varint(opts.token?.length ?? 0), ...(opts.token ?? []));
  out.push(...varint(payload), ...new Array(payload).fill(0x5a));
  return Uint8Array.from(out);
}

Deno.test("v1 long headers: Initial (with token), 0-RTT, Handshake", () => {
  const init = longPacket(QUIC_V1, "initial", { token: [9, 9, 9] });
  const h = parseHeader(init, 8);
  assert.ok(h.ok);
  assert.equal(h.kind, "initial");
  assert.equal(h.version, QUIC_V1);
  assert.deepEqual([...h.dcid], [...DCID]);
  assert.deepEqual([...h.scid!], [...SCID]);
  assert.deepEqual([...h.token!], [9, 9, 9]);
  assert.equal(h.end, init.length);
  for (const kind of ["0rtt", "handshake"] as const) {
    const p = parseHeader(longPacket(QUIC_V1, kind), 8);
    assert.ok(p.ok);
    assert.equal(p.kind, kind);
  }
});

Deno.test("v2 long headers use their own type bits", () => {
  // The same first-byte bits mean different types in v1 and v2.
  assert.equal(longTypeBits(QUIC_V1, "initial"), 0);
  assert.equal(longTypeBits(QUIC_V2, "initial"), 1);
  assert.equal(longTypeBits(QUIC_V2, "retry"), 0);
  for (const kind of ["initial", "0rtt", "handshake"] as const) {
    const p = parseHeader(longPacket(QUIC_V2, kind), 8);
    assert.ok(p.ok);
    assert.equal(p.kind, kind);
    assert.equal(p.version, QUIC_V2);
  }
  // A v2 Handshake's type bits (0b11) mean Retry in v1: the version field decides.
  const asV1 = Uint8Array.from(longPacket(QUIC_V2, "handshake"));
  asV1.set(be32(QUIC_V1), 1);
  const p = parseHeader(asV1, 8);
  assert.ok(p.ok);
  assert.equal(p.kind, "retry");
});

Deno.test("coalesced packets: end points at the next one", () => {
  const a = longPacket(QUIC_V1, "initial", { payload: 30 });
  const b = longPacket(QUIC_V1, "handshake", { payload: 20 });
  const both = new Uint8Array(a.length + b.length);
  both.set(a);
  both.set(b, a.length);
  const h = parseHeader(both, 8);
  assert.ok(h.ok);
  assert.equal(h.end, a.length);
  const next = parseHeader(both.subarray(h.end), 8);
  assert.ok(next.ok);
  assert.equal(next.kind, "handshake");
});

Deno.test("Retry, Version Negotiation and unknown versions keep their CIDs", () => {
  const retry = Uint8Array.from([
    0xc0 | (longTypeBits(QUIC_V1, "retry") << 4),
    ...be32(QUIC_V1),
    4,
    ...SCID,
    8,
    ...DCID,
    ...new Array(10).fill(1), // token
    ...new Array(16).fill(2), // integrity tag
  ]);
  const r = parseHeader(retry, 8);
  assert.ok(r.ok);
  assert.equal(r.kind, "retry");
  assert.deepEqual([...r.scid!], [...DCID]);

  const vn = Uint8Array.from([0x80, 0, 0, 0, 0, 4, ...SCID, 8, ...DCID, ...be32(QUIC_V1), ...be32(QUIC_V2)]);
  const v = parseHeader(vn, 8);
  assert.ok(v.ok);
  assert.equal(v.kind, "version_negotiation");
  assert.equal(v.version, 0);
  assert.deepEqual([...v.dcid], [...SCID]);

  // RFC 8999: other versions may use longer CIDs; the invariants still give the DCID.
  const big = new Uint8Array(40).fill(7);
  const unknown = Uint8Array.from([0xc3, ...be32(0x1a2a3a4a), 40, ...big, 0, 1, 2, 3]);
  const u = parseHeader(unknown, 8);
  assert.ok(u.ok);
  assert.equal(u.kind, "long_unknown");
  assert.equal(u.dcid.length, 40);
});

Deno.test("short header: the DCID is server_cid_length bytes after the first byte", () => {
  const cid = Uint8Array.from([0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80]);
  const pkt = Uint8Array.from([0x41, ...cid, 1, 2, 3, 4, 5]);
  const h = parseHeader(pkt, 8);
  assert.ok(h.ok);
  assert.equal(h.kind, "short");
  assert.equal(h.long, false);
  assert.equal(cidKey(h.dcid), "1020304050607080");
  const zero = parseHeader(pkt, 0);
  assert.ok(zero.ok);
  assert.equal(zero.dcid.length, 0);
  assert.deepEqual(parseHeader(Uint8Array.from([0x41, 1, 2]), 8), { ok: false, reason: "truncated" });
});

Deno.test("truncated and garbage input is refused with a reason, never a throw", () => {
  assert.deepEqual(parseHeader(new Uint8Array(0), 8), { ok: false, reason: "empty" });
  const init = longPacket(QUIC_V1, "initial", { token: [1, 2, 3], payload: 64 });
  const reasons = new Set<string>();
  for (let n = 1; n < init.length; n++) {
    const r = parseHeader(init.subarray(0, n), 8);
    assert.equal(r.ok, false, `a ${n}-byte prefix of a ${init.length}-byte Initial parsed`);
    if (!r.ok) reasons.add(r.reason);
  }
  assert.deepEqual([...reasons].sort(), ["truncated"]);
  // A v1 CID longer than 20 bytes is invalid (RFC 9000 §17.2).
  const long = Uint8Array.from([0xc0, ...be32(QUIC_V1), 21, ...new Array(40).fill(0)]);
  assert.deepEqual(parseHeader(long, 8), { ok: false, reason: "cid_too_long" });
  // A Length too small for a packet number and an AEAD tag.
  assert.deepEqual(parseHeader(longPacket(QUIC_V1, "handshake", { payload: 3 }), 8), {
    ok: false,
    reason: "bad_length",
  });
  // Random bytes: whatever they parse as, no exception.
  let seed = 12345;
  const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 24;
  let refused = 0;
  for (let i = 0; i < 2000; i++) {
    const buf = Uint8Array.from({ length: rnd() % 64 }, rnd);
    const r = parseHeader(buf, 8);
    if (!r.ok) refused++;
    else assert.ok(r.end <= buf.length && r.dcid.length <= buf.length);
  }
  assert.ok(refused > 0);
});

Deno.test("varints and the routing hash", () => {
  assert.deepEqual(readVarint(Uint8Array.from([0x25]), 0), [37, 1]);
  assert.deepEqual(readVarint(Uint8Array.from([0x7b, 0xbd]), 0), [15293, 2]);
  assert.deepEqual(readVarint(Uint8Array.from([0x9d, 0x7f, 0x3e, 0x7d]), 0), [494878333, 4]);
  assert.equal(readVarint(Uint8Array.from([0x7b]), 0), undefined);
  // hashBytes is eg_hash32 over raw bytes: for ASCII it equals the balancer's string hash.
  const ascii = new TextEncoder().encode("127.0.0.1:4433");
  assert.equal(hashBytes(ascii, 0), hash32("127.0.0.1:4433", 0));
  assert.equal(hashBytes(ascii, 0x9e3779b9), hash32("127.0.0.1:4433", 0x9e3779b9));
  assert.notEqual(hashBytes(DCID), hashBytes(SCID));
});
