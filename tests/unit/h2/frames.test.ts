import assert from "node:assert/strict";
import {
  CONNECTION_PREFACE,
  dataFrameHeader,
  encodeFrame,
  ErrorCode,
  errorCodeName,
  Flags,
  type FrameHeader,
  FrameReader,
  FrameType,
  goawayFrame,
  H2ConnectionError,
  H2StreamError,
  headersFrames,
  parseContinuation,
  parseData,
  parseFrame,
  parseGoaway,
  parseHeaders,
  parsePing,
  parsePriority,
  parsePushPromise,
  parseRstStream,
  parseSettings,
  parseWindowUpdate,
  pingFrame,
  type RawFrame,
  rstStreamFrame,
  settingsAck,
  settingsFrame,
  SettingsId,
  windowUpdateFrame,
} from "../../../src/http/h2/frames.ts";
import { concat, hex, rng, thrown } from "./helpers.ts";

function hdr(type: number, flags: number, streamId: number, length: number): FrameHeader {
  return { length, type, flags, streamId };
}

function connError(fn: () => unknown, code: number): void {
  const e = thrown(fn);
  assert.ok(e instanceof H2ConnectionError, `expected H2ConnectionError, got ${e}`);
  assert.equal(e.code, code, `${e.message}: code`);
}

function streamError(fn: () => unknown, streamId: number, code: number): H2StreamError {
  const e = thrown(fn);
  assert.ok(e instanceof H2StreamError, `expected H2StreamError, got ${e}`);
  assert.equal(e.code, code, `${e.message}: code`);
  assert.equal(e.streamId, streamId);
  return e;
}

/** Parses `payload` with the matching header (length taken from the payload). */
function p<T>(
  parse: (h: FrameHeader, p: Uint8Array) => T,
  type: number,
  flags: number,
  sid: number,
  payload: Uint8Array,
) {
  return () => parse(hdr(type, flags, sid, payload.length), payload);
}

// ---------------------------------------------------------------------------------------------
// FrameReader
// ---------------------------------------------------------------------------------------------

function sampleStream(): { bytes: Uint8Array; frames: Array<[number, number, number, Uint8Array]> } {
  const big = new Uint8Array(16384);
  for (let i = 0; i < big.length; i++) big[i] = i * 31;
  const frames: Array<[number, number, number, Uint8Array]> = [
    [FrameType.SETTINGS, 0, 0, hex("000100001000 000300000064")],
    [FrameType.SETTINGS, Flags.ACK, 0, new Uint8Array(0)],
    [FrameType.HEADERS, Flags.END_HEADERS, 1, hex("8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d")],
    [FrameType.DATA, Flags.PADDED | Flags.END_STREAM, 1, hex("03 68656c6c6f 000000")],
    [FrameType.PING, 0, 0, hex("0102030405060708")],
    [0xfa, 0x3f, 7, hex("deadbeef")], // unknown type
    [FrameType.DATA, 0, 3, big],
    [FrameType.WINDOW_UPDATE, 0, 0, hex("00010000")],
  ];
  return { bytes: concat(...frames.map(([t, f, s, pl]) => encodeFrame(t, f, s, pl))), frames };
}

function drain(r: FrameReader, out: RawFrame[]): void {
  for (let f = r.next(); f !== undefined; f = r.next()) {
    out.push({ header: f.header, payload: f.payload.slice() });
  }
}

function assertFrames(got: RawFrame[], want: Array<[number, number, number, Uint8Array]>): void {
  assert.equal(got.length, want.length);
  for (let i = 0; i < want.length; i++) {
    const [t, f, s, pl] = want[i];
    assert.deepEqual(got[i].header, { length: pl.length, type: t, flags: f, streamId: s }, `frame ${i}`);
    assert.deepEqual(got[i].payload, pl, `payload ${i}`);
  }
}

Deno.test("FrameReader: a stream split at every byte boundary reassembles identically", () => {
  const { bytes, frames } = sampleStream();
  for (let k = 0; k <= bytes.length; k++) {
    const r = new FrameReader(16384);
    const got: RawFrame[] = [];
    r.push(bytes.subarray(0, k));
    drain(r, got);
    r.push(bytes.subarray(k));
    drain(r, got);
    assertFrames(got, frames);
    assert.equal(r.buffered, 0);
  }
});

Deno.test("FrameReader: byte-at-a-time and random chunking", () => {
  const { bytes, frames } = sampleStream();
  const r1 = new FrameReader();
  const got1: RawFrame[] = [];
  for (let i = 0; i < bytes.length; i++) {
    r1.push(bytes.subarray(i, i + 1));
    drain(r1, got1);
  }
  assertFrames(got1, frames);

  const rand = rng(3);
  for (let round = 0; round < 50; round++) {
    const r = new FrameReader();
    const got: RawFrame[] = [];
    let i = 0;
    while (i < bytes.length) {
      const n = Math.min(bytes.length - i, 1 + Math.floor(rand() * 3000));
      r.push(bytes.subarray(i, i + n));
      i += n;
      if (rand() < 0.7) drain(r, got);
    }
    drain(r, got);
    assertFrames(got, frames);
  }
});

Deno.test("FrameReader: payloads within one chunk are views (zero copy); buffered tracks unread octets", () => {
  const frame = encodeFrame(FrameType.DATA, 0, 1, hex("0102030405"));
  const chunk = concat(frame, frame.subarray(0, 4));
  const r = new FrameReader();
  r.push(chunk);
  assert.equal(r.buffered, chunk.length);
  const f = r.next()!;
  assert.equal(f.payload.buffer, chunk.buffer);
  assert.equal(f.payload.byteOffset, 9);
  assert.equal(r.buffered, 4);
  assert.equal(r.next(), undefined);
  r.push(frame.subarray(4));
  const g = r.next()!;
  assert.deepEqual(g.payload, hex("0102030405"));
  assert.equal(r.buffered, 0);
  assert.equal(r.next(), undefined);
});

Deno.test("FrameReader: reserved stream-id bit is ignored", () => {
  const r = new FrameReader();
  r.push(hex("000000 06 00 80000005"));
  assert.deepEqual(r.next()!.header, { length: 0, type: 6, flags: 0, streamId: 5 });
});

Deno.test("FrameReader: a frame over SETTINGS_MAX_FRAME_SIZE is a FRAME_SIZE_ERROR from its header alone", () => {
  const r = new FrameReader(16384);
  r.push(hex("004001 00 00 00000001")); // 16385
  connError(() => r.next(), ErrorCode.FRAME_SIZE_ERROR);
  const ok = new FrameReader(16384);
  ok.push(concat(hex("004000 00 00 00000001"), new Uint8Array(16384)));
  assert.equal(ok.next()!.payload.length, 16384);
  // Raising our limit lets larger frames through.
  const r2 = new FrameReader(16384);
  r2.setMaxFrameSize(20000);
  r2.push(concat(hex("004001 00 00 00000001"), new Uint8Array(16385)));
  assert.equal(r2.next()!.header.length, 16385);
  assert.throws(() => new FrameReader(100), RangeError);
  assert.throws(() => r2.setMaxFrameSize(1 << 24), RangeError);
});

Deno.test("FrameReader.readPreface: whole, split, and wrong", () => {
  const r = new FrameReader();
  r.push(concat(CONNECTION_PREFACE, settingsAck()));
  assert.equal(r.readPreface(), true);
  assert.equal(r.next()!.header.type, FrameType.SETTINGS);

  const s = new FrameReader();
  s.push(CONNECTION_PREFACE.subarray(0, 10));
  assert.equal(s.readPreface(), false);
  s.push(CONNECTION_PREFACE.subarray(10));
  assert.equal(s.readPreface(), true);
  assert.equal(s.buffered, 0);

  const h1 = new FrameReader();
  h1.push(new TextEncoder().encode("GET / HT"));
  connError(() => h1.readPreface(), ErrorCode.PROTOCOL_ERROR);
  assert.equal(new TextDecoder().decode(CONNECTION_PREFACE), "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
});

// ---------------------------------------------------------------------------------------------
// Payload validators
// ---------------------------------------------------------------------------------------------

Deno.test("DATA: stream 0, padding errors, padding stripped and counted for flow control", () => {
  connError(p(parseData, 0, 0, 0, hex("00")), ErrorCode.PROTOCOL_ERROR);
  connError(p(parseData, 0, Flags.PADDED, 1, hex("05 6162 00")), ErrorCode.PROTOCOL_ERROR); // pad 5 > payload 4
  connError(p(parseData, 0, Flags.PADDED, 1, hex("04 616263")), ErrorCode.PROTOCOL_ERROR); // pad = payload length
  connError(p(parseData, 0, Flags.PADDED, 1, new Uint8Array(0)), ErrorCode.FRAME_SIZE_ERROR);
  const d = parseData(hdr(0, Flags.PADDED | Flags.END_STREAM, 1, 7), hex("02 61626364 0000"));
  assert.deepEqual(d.data, hex("61626364"));
  assert.equal(d.endStream, true);
  assert.equal(d.flowControlLength, 7);
  const empty = parseData(hdr(0, Flags.PADDED, 1, 3), hex("02 0000")); // pad = length - 1: no data, valid
  assert.equal(empty.data.length, 0);
  const plain = parseData(hdr(0, 0, 1, 2), hex("6162"));
  assert.deepEqual([plain.data, plain.endStream], [hex("6162"), false]);
});

Deno.test("HEADERS: stream 0, padding, priority fields, self-dependency is a stream error keeping the block", () => {
  connError(p(parseHeaders, 1, Flags.END_HEADERS, 0, hex("82")), ErrorCode.PROTOCOL_ERROR);
  connError(p(parseHeaders, 1, Flags.PADDED, 1, hex("03 82 00")), ErrorCode.PROTOCOL_ERROR); // pad = payload length
  connError(p(parseHeaders, 1, Flags.PADDED, 1, new Uint8Array(0)), ErrorCode.FRAME_SIZE_ERROR);
  connError(p(parseHeaders, 1, Flags.PRIORITY, 1, hex("00000000")), ErrorCode.FRAME_SIZE_ERROR);
  connError(
    p(parseHeaders, 1, Flags.PRIORITY | Flags.PADDED, 3, hex("01 00000001 0f")),
    ErrorCode.PROTOCOL_ERROR,
  );

  const h = parseHeaders(
    hdr(1, Flags.PRIORITY | Flags.END_HEADERS | Flags.END_STREAM, 3, 7),
    hex("80000001 ff 8284"),
  );
  assert.deepEqual(h.priority, { exclusive: true, dependency: 1, weight: 256 });
  assert.deepEqual(h.fragment, hex("8284"));
  assert.equal(h.endHeaders, true);
  assert.equal(h.endStream, true);

  const padded = parseHeaders(hdr(1, Flags.PRIORITY | Flags.PADDED, 5, 9), hex("02 00000003 0f 82 0000"));
  assert.deepEqual(padded.priority, { exclusive: false, dependency: 3, weight: 16 });
  assert.deepEqual(padded.fragment, hex("82"));
  assert.equal(padded.endHeaders, false);

  const plain = parseHeaders(hdr(1, Flags.END_HEADERS, 1, 1), hex("82"));
  assert.equal(plain.priority, undefined);

  const e = streamError(
    p(parseHeaders, 1, Flags.PRIORITY | Flags.END_HEADERS, 5, hex("00000005 10 8286")),
    5,
    ErrorCode.PROTOCOL_ERROR,
  );
  assert.deepEqual(e.frame?.fragment, hex("8286"));
  assert.equal(e.frame?.endHeaders, true);
});

Deno.test("PRIORITY: stream 0, length, self-dependency", () => {
  connError(p(parsePriority, 2, 0, 0, hex("0000000110")), ErrorCode.PROTOCOL_ERROR);
  streamError(p(parsePriority, 2, 0, 1, hex("00000003")), 1, ErrorCode.FRAME_SIZE_ERROR);
  streamError(p(parsePriority, 2, 0, 1, hex("000000031000")), 1, ErrorCode.FRAME_SIZE_ERROR);
  streamError(p(parsePriority, 2, 0, 7, hex("8000000710")), 7, ErrorCode.PROTOCOL_ERROR);
  assert.deepEqual(parsePriority(hdr(2, 0, 7, 5), hex("0000000310")), {
    kind: "priority",
    streamId: 7,
    priority: { exclusive: false, dependency: 3, weight: 17 },
  });
});

Deno.test("RST_STREAM: stream 0, length", () => {
  connError(p(parseRstStream, 3, 0, 0, hex("00000008")), ErrorCode.PROTOCOL_ERROR);
  connError(p(parseRstStream, 3, 0, 1, hex("000008")), ErrorCode.FRAME_SIZE_ERROR);
  connError(p(parseRstStream, 3, 0, 1, hex("0000000800")), ErrorCode.FRAME_SIZE_ERROR);
  assert.deepEqual(parseRstStream(hdr(3, 0, 1, 4), hex("00000008")), {
    kind: "rst_stream",
    streamId: 1,
    code: 8,
  });
});

Deno.test("SETTINGS: scope, ACK, length and every value rule", () => {
  const s = (flags: number, sid: number, payload: string) => p(parseSettings, 4, flags, sid, hex(payload));
  connError(s(0, 1, ""), ErrorCode.PROTOCOL_ERROR);
  connError(s(Flags.ACK, 0, "000100001000"), ErrorCode.FRAME_SIZE_ERROR);
  connError(s(0, 0, "0001000010"), ErrorCode.FRAME_SIZE_ERROR);
  connError(s(0, 0, "000100001000 0003"), ErrorCode.FRAME_SIZE_ERROR);
  connError(s(0, 0, "000200000002"), ErrorCode.PROTOCOL_ERROR);
  connError(s(0, 0, "000480000000"), ErrorCode.FLOW_CONTROL_ERROR);
  connError(s(0, 0, "000500003fff"), ErrorCode.PROTOCOL_ERROR);
  connError(s(0, 0, "000501000000"), ErrorCode.PROTOCOL_ERROR);
  connError(s(0, 0, "000800000002"), ErrorCode.PROTOCOL_ERROR);
  assert.deepEqual(s(Flags.ACK, 0, "")(), []);
  assert.deepEqual(s(0, 0, "")(), []);
  assert.deepEqual(
    s(
      0,
      0,
      "000100000000 000200000001 0003ffffffff 00047fffffff 000500004000 000600010000 000800000001 00090000000a 000500ffffff",
    )(),
    [
      [SettingsId.HEADER_TABLE_SIZE, 0],
      [SettingsId.ENABLE_PUSH, 1],
      [SettingsId.MAX_CONCURRENT_STREAMS, 0xffffffff],
      [SettingsId.INITIAL_WINDOW_SIZE, 0x7fffffff],
      [SettingsId.MAX_FRAME_SIZE, 16384],
      [SettingsId.MAX_HEADER_LIST_SIZE, 65536],
      [SettingsId.ENABLE_CONNECT_PROTOCOL, 1],
      // 0x9 (unknown) dropped
      [SettingsId.MAX_FRAME_SIZE, 16777215],
    ],
  );
});

Deno.test("PING: scope and length", () => {
  connError(p(parsePing, 6, 0, 1, hex("0000000000000000")), ErrorCode.PROTOCOL_ERROR);
  connError(p(parsePing, 6, 0, 0, hex("00000000000000")), ErrorCode.FRAME_SIZE_ERROR);
  connError(p(parsePing, 6, 0, 0, hex("000000000000000000")), ErrorCode.FRAME_SIZE_ERROR);
  const f = parsePing(hdr(6, Flags.ACK, 0, 8), hex("0102030405060708"));
  assert.equal(f.ack, true);
  assert.deepEqual(f.data, hex("0102030405060708"));
});

Deno.test("GOAWAY: scope, length, fields", () => {
  connError(p(parseGoaway, 7, 0, 1, hex("0000000000000000")), ErrorCode.PROTOCOL_ERROR);
  connError(p(parseGoaway, 7, 0, 0, hex("00000000000000")), ErrorCode.FRAME_SIZE_ERROR);
  assert.deepEqual(parseGoaway(hdr(7, 0, 0, 11), hex("80000007 0000000b 616263")), {
    kind: "goaway",
    lastStreamId: 7,
    code: ErrorCode.ENHANCE_YOUR_CALM,
    debugData: hex("616263"),
  });
});

Deno.test("WINDOW_UPDATE: length is a connection error, zero increment is scoped to its stream", () => {
  connError(p(parseWindowUpdate, 8, 0, 0, hex("000001")), ErrorCode.FRAME_SIZE_ERROR);
  connError(p(parseWindowUpdate, 8, 0, 3, hex("0000000100")), ErrorCode.FRAME_SIZE_ERROR);
  connError(p(parseWindowUpdate, 8, 0, 0, hex("00000000")), ErrorCode.PROTOCOL_ERROR);
  streamError(p(parseWindowUpdate, 8, 0, 3, hex("00000000")), 3, ErrorCode.PROTOCOL_ERROR);
  streamError(p(parseWindowUpdate, 8, 0, 3, hex("80000000")), 3, ErrorCode.PROTOCOL_ERROR); // reserved bit only
  assert.deepEqual(parseWindowUpdate(hdr(8, 0, 0, 4), hex("ffffffff")), {
    kind: "window_update",
    streamId: 0,
    increment: 0x7fffffff,
  });
});

Deno.test("CONTINUATION and PUSH_PROMISE", () => {
  connError(p(parseContinuation, 9, 0, 0, hex("82")), ErrorCode.PROTOCOL_ERROR);
  assert.deepEqual(parseContinuation(hdr(9, Flags.END_HEADERS, 1, 1), hex("82")), {
    kind: "continuation",
    streamId: 1,
    endHeaders: true,
    fragment: hex("82"),
  });
  connError(p(parsePushPromise, 5, 0, 0, hex("0000000282")), ErrorCode.PROTOCOL_ERROR);
  connError(p(parsePushPromise, 5, 0, 1, hex("000002")), ErrorCode.FRAME_SIZE_ERROR);
  connError(p(parsePushPromise, 5, Flags.PADDED, 1, hex("02 00000002 82")), ErrorCode.PROTOCOL_ERROR);
  assert.deepEqual(
    parsePushPromise(hdr(5, Flags.PADDED | Flags.END_HEADERS, 1, 8), hex("02 80000002 82 0000")),
    {
      kind: "push_promise",
      streamId: 1,
      promisedStreamId: 2,
      endHeaders: true,
      fragment: hex("82"),
    },
  );
  // Unpadded: the promised id is the first four octets.
  assert.deepEqual(parsePushPromise(hdr(5, 0, 1, 6), hex("00000004 8283")), {
    kind: "push_promise",
    streamId: 1,
    promisedStreamId: 4,
    endHeaders: false,
    fragment: hex("8283"),
  });
});

Deno.test("parseFrame dispatches by type and passes unknown types through", () => {
  const payload = hex("deadbeef");
  const h = hdr(0xfa, 0xff, 3, 4);
  assert.deepEqual(parseFrame(h, payload), { kind: "unknown", header: h, payload });
  assert.deepEqual(parseFrame(hdr(4, Flags.ACK, 0, 0), new Uint8Array(0)), {
    kind: "settings",
    ack: true,
    settings: [],
  });
  assert.equal(parseFrame(hdr(6, 0, 0, 8), new Uint8Array(8)).kind, "ping");
  assert.equal(parseFrame(hdr(8, 0, 1, 4), hex("00000001")).kind, "window_update");
  connError(() => parseFrame(hdr(0, 0, 0, 0), new Uint8Array(0)), ErrorCode.PROTOCOL_ERROR);
  const kinds = [0, 1, 2, 3, 5, 7, 9].map((t) => {
    const pl = t === 7
      ? new Uint8Array(8)
      : t === 2
      ? hex("0000000010")
      : t === 3 || t === 5
      ? new Uint8Array(4)
      : new Uint8Array(0);
    return parseFrame(hdr(t, 0, 1 + (t === 7 ? -1 : 0), pl.length), pl).kind;
  });
  assert.deepEqual(kinds, [
    "data",
    "headers",
    "priority",
    "rst_stream",
    "push_promise",
    "goaway",
    "continuation",
  ]);
});

// ---------------------------------------------------------------------------------------------
// Serializers
// ---------------------------------------------------------------------------------------------

function readAll(bytes: Uint8Array, maxFrameSize = 16384): RawFrame[] {
  const r = new FrameReader(maxFrameSize);
  r.push(bytes);
  const out: RawFrame[] = [];
  drain(r, out);
  assert.equal(r.buffered, 0, "no trailing bytes");
  return out;
}

Deno.test("serializers: exact bytes of the fixed-size frames", () => {
  assert.deepEqual(settingsAck(), hex("000000 04 01 00000000"));
  assert.deepEqual(pingFrame(hex("0102030405060708"), true), hex("000008 06 01 00000000 0102030405060708"));
  assert.deepEqual(rstStreamFrame(5, ErrorCode.CANCEL), hex("000004 03 00 00000005 00000008"));
  assert.deepEqual(windowUpdateFrame(0, 0x7fffffff), hex("000004 08 00 00000000 7fffffff"));
  assert.deepEqual(
    goawayFrame(9, ErrorCode.PROTOCOL_ERROR, "hi"),
    hex("00000a 07 00 00000000 00000009 00000001 6869"),
  );
  assert.deepEqual(goawayFrame(0, 0), hex("000008 07 00 00000000 00000000 00000000"));
  assert.deepEqual(dataFrameHeader(3, 70000, true), hex("011170 00 01 00000003"));
  assert.deepEqual(encodeFrame(0xfa, 0x3f, 0x7fffffff, hex("aa")), hex("000001 fa 3f 7fffffff aa"));
  assert.deepEqual(
    settingsFrame([[SettingsId.MAX_CONCURRENT_STREAMS, 100], [SettingsId.ENABLE_PUSH, 0]]),
    hex("00000c 04 00 00000000 000300000064 000200000000"),
  );
});

Deno.test("serializers: settings and goaway round-trip through the parsers", () => {
  const entries: Array<[number, number]> = [[1, 0], [3, 0xffffffff], [4, 65535], [5, 16777215], [8, 1]];
  const [f] = readAll(settingsFrame(entries));
  assert.deepEqual(parseSettings(f.header, f.payload), entries);
  const [g] = readAll(goawayFrame(0x7fffffff, ErrorCode.HTTP_1_1_REQUIRED, hex("00ff")));
  assert.deepEqual(parseGoaway(g.header, g.payload), {
    kind: "goaway",
    lastStreamId: 0x7fffffff,
    code: 0xd,
    debugData: hex("00ff"),
  });
});

Deno.test("headersFrames: splits at maxFrameSize into HEADERS + CONTINUATION with the right flags", () => {
  const block = new Uint8Array(40000);
  for (let i = 0; i < block.length; i++) block[i] = i % 251;
  const frames = readAll(headersFrames(3, block, true, 16384));
  assert.deepEqual(frames.map((f) => [f.header.type, f.header.flags, f.header.length, f.header.streamId]), [
    [FrameType.HEADERS, Flags.END_STREAM, 16384, 3],
    [FrameType.CONTINUATION, 0, 16384, 3],
    [FrameType.CONTINUATION, Flags.END_HEADERS, 40000 - 32768, 3],
  ]);
  assert.deepEqual(concat(...frames.map((f) => f.payload)), block);

  const one = readAll(headersFrames(1, block.subarray(0, 16384), false, 16384));
  assert.deepEqual(one.map((f) => [f.header.type, f.header.flags, f.header.length]), [[
    1,
    Flags.END_HEADERS,
    16384,
  ]]);
  const empty = readAll(headersFrames(1, new Uint8Array(0), true, 16384));
  assert.deepEqual(empty.map((f) => [f.header.type, f.header.flags, f.header.length]), [
    [1, Flags.END_HEADERS | Flags.END_STREAM, 0],
  ]);
  const bigFrames = readAll(headersFrames(1, block, false, 20000), 20000);
  assert.deepEqual(bigFrames.map((f) => f.header.length), [20000, 20000]);
});

Deno.test("serializers reject invalid arguments", () => {
  assert.throws(() => windowUpdateFrame(1, 0), RangeError);
  assert.throws(() => windowUpdateFrame(1, 0x80000000), RangeError);
  assert.throws(() => pingFrame(new Uint8Array(7)), RangeError);
  assert.throws(() => rstStreamFrame(0, 0), RangeError);
  assert.throws(() => encodeFrame(0, 0, 0x80000000), RangeError);
  assert.throws(() => encodeFrame(0, 0, 1, new Uint8Array(1 << 24)), RangeError);
  assert.throws(() => headersFrames(1, new Uint8Array(1), false, 100), RangeError);
  assert.throws(() => settingsFrame([[1, -1]]), RangeError);
  assert.throws(() => dataFrameHeader(0, 1, false), RangeError);
});

Deno.test("error classes and names", () => {
  const c = new H2ConnectionError(ErrorCode.FLOW_CONTROL_ERROR, "window overflow");
  assert.equal(c.code, 3);
  assert.match(c.message, /^FLOW_CONTROL_ERROR: window overflow$/);
  const s = new H2StreamError(5, ErrorCode.REFUSED_STREAM, "busy");
  assert.deepEqual([s.streamId, s.code, s.frame], [5, 7, undefined]);
  assert.ok(!(s instanceof H2ConnectionError));
  assert.equal(errorCodeName(0), "NO_ERROR");
  assert.equal(errorCodeName(0xd), "HTTP_1_1_REQUIRED");
  assert.equal(errorCodeName(0x1f), "0x1f");
  assert.equal(CONNECTION_PREFACE.length, 24);
});
