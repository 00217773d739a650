/**
 * HTTP/3 framing primitives: QUIC varints (RFC 9000 §16 and its Appendix A.1 examples), frame
 * encoding, SETTINGS validation (§7.2.4: duplicates and HTTP/2 identifiers are
 * H3_SETTINGS_ERROR), single-varint payloads, GREASE values.
 */
import assert from "node:assert/strict";
import {
  encodeFrame,
  encodeGoaway,
  encodeSettings,
  encodeVarint,
  errorName,
  frameHeader,
  FrameType,
  greaseType,
  H3,
  H3Error,
  isReservedH2FrameType,
  parseSettings,
  parseSingleVarint,
  readVarint,
  Setting,
  varintLength,
} from "../../../src/http/h3/frames.ts";

function hex(s: string): Uint8Array {
  const h = s.replace(/\s+/g, "");
  return new Uint8Array((h.match(/../g) ?? []).map((x) => parseInt(x, 16)));
}

function code(f: () => unknown): number {
  try {
    f();
  } catch (e) {
    if (e instanceof H3Error) return e.code;
    throw e;
  }
  throw new Error("expected an H3Error");
}

Deno.test("h3 frames: varint examples of RFC 9000 Appendix A.1", () => {
  const cases: Array<[string, number]> = [
    ["c2197c5eff14e88c", 151288809941952652],
    ["9d7f3e7d", 494878333],
    ["7bbd", 15293],
    ["25", 37],
    ["4025", 37], // non-minimal encodings are valid
  ];
  for (const [h, v] of cases) {
    const b = hex(h);
    assert.deepEqual(readVarint(b, 0, b.length), [v, b.length], h);
  }
  // Minimal encodings round-trip.
  for (const v of [0, 63, 64, 16383, 16384, 1073741823, 1073741824, 2 ** 53 - 1]) {
    const e = encodeVarint(v);
    assert.equal(e.length, varintLength(v));
    assert.deepEqual(readVarint(e, 0, e.length), [v, e.length]);
  }
  assert.equal(toHexStr(encodeVarint(494878333)), "9d7f3e7d");
  assert.equal(toHexStr(encodeVarint(15293)), "7bbd");
  // Cut short: null, never a wrong value.
  assert.equal(readVarint(hex("9d7f3e"), 0, 3), null);
  assert.equal(readVarint(hex(""), 0, 0), null);
});

function toHexStr(b: Uint8Array): string {
  return [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
}

Deno.test("h3 frames: frame encoding", () => {
  assert.equal(toHexStr(encodeFrame(FrameType.DATA, hex("aabb"))), "0002aabb");
  assert.equal(toHexStr(frameHeader(FrameType.HEADERS, 300)), "01412c");
  assert.equal(toHexStr(encodeGoaway(8)), "070108");
  assert.equal(
    toHexStr(encodeSettings([[Setting.QPACK_MAX_TABLE_CAPACITY, 4096], [Setting.QPACK_BLOCKED_STREAMS, 16]])),
    "0405" + "01" + "5000" + "07" + "10",
  );
});

Deno.test("h3 frames: SETTINGS parsing and its errors", () => {
  const s = parseSettings(hex("06 4400 01 5000 21 00 07 10"));
  assert.equal(s.get(Setting.MAX_FIELD_SECTION_SIZE), 1024);
  assert.equal(s.get(Setting.QPACK_MAX_TABLE_CAPACITY), 4096);
  assert.equal(s.get(0x21), 0); // GREASE identifier kept, ignored by callers
  assert.equal(s.get(Setting.QPACK_BLOCKED_STREAMS), 16);
  assert.equal(code(() => parseSettings(hex("01 00 01 00"))), H3.SETTINGS_ERROR); // duplicate
  for (const h2 of ["02", "03", "04", "05"]) {
    assert.equal(code(() => parseSettings(hex(`${h2} 00`))), H3.SETTINGS_ERROR, h2);
  }
  assert.equal(code(() => parseSettings(hex("01"))), H3.FRAME_ERROR); // value missing
  assert.equal(code(() => parseSettings(hex("01 40"))), H3.FRAME_ERROR); // value cut
});

Deno.test("h3 frames: single-varint payloads, reserved types, GREASE, names", () => {
  assert.equal(parseSingleVarint(hex("4004"), "GOAWAY"), 4);
  assert.equal(code(() => parseSingleVarint(hex("04 00"), "GOAWAY")), H3.FRAME_ERROR); // trailing byte
  assert.equal(code(() => parseSingleVarint(hex(""), "MAX_PUSH_ID")), H3.FRAME_ERROR);
  for (const t of [0x02, 0x06, 0x08, 0x09]) assert.ok(isReservedH2FrameType(t));
  for (const t of [0x00, 0x01, 0x03, 0x04, 0x05, 0x07, 0x0d, 0x21]) assert.ok(!isReservedH2FrameType(t));
  assert.equal(greaseType(0), 0x21);
  assert.equal(greaseType(1), 0x40);
  assert.equal(errorName(H3.MESSAGE_ERROR), "H3_MESSAGE_ERROR");
  assert.equal(errorName(H3.QPACK_DECOMPRESSION_FAILED), "H3_QPACK_DECOMPRESSION_FAILED");
  assert.equal(errorName(0x1234), "0x1234");
});
