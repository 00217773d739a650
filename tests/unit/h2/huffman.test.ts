import assert from "node:assert/strict";
import {
  bytesToLatin1,
  EOS,
  HUFFMAN_CODES,
  HUFFMAN_LENGTHS,
  huffmanDecode,
  huffmanEncode,
  huffmanEncodedLength,
  HuffmanError,
  huffmanValidate,
  latin1ToBytes,
} from "../../../src/http/h2/huffman.ts";
import { hex, rng, thrown, toHex } from "./helpers.ts";

Deno.test("huffman table: canonical, complete (Kraft sum 1), codes fit their lengths", () => {
  const syms = Array.from({ length: 257 }, (_, i) => i);
  syms.sort((a, b) => HUFFMAN_LENGTHS[a] - HUFFMAN_LENGTHS[b] || a - b);
  // Canonical Huffman: each code is the previous code + 1, shifted left by the length increase.
  let expected = 0;
  for (let i = 0; i < syms.length; i++) {
    const s = syms[i];
    if (i > 0) {
      const prev = syms[i - 1];
      expected = (expected + 1) * 2 ** (HUFFMAN_LENGTHS[s] - HUFFMAN_LENGTHS[prev]);
    }
    assert.equal(HUFFMAN_CODES[s], expected, `symbol ${s}`);
    assert.ok(HUFFMAN_CODES[s] < 2 ** HUFFMAN_LENGTHS[s], `symbol ${s} code wider than its length`);
  }
  let kraft = 0;
  for (let s = 0; s < 257; s++) kraft += 2 ** (30 - HUFFMAN_LENGTHS[s]);
  assert.equal(kraft, 2 ** 30);
  assert.equal(HUFFMAN_CODES[EOS], 0x3fffffff);
  assert.equal(HUFFMAN_LENGTHS[EOS], 30);
  // Spot checks straight from RFC 7541 Appendix B.
  assert.deepEqual([HUFFMAN_CODES[0], HUFFMAN_LENGTHS[0]], [0x1ff8, 13]);
  assert.deepEqual([HUFFMAN_CODES[47], HUFFMAN_LENGTHS[47]], [0x18, 6]); // '/'
  assert.deepEqual([HUFFMAN_CODES[92], HUFFMAN_LENGTHS[92]], [0x7fff0, 19]); // '\'
  assert.deepEqual([HUFFMAN_CODES[255], HUFFMAN_LENGTHS[255]], [0x3ffffee, 26]);
});

/** Every Huffman-coded literal in RFC 7541 Appendix C.4 and C.6. */
const APPENDIX_C: Array<[string, string]> = [
  ["www.example.com", "f1e3c2e5f23a6ba0ab90f4ff"],
  ["no-cache", "a8eb10649cbf"],
  ["custom-key", "25a849e95ba97d7f"],
  ["custom-value", "25a849e95bb8e8b4bf"],
  ["302", "6402"],
  ["307", "640eff"],
  ["private", "aec3771a4b"],
  ["Mon, 21 Oct 2013 20:13:21 GMT", "d07abe941054d444a8200595040b8166e082a62d1bff"],
  ["Mon, 21 Oct 2013 20:13:22 GMT", "d07abe941054d444a8200595040b8166e084a62d1bff"],
  ["https://www.example.com", "9d29ad171863c78f0b97c8e9ae82ae43d3"],
  ["gzip", "9bd9ab"],
  [
    "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1",
    "94e7821dd7f2e6c7b335dfdfcd5b3960d5af27087f3672c1ab270fb5291f9587316065c003ed4ee5b1063d5007",
  ],
];

Deno.test("huffman: RFC 7541 Appendix C strings encode to the RFC bytes and decode back", () => {
  for (const [text, h] of APPENDIX_C) {
    assert.equal(toHex(huffmanEncode(text)), h, text);
    assert.equal(huffmanEncodedLength(text), h.length / 2, text);
    assert.equal(huffmanDecode(hex(h)), text);
  }
});

Deno.test("huffman: round trip of all 256 octet values, alone and together", () => {
  let all = "";
  for (let b = 0; b < 256; b++) {
    const s = String.fromCharCode(b);
    all += s;
    const enc = huffmanEncode(s);
    assert.equal(enc.length, Math.ceil(HUFFMAN_LENGTHS[b] / 8));
    assert.equal(huffmanDecode(enc), s, `octet ${b}`);
  }
  assert.equal(huffmanDecode(huffmanEncode(all)), all);
  // Reversed order puts long codes next to short ones at every bit offset.
  const rev = [...all].reverse().join("");
  assert.equal(huffmanDecode(huffmanEncode(rev)), rev);
});

Deno.test("huffman: random strings round trip, subranges decode in place", () => {
  const r = rng(7);
  for (let i = 0; i < 300; i++) {
    const n = Math.floor(r() * 200);
    let s = "";
    for (let j = 0; j < n; j++) {
      s += String.fromCharCode(r() < 0.8 ? 32 + Math.floor(r() * 95) : Math.floor(r() * 256));
    }
    const enc = huffmanEncode(s);
    const framed = new Uint8Array(enc.length + 6);
    framed.set(enc, 3);
    assert.equal(huffmanDecode(framed, 3, 3 + enc.length), s);
  }
});

Deno.test("huffman: decoder rejects EOS, padding over 7 bits and padding that is not ones", () => {
  const bad: Array<[string, Uint8Array]> = [
    ["EOS alone (30 ones + 2 ones of padding)", hex("ffffffff")],
    ["'a' then EOS", hex("1fffffffff")],
    ["a whole octet of padding", hex("ff")],
    ["'a' + 3 pad bits + a full octet of ones (11 bits of padding)", hex("1fff")],
    ["'a' then zero padding", hex("18")],
    ["'a' then padding 101", hex("1d")],
    ["'www.example.com' with its 7 padding bits 1111110", hex("f1e3c2e5f23a6ba0ab90f4fe")],
  ];
  for (const [what, bytes] of bad) {
    const e = thrown(() => huffmanDecode(bytes));
    assert.ok(e instanceof HuffmanError, `${what}: ${e}`);
    assert.ok(thrown(() => huffmanValidate(bytes)) instanceof HuffmanError, what);
  }
});

Deno.test("huffman: boundary paddings are accepted", () => {
  // 5 × 'a' = 25 bits → exactly 7 bits of padding.
  assert.equal(toHex(huffmanEncode("aaaaa")), "18c631ff" /* 00011 ×5 + 1111111 */);
  assert.equal(huffmanDecode(hex("18c631ff")), "aaaaa");
  // 8 × 'a' = 40 bits → no padding at all.
  assert.equal(huffmanEncode("aaaaaaaa").length, 5);
  assert.equal(huffmanDecode(huffmanEncode("aaaaaaaa")), "aaaaaaaa");
  assert.equal(huffmanDecode(new Uint8Array(0)), "");
  huffmanValidate(hex("18c631ff"));
});

/** Reference decoder: one bit at a time against the code table, with the RFC's rules spelled out. */
function naiveDecode(bytes: Uint8Array): string | "error" {
  const byCode = new Map<string, number>();
  for (let s = 0; s < 257; s++) byCode.set(`${HUFFMAN_LENGTHS[s]}:${HUFFMAN_CODES[s]}`, s);
  let out = "";
  let code = 0;
  let len = 0;
  for (const byte of bytes) {
    for (let bit = 7; bit >= 0; bit--) {
      code = code * 2 + ((byte >> bit) & 1);
      len++;
      const sym = byCode.get(`${len}:${code}`);
      if (sym === undefined) continue;
      if (sym === EOS) return "error";
      out += String.fromCharCode(sym);
      code = 0;
      len = 0;
    }
  }
  if (len > 7 || code !== 2 ** len - 1) return "error";
  return out;
}

Deno.test("huffman: state-machine decoder agrees with a bit-by-bit reference on mutated inputs", () => {
  const r = rng(99);
  let ok = 0;
  let errors = 0;
  for (let i = 0; i < 400; i++) {
    let s = "";
    const n = 1 + Math.floor(r() * 12);
    for (let j = 0; j < n; j++) s += String.fromCharCode(Math.floor(r() * 256));
    const enc = huffmanEncode(s);
    // Flip a random bit half the time, or append a random octet, to hit error paths too.
    const k = r();
    let input: Uint8Array = enc;
    if (k < 0.5) {
      input = enc.slice();
      input[Math.floor(r() * input.length)] ^= 1 << Math.floor(r() * 8);
    } else if (k < 0.7) {
      input = new Uint8Array([...enc, Math.floor(r() * 256)]);
    }
    const want = naiveDecode(input);
    let got: string | "error";
    try {
      got = huffmanDecode(input);
    } catch (e) {
      assert.ok(e instanceof HuffmanError);
      got = "error";
    }
    assert.equal(got, want, `input ${toHex(input)}`);
    if (want === "error") errors++;
    else ok++;
  }
  assert.ok(ok > 50 && errors > 50, `both paths exercised (${ok} ok, ${errors} errors)`);
});

Deno.test("latin1 helpers map octets 1:1, including 0x80-0x9f and long inputs", () => {
  const bytes = new Uint8Array(20000);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7) & 0xff;
  const s = bytesToLatin1(bytes);
  assert.equal(s.length, bytes.length);
  assert.equal(s.charCodeAt(0x80 / 7 | 0), bytes[0x80 / 7 | 0]);
  for (let i = 0; i < bytes.length; i += 997) assert.equal(s.charCodeAt(i), bytes[i]);
  assert.deepEqual(latin1ToBytes(s), bytes);
  assert.equal(bytesToLatin1(hex("80 9f ff"), 0, 3), "\x80\x9f\xff");
  assert.equal(bytesToLatin1(bytes, 5, 5), "");
});
