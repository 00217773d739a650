import assert from "node:assert/strict";
import {
  type HeaderField,
  HeaderListTooLarge,
  HpackDecoder,
  HpackEncoder,
  HpackError,
} from "../../../src/http/h2/hpack.ts";
import { concat, hex, rng, thrown } from "./helpers.ts";

// ---------------------------------------------------------------------------------------------
// RFC 7541 Appendix C vectors
// ---------------------------------------------------------------------------------------------

interface Step {
  block: string;
  fields: HeaderField[];
  /** Dynamic table after the block, newest first, and its size. */
  table: HeaderField[];
  size: number;
}

const REQ1: HeaderField[] = [[":method", "GET"], [":scheme", "http"], [":path", "/"], [
  ":authority",
  "www.example.com",
]];
const REQ2: HeaderField[] = [...REQ1, ["cache-control", "no-cache"]];
const REQ3: HeaderField[] = [
  [":method", "GET"],
  [":scheme", "https"],
  [":path", "/index.html"],
  [":authority", "www.example.com"],
  ["custom-key", "custom-value"],
];
const REQ_TABLES: Array<[HeaderField[], number]> = [
  [[[":authority", "www.example.com"]], 57],
  [[["cache-control", "no-cache"], [":authority", "www.example.com"]], 110],
  [[["custom-key", "custom-value"], ["cache-control", "no-cache"], [":authority", "www.example.com"]], 164],
];

const C3: Step[] = [
  { block: "828684410f7777772e6578616d706c652e636f6d", fields: REQ1, table: REQ_TABLES[0][0], size: 57 },
  { block: "828684be58086e6f2d6361636865", fields: REQ2, table: REQ_TABLES[1][0], size: 110 },
  {
    block: "828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565",
    fields: REQ3,
    table: REQ_TABLES[2][0],
    size: 164,
  },
];

const C4: Step[] = [
  { block: "828684418cf1e3c2e5f23a6ba0ab90f4ff", fields: REQ1, table: REQ_TABLES[0][0], size: 57 },
  { block: "828684be5886a8eb10649cbf", fields: REQ2, table: REQ_TABLES[1][0], size: 110 },
  {
    block: "828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf",
    fields: REQ3,
    table: REQ_TABLES[2][0],
    size: 164,
  },
];

const DATE1 = "Mon, 21 Oct 2013 20:13:21 GMT";
const DATE2 = "Mon, 21 Oct 2013 20:13:22 GMT";
const LOC = "https://www.example.com";
const COOKIE = "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1";
const RESP1: HeaderField[] = [[":status", "302"], ["cache-control", "private"], ["date", DATE1], [
  "location",
  LOC,
]];
const RESP2: HeaderField[] = [[":status", "307"], ["cache-control", "private"], ["date", DATE1], [
  "location",
  LOC,
]];
const RESP3: HeaderField[] = [
  [":status", "200"],
  ["cache-control", "private"],
  ["date", DATE2],
  ["location", LOC],
  ["content-encoding", "gzip"],
  ["set-cookie", COOKIE],
];
const RESP_TABLES: Array<[HeaderField[], number]> = [
  [[["location", LOC], ["date", DATE1], ["cache-control", "private"], [":status", "302"]], 222],
  [[[":status", "307"], ["location", LOC], ["date", DATE1], ["cache-control", "private"]], 222],
  [[["set-cookie", COOKIE], ["content-encoding", "gzip"], ["date", DATE2]], 215],
];

const C5: Step[] = [
  {
    block: "4803333032580770726976617465611d4d6f6e2c203231204f637420323031332032303a31333a323120474d54" +
      "6e1768747470733a2f2f7777772e6578616d706c652e636f6d",
    fields: RESP1,
    table: RESP_TABLES[0][0],
    size: 222,
  },
  { block: "4803333037c1c0bf", fields: RESP2, table: RESP_TABLES[1][0], size: 222 },
  {
    block: "88c1611d4d6f6e2c203231204f637420323031332032303a31333a323220474d54c05a04677a69707738666f6f3d" +
      "4153444a4b48514b425a584f5157454f50495541585157454f49553b206d61782d6167653d333630303b20766572" +
      "73696f6e3d31",
    fields: RESP3,
    table: RESP_TABLES[2][0],
    size: 215,
  },
];

const C6: Step[] = [
  {
    block:
      "488264025885aec3771a4b6196d07abe941054d444a8200595040b8166e082a62d1bff6e919d29ad171863c78f0b97c8e9ae82ae43d3",
    fields: RESP1,
    table: RESP_TABLES[0][0],
    size: 222,
  },
  { block: "4883640effc1c0bf", fields: RESP2, table: RESP_TABLES[1][0], size: 222 },
  {
    block:
      "88c16196d07abe941054d444a8200595040b8166e084a62d1bffc05a839bd9ab77ad94e7821dd7f2e6c7b335dfdfcd5b3960d5af" +
      "27087f3672c1ab270fb5291f9587316065c003ed4ee5b1063d5007",
    fields: RESP3,
    table: RESP_TABLES[2][0],
    size: 215,
  },
];

function runSequence(steps: Step[], maxTableSize: number): void {
  const dec = new HpackDecoder({ maxTableSize, maxHeaderListSize: 65536 });
  for (const [i, step] of steps.entries()) {
    assert.deepEqual(dec.decode(hex(step.block)), step.fields, `block ${i + 1}`);
    assert.deepEqual(dec.dynamicTableEntries(), step.table, `table after block ${i + 1}`);
    assert.equal(dec.dynamicTableSize, step.size, `table size after block ${i + 1}`);
  }
}

/** The encoder's output for the same header lists must decode to the same lists, block after block. */
function roundTrip(lists: HeaderField[][], maxTableSize: number, huffman: boolean): Uint8Array[] {
  const enc = new HpackEncoder({ maxTableSize, huffman });
  const dec = new HpackDecoder({ maxTableSize, maxHeaderListSize: 65536 });
  return lists.map((list, i) => {
    const block = enc.encode(list);
    const got = dec.decode(block).map(([n, v]) => [n, v]); // drop never-index marks for the comparison
    assert.deepEqual(got, list, `list ${i + 1} (huffman ${huffman}, table ${maxTableSize})`);
    assert.equal(enc.dynamicTableSize, dec.dynamicTableSize, "encoder and decoder tables agree");
    return block;
  });
}

Deno.test("hpack C.2.1: literal with indexing", () => {
  const dec = new HpackDecoder({ maxTableSize: 4096, maxHeaderListSize: 65536 });
  assert.deepEqual(dec.decode(hex("400a637573746f6d2d6b65790d637573746f6d2d686561646572")), [
    ["custom-key", "custom-header"],
  ]);
  assert.deepEqual(dec.dynamicTableEntries(), [["custom-key", "custom-header"]]);
  assert.equal(dec.dynamicTableSize, 55);
});

Deno.test("hpack C.2.2: literal without indexing", () => {
  const dec = new HpackDecoder({ maxTableSize: 4096, maxHeaderListSize: 65536 });
  assert.deepEqual(dec.decode(hex("040c2f73616d706c652f70617468")), [[":path", "/sample/path"]]);
  assert.equal(dec.dynamicTableSize, 0);
});

Deno.test("hpack C.2.3: literal never indexed is flagged and not stored", () => {
  const dec = new HpackDecoder({ maxTableSize: 4096, maxHeaderListSize: 65536 });
  assert.deepEqual(dec.decode(hex("100870617373776f726406736563726574")), [["password", "secret", true]]);
  assert.equal(dec.dynamicTableSize, 0);
  assert.deepEqual(dec.dynamicTableEntries(), []);
});

Deno.test("hpack C.2.4: indexed field", () => {
  const dec = new HpackDecoder({ maxTableSize: 4096, maxHeaderListSize: 65536 });
  assert.deepEqual(dec.decode(hex("82")), [[":method", "GET"]]);
  assert.equal(dec.dynamicTableSize, 0);
});

Deno.test("hpack C.3: requests without Huffman", () => runSequence(C3, 4096));
Deno.test("hpack C.4: requests with Huffman", () => runSequence(C4, 4096));
Deno.test("hpack C.5: responses without Huffman, 256-octet table with evictions", () => runSequence(C5, 256));
Deno.test("hpack C.6: responses with Huffman, 256-octet table with evictions", () => runSequence(C6, 256));

Deno.test("hpack encoder: Appendix C lists round-trip, with and without Huffman, 4096 and 256 tables", () => {
  for (const huffman of [true, false]) {
    for (const size of [4096, 256]) {
      roundTrip([REQ1, REQ2, REQ3], size, huffman);
      roundTrip([RESP1, RESP2, RESP3], size, huffman);
      roundTrip([REQ1, RESP1, REQ2, RESP2, REQ3, RESP3, REQ1], size, huffman);
    }
  }
});

Deno.test("hpack encoder: a repeated list is sent as one index octet per field", () => {
  const list: HeaderField[] = [...REQ3, ["user-agent", "test/1.0"], ["accept", "*/*"]];
  const blocks = roundTrip([list, list], 4096, true);
  assert.equal(blocks[1].length, list.length);
  assert.ok(blocks[0].length > blocks[1].length * 3);
  // With Huffman off the first block is larger than with it on.
  const raw = roundTrip([list], 4096, false)[0];
  assert.ok(raw.length > blocks[0].length);
});

Deno.test("hpack encoder: sensitive fields use the never-indexed representation", () => {
  const enc = new HpackEncoder();
  const dec = new HpackDecoder();
  const list: HeaderField[] = [
    ["authorization", "Bearer abc"],
    ["cookie", "sid=short"],
    ["set-cookie", "a=b"],
    ["x-secret", "zzz", true],
    ["cookie", "long-cookie=0123456789abcdef"],
  ];
  for (let i = 0; i < 2; i++) {
    const block = enc.encode(list);
    // authorization: never indexed (0001), static name index 23 = 15 + 8.
    assert.deepEqual([...block.subarray(0, 2)], [0x1f, 0x08]);
    assert.deepEqual(dec.decode(block), [
      ["authorization", "Bearer abc", true],
      ["cookie", "sid=short", true],
      ["set-cookie", "a=b", true],
      ["x-secret", "zzz", true],
      ["cookie", "long-cookie=0123456789abcdef"],
    ]);
  }
  // Only the long cookie went into the table.
  assert.deepEqual(dec.dynamicTableEntries(), [["cookie", "long-cookie=0123456789abcdef"]]);
  // A re-encoding proxy keeps the flag: decoded fields fed back in stay never-indexed.
  const dec2 = new HpackDecoder();
  const again = dec2.decode(enc.encode(dec.decode(enc.encode([["x-secret", "zzz", true]]))));
  assert.deepEqual(again, [["x-secret", "zzz", true]]);
});

Deno.test("hpack encoder: oversized and per-message values are not indexed", () => {
  const enc = new HpackEncoder({ maxTableSize: 256 });
  const dec = new HpackDecoder({ maxTableSize: 256 });
  const big = "v".repeat(200); // 200 + 1 + 32 > 3/4 of 256
  const list: HeaderField[] = [["x", big], ["content-length", "1234"], ["etag", '"abc"']];
  assert.deepEqual(dec.decode(enc.encode(list)), list);
  assert.equal(enc.dynamicTableSize, 0);
  assert.equal(dec.dynamicTableSize, 0);
});

Deno.test("hpack encoder: table size updates — initial, shrink and grow with the min-then-final rule", () => {
  const enc = new HpackEncoder({ maxTableSize: 256 });
  const dec = new HpackDecoder({ maxTableSize: 4096 });
  const b1 = enc.encode(RESP1);
  // Our cap (256) is below the protocol default (4096) the decoder starts at: 001 11111, 225.
  assert.deepEqual([...b1.subarray(0, 3)], [0x3f, 0xe1, 0x01]);
  assert.deepEqual(dec.decode(b1), RESP1);
  assert.equal(dec.dynamicTableMaxSize, 256);

  const enc2 = new HpackEncoder();
  const dec2 = new HpackDecoder();
  dec2.decode(enc2.encode(REQ3));
  assert.ok(dec2.dynamicTableSize > 0);
  enc2.setPeerMaxTableSize(0);
  enc2.setPeerMaxTableSize(1000);
  const b2 = enc2.encode(REQ3);
  // Smallest (0) first, then the final size 1000 = 31 + 969 → 3f c9 07.
  assert.deepEqual([...b2.subarray(0, 4)], [0x20, 0x3f, 0xc9, 0x07]);
  assert.deepEqual(dec2.decode(b2), REQ3);
  assert.equal(dec2.dynamicTableMaxSize, 1000);
  assert.equal(enc2.dynamicTableSize, dec2.dynamicTableSize);
  // No change → no update.
  enc2.setPeerMaxTableSize(1000);
  const b3 = enc2.encode(REQ1);
  assert.notEqual(b3[0] & 0xe0, 0x20);
  assert.deepEqual(dec2.decode(b3), REQ1);
  // Growing back to our cap (4096) is signalled: 31 + 4065 → 3f e1 1f.
  enc2.setPeerMaxTableSize(4096);
  const b4 = enc2.encode(REQ1);
  assert.deepEqual([...b4.subarray(0, 3)], [0x3f, 0xe1, 0x1f]);
  assert.deepEqual(dec2.decode(b4), REQ1);
  assert.equal(dec2.dynamicTableMaxSize, 4096);
  // A peer allowing more than our cap changes nothing.
  enc2.setPeerMaxTableSize(1 << 20);
  const b5 = enc2.encode(REQ1);
  assert.notEqual(b5[0] & 0xe0, 0x20);
  assert.deepEqual(dec2.decode(b5), REQ1);
  assert.equal(enc2.dynamicTableSize, dec2.dynamicTableSize);
});

// ---------------------------------------------------------------------------------------------
// Decoder error handling
// ---------------------------------------------------------------------------------------------

function hpackError(block: Uint8Array, dec = new HpackDecoder()): HpackError {
  const e = thrown(() => dec.decode(block));
  assert.ok(e instanceof HpackError, `expected HpackError, got ${e}`);
  return e;
}

Deno.test("hpack decoder: integer overflow and truncation are HpackErrors", () => {
  hpackError(hex("ff 80 80 80 80 01")); // 5 continuation octets
  hpackError(hex("ff ff ff ff ff ff ff ff 7f")); // would exceed 2^31
  hpackError(hex("ff 80")); // truncated
  hpackError(hex("40 7f ff ff ff ff 0f")); // a string length with 5 continuation octets
  // 4 continuation octets are fine syntactically; this one then points past the table.
  const e = hpackError(hex("ff 80 80 80 01"));
  assert.match(e.message, /beyond the table/);
});

Deno.test("hpack decoder: bad indices are HpackErrors", () => {
  hpackError(hex("80")); // index 0
  hpackError(hex("be")); // 62 with an empty dynamic table
  hpackError(hex("ff 00")); // 127
  hpackError(hex("7e 01 61")); // literal with indexing, name index 62
  hpackError(hex("0f 30 01 61")); // literal without indexing, name index 63
  hpackError(hex("1f 30 01 61")); // never indexed, name index 63
  const dec = new HpackDecoder();
  dec.decode(hex("400a637573746f6d2d6b65790d637573746f6d2d686561646572"));
  assert.deepEqual(dec.decode(hex("be")), [["custom-key", "custom-header"]]);
  hpackError(hex("bf"), dec); // 63: one past the only dynamic entry
});

Deno.test("hpack decoder: table size update rules (RFC 7541 §4.2, §6.3)", () => {
  hpackError(hex("3f e2 1f")); // 4097 > 4096
  assert.deepEqual(new HpackDecoder().decode(hex("3f e1 1f 82")), [[":method", "GET"]]); // 4096 is fine
  hpackError(hex("82 20")); // after a field
  hpackError(hex("20 82 20")); // after a field, even if one came first
  assert.deepEqual(new HpackDecoder().decode(hex("20 3f e1 1f 82")), [[":method", "GET"]]); // two at the start

  // Shrinking our advertised limit: the next block must begin with an update ≤ the new limit.
  const dec = new HpackDecoder();
  dec.decode(hex("400a637573746f6d2d6b65790d637573746f6d2d686561646572"));
  dec.setMaxTableSizeLimit(40);
  hpackError(hex("82"), dec);
  const dec2 = new HpackDecoder();
  dec2.decode(hex("400a637573746f6d2d6b65790d637573746f6d2d686561646572"));
  dec2.setMaxTableSizeLimit(40);
  hpackError(hex("3f 0a 82"), dec2); // 41 > 40
  const dec3 = new HpackDecoder();
  dec3.decode(hex("400a637573746f6d2d6b65790d637573746f6d2d686561646572"));
  dec3.setMaxTableSizeLimit(40);
  assert.deepEqual(dec3.decode(hex("3f 09 82")), [[":method", "GET"]]); // 40: entry (55) evicted
  assert.equal(dec3.dynamicTableSize, 0);
  assert.equal(dec3.dynamicTableMaxSize, 40);
  assert.deepEqual(dec3.decode(hex("82")), [[":method", "GET"]]); // no further update required
});

Deno.test("hpack decoder: truncated and malformed strings are HpackErrors", () => {
  hpackError(hex("40 0a 61")); // name length beyond the block
  hpackError(hex("40")); // name missing
  hpackError(hex("40 01 61")); // value missing
  hpackError(hex("04 05 61 62")); // value length beyond the block
  hpackError(hex("40 81 ff 01 61")); // Huffman name that is a whole octet of padding
  hpackError(hex("04 84 ff ff ff ff")); // EOS in a Huffman value
});

Deno.test("hpack decoder: uppercase names are returned, not rejected", () => {
  const dec = new HpackDecoder();
  assert.deepEqual(dec.decode(hex("00 03 46 6f 6f 01 78")), [["Foo", "x"]]);
});

Deno.test("hpack decoder: eviction, and an entry larger than the table empties it", () => {
  const dec = new HpackDecoder({ maxTableSize: 100 });
  // "a" : "x" * 20 → 1 + 20 + 32 = 53
  const small = concat(hex("40 01 61 14"), new Uint8Array(20).fill(0x78));
  dec.decode(small);
  assert.equal(dec.dynamicTableSize, 53);
  dec.decode(small); // 106 > 100: the first copy is evicted
  assert.equal(dec.dynamicTableSize, 53);
  assert.equal(dec.dynamicTableEntries().length, 1);
  // "b" : "y" * 70 → 103 > 100: not stored, and the table is emptied.
  const huge = concat(hex("40 01 62 46"), new Uint8Array(70).fill(0x79));
  assert.deepEqual(dec.decode(huge), [["b", "y".repeat(70)]]);
  assert.equal(dec.dynamicTableSize, 0);
  hpackError(hex("be"), dec);
});

Deno.test("hpack decoder: octets ≥ 0x80 decode as latin1, one char per octet", () => {
  const dec = new HpackDecoder();
  const [[, v]] = dec.decode(hex("04 03 c3 a9 ff"));
  assert.equal(v, "\xc3\xa9\xff");
  assert.equal(v.length, 3);
  const enc = new HpackEncoder();
  assert.deepEqual(new HpackDecoder().decode(enc.encode([["x-bin", v]])), [["x-bin", v]]);
});

Deno.test("hpack decoder: header list size limit (RFC 9113 §6.5.2 accounting)", () => {
  // ":method: GET" = 7 + 3 + 32 = 42 octets.
  assert.deepEqual(new HpackDecoder({ maxHeaderListSize: 84 }).decode(hex("82 82")), [
    [":method", "GET"],
    [":method", "GET"],
  ]);
  const dec = new HpackDecoder({ maxHeaderListSize: 83 });
  const e = thrown(() => dec.decode(hex("82 82")));
  assert.ok(e instanceof HeaderListTooLarge);
  assert.ok(!(e instanceof HpackError));
  assert.equal(e.limit, 83);
  assert.equal(e.size, 84);
  // Literals after the limit still update the table (state stays in sync).
  const e2 = thrown(() =>
    dec.decode(hex("82 82 400a637573746f6d2d6b65790d637573746f6d2d686561646572 04 01 61"))
  );
  assert.ok(e2 instanceof HeaderListTooLarge);
  assert.deepEqual(dec.dynamicTableEntries(), [["custom-key", "custom-header"]]);
  // Malformed input after the limit is still a connection error, even in a skipped literal.
  hpackError(hex("82 82 04 84 ff ff ff ff"), new HpackDecoder({ maxHeaderListSize: 83 }));
  hpackError(hex("82 82 04 05 61"), new HpackDecoder({ maxHeaderListSize: 83 }));
});

Deno.test("hpack decoder: HPACK bomb costs neither memory nor the table state", () => {
  const value = "a".repeat(4000);
  const insert = concat(hex("40 01 78 7f a1 1e"), new TextEncoder().encode(value)); // "x": 4000 octets (127 + 3873)
  const bomb = concat(insert, new Uint8Array(10000).fill(0xbe)); // then index 62 ten thousand times
  const dec = new HpackDecoder({ maxTableSize: 4096, maxHeaderListSize: 64 * 1024 });

  const heapBefore = Deno.memoryUsage().heapUsed;
  const t0 = performance.now();
  const e = thrown(() => dec.decode(bomb));
  const ms = performance.now() - t0;
  const heapGrowth = Deno.memoryUsage().heapUsed - heapBefore;

  assert.ok(e instanceof HeaderListTooLarge, String(e));
  // Counting stopped at the first field over the limit rather than summing 40 MB.
  assert.ok(e.size <= 64 * 1024 + 4033, `size ${e.size}`);
  assert.ok(ms < 1000, `took ${ms} ms`);
  assert.ok(heapGrowth < 10 * 1024 * 1024, `heap grew by ${heapGrowth} octets`);

  // The table kept the entry; the next (normal) block on the same connection decodes against it.
  assert.equal(dec.dynamicTableSize, 1 + 4000 + 32);
  assert.deepEqual(dec.decode(hex("82 be")), [[":method", "GET"], ["x", value]]);
});

Deno.test("hpack decoder: 2,000 random and mutated blocks only ever raise HpackError or HeaderListTooLarge", () => {
  const r = rng(2024);
  const seeds = [...C3, ...C4, ...C5, ...C6].map((s) => hex(s.block));
  let dec = new HpackDecoder({ maxTableSize: 4096, maxHeaderListSize: 200 });
  const counts = { ok: 0, hpack: 0, tooLarge: 0 };
  for (let i = 0; i < 2000; i++) {
    let block: Uint8Array;
    if (i % 2 === 0) {
      block = new Uint8Array(Math.floor(r() * 64));
      for (let j = 0; j < block.length; j++) block[j] = Math.floor(r() * 256);
    } else {
      block = seeds[Math.floor(r() * seeds.length)].slice();
      const flips = 1 + Math.floor(r() * 3);
      for (let f = 0; f < flips; f++) block[Math.floor(r() * block.length)] = Math.floor(r() * 256);
    }
    try {
      dec.decode(block);
      counts.ok++;
    } catch (e) {
      if (e instanceof HpackError) {
        counts.hpack++;
        // A connection error: the state is no longer trusted, start over as a new connection would.
        dec = new HpackDecoder({ maxTableSize: 4096, maxHeaderListSize: 200 });
      } else if (e instanceof HeaderListTooLarge) {
        counts.tooLarge++;
      } else {
        throw new Error(`block ${i} raised ${e}`);
      }
    }
  }
  assert.equal(counts.ok + counts.hpack + counts.tooLarge, 2000);
  // All three outcomes occur (the C.5/C.6 response lists are over the 200-octet limit).
  assert.ok(counts.ok > 100 && counts.hpack > 100 && counts.tooLarge > 20, JSON.stringify(counts));
});

Deno.test("hpack encoder/decoder: long random sessions stay in sync under a small table", () => {
  const r = rng(5);
  const names = ["a", "b", "cache-control", ":path", "x-long-name-for-testing", "cookie", "authorization"];
  const enc = new HpackEncoder({ maxTableSize: 300 });
  const dec = new HpackDecoder({ maxTableSize: 300, maxHeaderListSize: 1 << 20 });
  for (let i = 0; i < 500; i++) {
    if (i % 97 === 0) {
      const size = Math.floor(r() * 400);
      enc.setPeerMaxTableSize(size);
      dec.setMaxTableSizeLimit(size);
    }
    const list: HeaderField[] = [];
    for (let j = Math.floor(r() * 8); j > 0; j--) {
      const v = "v" + Math.floor(r() * 10).toString().repeat(Math.floor(r() * 60));
      list.push([names[Math.floor(r() * names.length)], v]);
    }
    const got = dec.decode(enc.encode(list)).map(([n, v]) => [n, v]);
    assert.deepEqual(got, list, `list ${i}`);
    assert.equal(enc.dynamicTableSize, dec.dynamicTableSize);
  }
});

Deno.test("hpack decoder: a repeated Huffman literal decodes the same; another of the same length is not mistaken for it", () => {
  const enc = new HpackEncoder();
  const dec = new HpackDecoder();
  // :path is sent without indexing, so every block carries the literal again.
  for (
    const path of [
      "/small",
      "/small",
      "/smalm",
      "/small",
      "/a/much/longer/path?with=query&and=more&x=1234567890abcdef0123",
    ]
  ) {
    const got = dec.decode(enc.encode([[":method", "GET"], [":path", path]]));
    assert.deepEqual(got, [[":method", "GET"], [":path", path]]);
  }
});
