/**
 * QPACK (RFC 9204): the Appendix B examples byte for byte, the static table, round trips of the
 * literal-only encoder, Required Insert Count wrapping, blocked streams, and the limits that
 * make the decoder bomb-safe (field-section size, table capacity, instruction length).
 */
import assert from "node:assert/strict";
import { H3, H3Error } from "../../../src/http/h3/frames.ts";
import { rng } from "../h2/helpers.ts";
import { mutate } from "../../helpers/fuzz.ts";
import {
  DecoderStreamParser,
  encodeFieldSection,
  type HeaderField,
  QpackDecoder,
  STATIC_TABLE,
} from "../../../src/http/h3/qpack.ts";

function hex(s: string): Uint8Array {
  const h = s.replace(/\s+/g, "");
  const out = new Uint8Array(h.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(h.slice(2 * i, 2 * i + 2), 16);
  return out;
}

function toHex(b: Uint8Array | null): string {
  return b ? [...b].map((x) => x.toString(16).padStart(2, "0")).join("") : "";
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

function decoded(r: ReturnType<QpackDecoder["decode"]>): { fields: HeaderField[] | null; ack: string } {
  if ("blocked" in r) throw new Error(`unexpectedly blocked on ${r.blocked}`);
  return { fields: r.fields, ack: toHex(r.ack) };
}

Deno.test("qpack: static table has the 99 entries of RFC 9204 Appendix A", () => {
  assert.equal(STATIC_TABLE.length, 99);
  assert.deepEqual(STATIC_TABLE[0], [":authority", ""]);
  assert.deepEqual(STATIC_TABLE[17], [":method", "GET"]);
  assert.deepEqual(STATIC_TABLE[25], [":status", "200"]);
  assert.deepEqual(STATIC_TABLE[63], [":status", "100"]);
  assert.deepEqual(STATIC_TABLE[98], ["x-frame-options", "sameorigin"]);
});

Deno.test("qpack: RFC 9204 B.1 literal field line with name reference", () => {
  const d = new QpackDecoder({ maxTableCapacity: 0, maxBlockedStreams: 0, maxFieldSectionSize: 4096 });
  const r = decoded(d.decode(hex("0000 510b 2f69 6e64 6578 2e68 746d 6c"), 0));
  assert.deepEqual(r.fields, [[":path", "/index.html"]]);
  assert.equal(r.ack, ""); // Required Insert Count 0: no acknowledgment
});

Deno.test("qpack: RFC 9204 B.2-B.5 dynamic table, duplicate, eviction and decoder-stream output", () => {
  const d = new QpackDecoder({ maxTableCapacity: 220, maxBlockedStreams: 4, maxFieldSectionSize: 4096 });
  // B.2: capacity 220, two inserts with static name references.
  const inc1 = d.onEncoderStream(
    hex("3fbd01 c00f 7777 772e 6578 616d 706c 652e 636f 6d c10c 2f73 616d 706c 652f 7061 7468"),
  );
  assert.equal(d.insertCount, 2);
  assert.equal(d.tableSize, 106);
  assert.equal(toHex(inc1), "02"); // Insert Count Increment (2)
  const b2 = decoded(d.decode(hex("0381 10 11"), 4));
  assert.deepEqual(b2.fields, [[":authority", "www.example.com"], [":path", "/sample/path"]]);
  assert.equal(b2.ack, "84"); // Section Acknowledgment, stream 4
  // B.3: speculative insert with a literal name.
  const inc3 = d.onEncoderStream(hex("4a63 7573 746f 6d2d 6b65 790c 6375 7374 6f6d 2d76 616c 7565"));
  assert.equal(toHex(inc3), "01");
  assert.equal(d.tableSize, 160);
  // B.4: duplicate of absolute index 0; stream 8 references it and the speculative entry.
  d.onEncoderStream(hex("02"));
  assert.equal(d.insertCount, 4);
  assert.equal(d.tableSize, 217);
  const b4 = decoded(d.decode(hex("0500 80 c1 81"), 8));
  assert.deepEqual(b4.fields, [[":authority", "www.example.com"], [":path", "/"], [
    "custom-key",
    "custom-value",
  ]]);
  assert.equal(toHex(d.streamCancellation(8)), "48");
  // B.5: insert with a dynamic name reference evicts the oldest entry.
  d.onEncoderStream(hex("810d 6375 7374 6f6d 2d76 616c 7565 32"));
  assert.equal(d.insertCount, 5);
  assert.equal(d.tableSize, 215);
  // Entry 0 was evicted: a section referencing it fails.
  // Required Insert Count 5 → encoded 5 % 12 + 1 = 6; Base 5; relative index 4 → absolute 0.
  assert.equal(code(() => d.decode(hex("0600 84"), 12)), H3.QPACK_DECOMPRESSION_FAILED);
  // Absolute 4 (custom-key: custom-value2) is relative index 0 at Base 5.
  const last = decoded(d.decode(hex("0600 80"), 16));
  assert.deepEqual(last.fields, [["custom-key", "custom-value2"]]);
});

Deno.test("qpack: post-base references, negative base and Required Insert Count wrapping", () => {
  const d = new QpackDecoder({ maxTableCapacity: 64 * 3, maxBlockedStreams: 1, maxFieldSectionSize: 4096 });
  // MaxEntries = 6, FullRange = 12. Insert 14 entries so the count wraps past FullRange.
  const ins = (i: number) => {
    const name = `k${String(i).padStart(2, "0")}`;
    return new Uint8Array([0x40 | name.length, ...new TextEncoder().encode(name), 0x01, 0x61 + (i % 26)]);
  };
  d.onEncoderStream(hex("3f a1 01")); // capacity 192
  for (let i = 0; i < 14; i++) d.onEncoderStream(ins(i));
  assert.equal(d.insertCount, 14);
  // RIC 14 → encoded 14 % 12 + 1 = 3. Base = RIC - 1 - 1 = 12 (sign bit, delta 1).
  // Post-base index 1 → absolute 13 (k13); relative index 0 → absolute 11 (k11).
  const r = decoded(d.decode(hex("03 81 11 80"), 0));
  assert.deepEqual(r.fields, [["k13", "n"], ["k11", "l"]]);
  // Literal with post-base name reference (0000 N idx(3)), index 0 → absolute 12 (k12).
  const r2 = decoded(d.decode(hex("03 81 00 03 78 79 7a"), 4));
  assert.deepEqual(r2.fields, [["k12", "xyz"]]);
  // An encoded Required Insert Count above FullRange is an error.
  assert.equal(code(() => d.decode(hex("0d 00"), 8)), H3.QPACK_DECOMPRESSION_FAILED);
  // A reference at or above the Required Insert Count is an error.
  assert.equal(code(() => d.decode(hex("03 80 11"), 8)), H3.QPACK_DECOMPRESSION_FAILED);
});

Deno.test("qpack: a section that needs future inserts blocks, bounded by SETTINGS_QPACK_BLOCKED_STREAMS", async () => {
  const d = new QpackDecoder({ maxTableCapacity: 220, maxBlockedStreams: 1, maxFieldSectionSize: 4096 });
  const section = hex("0200 80"); // RIC 1, Base 1, relative 0 → absolute 0
  const r = d.decode(section, 0);
  assert.ok("blocked" in r && r.blocked === 1);
  const waiting = d.waitFor(1);
  assert.equal(d.blockedStreams, 1);
  // A second blocked stream exceeds the limit of 1.
  await assert.rejects(
    d.waitFor(1),
    (e: unknown) => e instanceof H3Error && e.code === H3.QPACK_DECOMPRESSION_FAILED,
  );
  d.onEncoderStream(hex("3fbd01 c00f 7777 772e 6578 616d 706c 652e 636f 6d"));
  await waiting;
  assert.equal(d.blockedStreams, 0);
  assert.deepEqual(decoded(d.decode(section, 0)).fields, [[":authority", "www.example.com"]]);
  // A stream that gives up (timeout) frees its blocked-stream slot.
  const ac = new AbortController();
  const abandoned = d.waitFor(9, ac.signal);
  assert.equal(d.blockedStreams, 1);
  ac.abort(new Error("header timeout"));
  await assert.rejects(abandoned, /header timeout/);
  assert.equal(d.blockedStreams, 0);
  // A dead connection fails whoever is still blocked.
  const w2 = d.waitFor(5);
  d.fail(new Error("gone"));
  await assert.rejects(w2, /gone/);
});

Deno.test("qpack: encoder-stream errors (capacity above ours, entry too big, bad reference)", () => {
  const mk = () =>
    new QpackDecoder({ maxTableCapacity: 100, maxBlockedStreams: 0, maxFieldSectionSize: 4096 });
  assert.equal(code(() => mk().onEncoderStream(hex("3f 46"))), H3.QPACK_ENCODER_STREAM_ERROR); // 101 > 100
  const d = mk();
  d.onEncoderStream(hex("3f 45")); // capacity 100
  // Literal name 'a' (1) + value of 70 bytes + 32 > 100
  const big = new Uint8Array([0x41, 0x61, 0x46, ...new Uint8Array(70).fill(0x62)]);
  assert.equal(code(() => d.onEncoderStream(big)), H3.QPACK_ENCODER_STREAM_ERROR);
  assert.equal(code(() => mk().onEncoderStream(hex("80 00"))), H3.QPACK_ENCODER_STREAM_ERROR); // empty table
  assert.equal(code(() => mk().onEncoderStream(hex("ff 7f 00"))), H3.QPACK_ENCODER_STREAM_ERROR); // static 190
  // A capacity of 0 (the default) accepts no inserts at all.
  const zero = new QpackDecoder({ maxTableCapacity: 0, maxBlockedStreams: 0, maxFieldSectionSize: 4096 });
  assert.equal(code(() => zero.onEncoderStream(hex("c0 00"))), H3.QPACK_ENCODER_STREAM_ERROR);
});

Deno.test("qpack: instructions split across chunks, and an endless literal is refused early", () => {
  const d = new QpackDecoder({ maxTableCapacity: 220, maxBlockedStreams: 0, maxFieldSectionSize: 4096 });
  const all = hex("3fbd01 c00f 7777 772e 6578 616d 706c 652e 636f 6d");
  for (const b of all) d.onEncoderStream(Uint8Array.of(b)); // byte by byte
  assert.equal(d.insertCount, 1);
  // A literal claiming 1 MB can never fit a 220-byte table: refused before its bytes arrive.
  assert.equal(code(() => d.onEncoderStream(hex("5f ff ff 3f"))), H3.QPACK_ENCODER_STREAM_ERROR);
});

Deno.test("qpack: decoded field-section size limit stops a QPACK bomb", () => {
  const d = new QpackDecoder({
    maxTableCapacity: 4096,
    maxBlockedStreams: 0,
    maxFieldSectionSize: 16 * 1024,
  });
  // One 4000-byte entry, then a 2-byte-per-reference section that would expand to 4 MB.
  const value = "v".repeat(4000);
  d.onEncoderStream(new Uint8Array([0x3f, 0xe1, 0x1f])); // capacity 4096
  const ins = new Uint8Array([0x41, 0x78, 0x7f, ...[0xa1, 0x1e], ...new TextEncoder().encode(value)]);
  d.onEncoderStream(ins);
  assert.equal(d.insertCount, 1);
  const refs = new Uint8Array(2 + 1000);
  refs.set([0x02, 0x00]); // RIC 1, Base 1
  refs.fill(0x80, 2); // 1000 × indexed dynamic relative 0
  const r = decoded(d.decode(refs, 0));
  assert.equal(r.fields, null); // too large: the stream is refused (431), the connection lives
  assert.equal(r.ack, "80"); // still acknowledged: the section was processed
});

Deno.test("qpack: malformed field sections are QPACK_DECOMPRESSION_FAILED", () => {
  const d = new QpackDecoder({ maxTableCapacity: 0, maxBlockedStreams: 0, maxFieldSectionSize: 4096 });
  for (
    const bad of [
      "", // no prefix
      "00", // no base
      "0000 ff 64", // static index 163
      "0000 51 0b 2f69", // value cut short
      "0000 5f", // index cut short
      "0000 2f 7f", // name length cut short
      "0000 80", // dynamic reference with an empty table
      "0000 51 81 ff", // Huffman string with invalid padding (EOS)
      "01 00", // Required Insert Count with capacity 0
    ]
  ) {
    assert.equal(code(() => d.decode(hex(bad), 0)), H3.QPACK_DECOMPRESSION_FAILED, bad);
  }
});

Deno.test("qpack: encoder output decodes back (static exact, static name, literal, huffman, never-index)", () => {
  const fields: HeaderField[] = [
    [":status", "200"],
    [":status", "207"],
    ["content-type", "text/plain"],
    ["content-length", "12345"],
    ["x-custom", "some value with spaces"],
    ["set-cookie", "a=b", true],
    ["x-bin", "\u0000\u00ff\u0080"],
    ["x-empty", ""],
    ["x-long", "q".repeat(5000)],
  ];
  const section = encodeFieldSection(fields);
  assert.equal(section[0], 0); // Required Insert Count 0
  assert.equal(section[2], 0xd9); // :status 200 is static index 25, indexed
  const d = new QpackDecoder({ maxTableCapacity: 0, maxBlockedStreams: 0, maxFieldSectionSize: 65536 });
  assert.deepEqual(decoded(d.decode(section, 0)).fields, fields);
});

Deno.test("qpack: the peer's decoder stream may only cancel streams (our encoder never inserts)", () => {
  const p = new DecoderStreamParser();
  p.feed(hex("48 41")); // Stream Cancellation 8 and 1
  const ack = new DecoderStreamParser();
  assert.throws(
    () => ack.feed(hex("84")),
    (e: unknown) => e instanceof H3Error && e.code === H3.QPACK_DECODER_STREAM_ERROR,
  );
  const inc = new DecoderStreamParser();
  assert.throws(
    () => inc.feed(hex("01")),
    (e: unknown) => e instanceof H3Error && e.code === H3.QPACK_DECODER_STREAM_ERROR,
  );
});

/** Prefix-integer and Huffman boundaries: where QPACK's decoder branches. */
const QPACK_OCTETS = [0x00, 0x7f, 0x80, 0xff, 0x3f, 0xc0];

/**
 * Feeds encoder-stream bytes in the given pieces to a new decoder: the table it built (insert
 * count, size, capacity) and how it ended. Only an H3Error with QPACK_ENCODER_STREAM_ERROR may
 * be thrown; anything else fails the test.
 */
function encoderStreamVerdict(pieces: Uint8Array[], label: string): { verdict: string; d: QpackDecoder } {
  const d = new QpackDecoder({ maxTableCapacity: 220, maxBlockedStreams: 4, maxFieldSectionSize: 512 });
  let end = "ok";
  try {
    for (const p of pieces) d.onEncoderStream(p);
  } catch (e) {
    if (!(e instanceof H3Error) || e.code !== H3.QPACK_ENCODER_STREAM_ERROR) {
      throw new Error(`${label}: unexpected ${e instanceof Error ? e.stack : String(e)}`);
    }
    end = "encoder stream error";
  }
  return { verdict: `${d.insertCount}/${d.tableSize}/${d.tableCapacity} ${end}`, d };
}

Deno.test("qpack: 3,000 mutated encoder streams and field sections only raise the QPACK errors, whole or split", () => {
  const rand = rng(31337);
  // RFC 9204 Appendix B: the encoder-stream instructions of B.2–B.5 and the sections that use them.
  const encoderSeeds = [
    "3fbd01 c00f 7777 772e 6578 616d 706c 652e 636f 6d c10c 2f73 616d 706c 652f 7061 7468",
    "3fbd01 4a63 7573 746f 6d2d 6b65 790c 6375 7374 6f6d 2d76 616c 7565 02",
    "3fbd01 c00f 7777 772e 6578 616d 706c 652e 636f 6d 800d 6375 7374 6f6d 2d76 616c 7565 32 00",
  ].map(hex);
  const sectionSeeds = [
    "0000 510b 2f69 6e64 6578 2e68 746d 6c",
    "0381 10 11",
    "0500 80 c1 81",
    "0300 81 80",
    toHex(
      encodeFieldSection([[":status", "200"], ["content-type", "text/plain"], ["x-custom", "v".repeat(40)]]),
    ),
  ].map(hex);
  const outcomes = new Map<string, number>();
  const count = (k: string) => outcomes.set(k, (outcomes.get(k) ?? 0) + 1);
  for (let round = 0; round < 3000; round++) {
    const stream = round % 2 === 0
      ? mutate(encoderSeeds[round % 3], rand, 0, QPACK_OCTETS)
      : encoderSeeds[round % 3];
    const label = `round ${round}: encoder stream ${toHex(stream)}`;
    const whole = encoderStreamVerdict([stream], label);
    // The same bytes one at a time build the same table and end the same way.
    const bytewise = encoderStreamVerdict([...stream].map((b) => Uint8Array.of(b)), label);
    assert.equal(bytewise.verdict, whole.verdict, `${label} (byte by byte)`);
    count(whole.verdict.endsWith("error") ? "encoder error" : "encoder ok");
    if (whole.verdict.endsWith("error")) continue;
    const section = mutate(sectionSeeds[Math.floor(rand() * sectionSeeds.length)], rand, 0, QPACK_OCTETS);
    try {
      const r = whole.d.decode(section, 4 * round);
      count("blocked" in r ? "blocked" : r.fields === null ? "too large" : "decoded");
    } catch (e) {
      if (!(e instanceof H3Error) || e.code !== H3.QPACK_DECOMPRESSION_FAILED) {
        throw new Error(
          `${label}, section ${toHex(section)}: unexpected ${e instanceof Error ? e.stack : e}`,
        );
      }
      count("decompression failed");
    }
  }
  for (const k of ["encoder error", "encoder ok", "decoded", "decompression failed", "blocked"]) {
    assert.ok((outcomes.get(k) ?? 0) > 0, `${k} never reached: ${JSON.stringify([...outcomes])}`);
  }
});
