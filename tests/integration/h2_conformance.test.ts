/**
 * RFC 9113 conformance of the HTTP/2 front, frame by frame, in the spirit of h2spec: a raw
 * client sends one violation per connection and asserts the exact answer — which error code,
 * and whether it is a stream error (RST_STREAM) or a connection error (GOAWAY).
 */

import assert from "node:assert/strict";
import { startGateway } from "../helpers/gateway.ts";
import { errorCodeOf, RawH2 } from "./h2_helpers.ts";
import { encodeFrame, ErrorCode, FrameType, settingsFrame, SettingsId } from "../../src/http/h2/frames.ts";
import type { HeaderField } from "../../src/http/h2/hpack.ts";

const CONFIG = `
[runtime]
workers = 1
[observability]
admin_bind = "127.0.0.1:0"
access_log = false
[[listeners]]
name = "web"
bind = "127.0.0.1:0"
protocol = "http"
  [[listeners.routes]]
  respond = { status = 200, body = "hello from the h2 conformance route\\n" }
`;

const GET = (path = "/"): HeaderField[] => [
  [":method", "GET"],
  [":scheme", "http"],
  [":path", path],
  [":authority", "localhost"],
];
const POST = (extra: HeaderField[] = []): HeaderField[] => [
  [":method", "POST"],
  [":scheme", "http"],
  [":path", "/"],
  [":authority", "localhost"],
  ...extra,
];

const u32 = (v: number) => new Uint8Array([v >>> 24, v >>> 16, v >>> 8, v]);
const data = (id: number, bytes: string, flags = 0) =>
  encodeFrame(FrameType.DATA, flags, id, new TextEncoder().encode(bytes));

type Expect = { goaway: number } | { rst: number; stream: number };

async function expectError(c: RawH2, want: Expect): Promise<void> {
  const deadline = Date.now() + 4000;
  for (;;) {
    const f = await c.next(Math.max(1, deadline - Date.now()));
    assert.ok(f !== undefined, `timed out waiting for ${JSON.stringify(want)}`);
    assert.ok(f !== "closed", `connection closed without ${JSON.stringify(want)}`);
    if ("goaway" in want && f.header.type === FrameType.GOAWAY) {
      assert.equal(errorCodeOf(f), want.goaway, `GOAWAY code`);
      return;
    }
    if ("rst" in want) {
      if (f.header.type === FrameType.GOAWAY) assert.fail(`GOAWAY(${errorCodeOf(f)}) instead of RST_STREAM`);
      if (f.header.type === FrameType.RST_STREAM && f.header.streamId === want.stream) {
        assert.equal(errorCodeOf(f), want.rst, "RST_STREAM code");
        return;
      }
    }
    if ("goaway" in want && f.header.type === FrameType.RST_STREAM) {
      assert.fail(`RST_STREAM(${errorCodeOf(f)}) instead of GOAWAY`);
    }
  }
}

/** Reads until the response on `id` ends (END_STREAM on HEADERS or DATA). */
async function responseEnd(c: RawH2, id: number): Promise<void> {
  for (;;) {
    const f = await c.next(4000);
    assert.ok(f && f !== "closed", "no complete response");
    if (
      f.header.streamId === id && (f.header.type === FrameType.DATA || f.header.type === FrameType.HEADERS)
    ) {
      if (f.header.flags & 1) return;
    }
  }
}

Deno.test("h2 front: RFC 9113 error codes and scopes (h2spec-like)", async (t) => {
  const gw = await startGateway(CONFIG);
  const port = gw.ports.web;
  const cases: Array<[string, (c: RawH2) => Promise<void>]> = [
    ["server SETTINGS advertise MAX_CONCURRENT_STREAMS 100", async () => {
      const c = await RawH2.connect(port, { handshake: false });
      try {
        await c.send(
          new TextEncoder().encode("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
          encodeFrame(FrameType.SETTINGS, 0, 0),
        );
        const f = await c.waitFor(FrameType.SETTINGS);
        assert.ok(f && f !== "closed");
        const p = f.payload;
        const settings = new Map<number, number>();
        for (let o = 0; o < p.length; o += 6) {
          settings.set(
            (p[o] << 8) | p[o + 1],
            ((p[o + 2] << 24) | (p[o + 3] << 16) | (p[o + 4] << 8) | p[o + 5]) >>> 0,
          );
        }
        assert.equal(settings.get(SettingsId.MAX_CONCURRENT_STREAMS), 100);
        assert.equal(settings.has(SettingsId.ENABLE_CONNECT_PROTOCOL), false);
      } finally {
        c.close();
      }
    }],
    ["GET is answered", async (c) => {
      await c.send(c.headers(1, GET()));
      const h = await c.waitFor(FrameType.HEADERS, 1);
      assert.ok(h && h !== "closed");
      const d = await c.waitFor(FrameType.DATA, 1);
      assert.ok(d && d !== "closed");
      assert.match(new TextDecoder().decode(d.payload), /conformance route/);
    }],
    ["POST with trailers is answered", async (c) => {
      await c.send(c.headers(1, POST(), 0x4), data(1, "test"), c.headers(1, [["x-test", "ok"]], 0x5));
      await responseEnd(c, 1);
    }],
    ["PING is acknowledged with the same payload", async (c) => {
      await c.send(encodeFrame(FrameType.PING, 0, 0, new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8])));
      const f = await c.waitFor(FrameType.PING);
      assert.ok(f && f !== "closed");
      assert.equal(f.header.flags & 1, 1);
      assert.deepEqual([...f.payload], [1, 2, 3, 4, 5, 6, 7, 8]);
    }],
    ["unknown frame types and PRIORITY on idle streams are ignored", async (c) => {
      await c.send(
        encodeFrame(0xfa, 0, 0, new Uint8Array(4)),
        encodeFrame(FrameType.PRIORITY, 0, 9, new Uint8Array([0, 0, 0, 0, 15])),
      );
      await c.send(encodeFrame(FrameType.PING, 0, 0, new Uint8Array(8)));
      const f = await c.waitFor(FrameType.PING);
      assert.ok(f && f !== "closed");
    }],
    ["5.1 idle: DATA → connection PROTOCOL_ERROR", async (c) => {
      await c.send(data(1, "test", 1));
      await expectError(c, { goaway: ErrorCode.PROTOCOL_ERROR });
    }],
    ["5.1 idle: RST_STREAM → connection PROTOCOL_ERROR", async (c) => {
      await c.send(encodeFrame(FrameType.RST_STREAM, 0, 1, u32(ErrorCode.CANCEL)));
      await expectError(c, { goaway: ErrorCode.PROTOCOL_ERROR });
    }],
    ["5.1 idle: WINDOW_UPDATE → connection PROTOCOL_ERROR", async (c) => {
      await c.send(encodeFrame(FrameType.WINDOW_UPDATE, 0, 1, u32(100)));
      await expectError(c, { goaway: ErrorCode.PROTOCOL_ERROR });
    }],
    ["5.1 idle: CONTINUATION → connection PROTOCOL_ERROR", async (c) => {
      await c.send(encodeFrame(FrameType.CONTINUATION, 0x4, 1, c.block(GET())));
      await expectError(c, { goaway: ErrorCode.PROTOCOL_ERROR });
    }],
    ["5.1 half-closed (remote): DATA → stream STREAM_CLOSED", async (c) => {
      await c.send(c.headers(1, GET()), data(1, "test", 1));
      await expectError(c, { rst: ErrorCode.STREAM_CLOSED, stream: 1 });
    }],
    ["5.1 half-closed (remote): HEADERS → stream STREAM_CLOSED", async (c) => {
      await c.send(c.headers(1, GET()), c.headers(1, GET()));
      await expectError(c, { rst: ErrorCode.STREAM_CLOSED, stream: 1 });
    }],
    ["5.1 closed after RST_STREAM: DATA → stream STREAM_CLOSED", async (c) => {
      await c.send(c.headers(1, POST(), 0x4), encodeFrame(FrameType.RST_STREAM, 0, 1, u32(ErrorCode.CANCEL)));
      await c.send(data(1, "test", 1));
      await expectError(c, { rst: ErrorCode.STREAM_CLOSED, stream: 1 });
    }],
    ["5.1 closed after END_STREAM both ways: DATA → connection STREAM_CLOSED", async (c) => {
      await c.send(c.headers(1, GET()));
      await responseEnd(c, 1);
      await c.send(data(1, "test", 1));
      await expectError(c, { goaway: ErrorCode.STREAM_CLOSED });
    }],
    ["5.1 closed after END_STREAM both ways: HEADERS → connection STREAM_CLOSED", async (c) => {
      await c.send(c.headers(1, GET()));
      await responseEnd(c, 1);
      await c.send(c.headers(1, GET()));
      await expectError(c, { goaway: ErrorCode.STREAM_CLOSED });
    }],
    ["5.1.1 even stream id → connection PROTOCOL_ERROR", async (c) => {
      await c.send(c.headers(2, GET()));
      await expectError(c, { goaway: ErrorCode.PROTOCOL_ERROR });
    }],
    ["5.1.1 smaller stream id than before → connection PROTOCOL_ERROR", async (c) => {
      await c.send(c.headers(5, GET()), c.headers(3, GET()));
      await expectError(c, { goaway: ErrorCode.PROTOCOL_ERROR });
    }],
    ["5.1.2 over MAX_CONCURRENT_STREAMS → stream REFUSED_STREAM", async (c) => {
      await c.send(settingsFrame([[SettingsId.INITIAL_WINDOW_SIZE, 0]]));
      const frames: Uint8Array[] = [];
      for (let i = 0; i <= 100; i++) frames.push(c.headers(1 + 2 * i, GET()));
      await c.send(...frames);
      await expectError(c, { rst: ErrorCode.REFUSED_STREAM, stream: 201 });
    }],
    ["5.3.1 HEADERS depending on itself → stream PROTOCOL_ERROR", async (c) => {
      const block = c.block(GET());
      const payload = new Uint8Array(5 + block.length);
      payload.set([0, 0, 0, 1, 15]);
      payload.set(block, 5);
      await c.send(encodeFrame(FrameType.HEADERS, 0x25, 1, payload));
      await expectError(c, { rst: ErrorCode.PROTOCOL_ERROR, stream: 1 });
    }],
    ["4.2 frame above SETTINGS_MAX_FRAME_SIZE → connection FRAME_SIZE_ERROR", async (c) => {
      await c.send(c.headers(1, POST(), 0x4), encodeFrame(FrameType.DATA, 0, 1, new Uint8Array(16385)));
      await expectError(c, { goaway: ErrorCode.FRAME_SIZE_ERROR });
    }],
    ["4.3 invalid header block → connection COMPRESSION_ERROR", async (c) => {
      await c.send(encodeFrame(FrameType.HEADERS, 0x5, 1, new Uint8Array([0xff, 0xff, 0xff, 0xff, 0x7f])));
      await expectError(c, { goaway: ErrorCode.COMPRESSION_ERROR });
    }],
    ["4.3 PRIORITY inside a field block → connection PROTOCOL_ERROR", async (c) => {
      await c.send(
        encodeFrame(FrameType.HEADERS, 0x1, 1, c.block(GET())),
        encodeFrame(FrameType.PRIORITY, 0, 1, new Uint8Array([0, 0, 0, 0, 15])),
      );
      await expectError(c, { goaway: ErrorCode.PROTOCOL_ERROR });
    }],
    ["6.10 CONTINUATION for another stream → connection PROTOCOL_ERROR", async (c) => {
      const block = c.block(GET());
      await c.send(
        encodeFrame(FrameType.HEADERS, 0x1, 1, block.subarray(0, 2)),
        encodeFrame(FrameType.CONTINUATION, 0x4, 3, block.subarray(2)),
      );
      await expectError(c, { goaway: ErrorCode.PROTOCOL_ERROR });
    }],
    ["6.10 HEADERS split over CONTINUATION frames is answered", async (c) => {
      const block = c.block(GET());
      await c.send(
        encodeFrame(FrameType.HEADERS, 0x1, 1, block.subarray(0, 3)),
        encodeFrame(FrameType.CONTINUATION, 0, 1, block.subarray(3, 6)),
        encodeFrame(FrameType.CONTINUATION, 0x4, 1, block.subarray(6)),
      );
      await responseEnd(c, 1);
    }],
    ["6.1 DATA with an oversized pad length → connection PROTOCOL_ERROR", async (c) => {
      await c.send(
        c.headers(1, POST(), 0x4),
        encodeFrame(FrameType.DATA, 0x9, 1, new Uint8Array([6, 1, 2, 3])),
      );
      await expectError(c, { goaway: ErrorCode.PROTOCOL_ERROR });
    }],
    ["6.5 SETTINGS INITIAL_WINDOW_SIZE above 2^31-1 → connection FLOW_CONTROL_ERROR", async (c) => {
      await c.send(encodeFrame(FrameType.SETTINGS, 0, 0, new Uint8Array([0, 4, 0x80, 0, 0, 0])));
      await expectError(c, { goaway: ErrorCode.FLOW_CONTROL_ERROR });
    }],
    ["6.8 PUSH_PROMISE from a client → connection PROTOCOL_ERROR", async (c) => {
      await c.send(c.headers(1, POST(), 0x4));
      const block = c.block(GET());
      const p = new Uint8Array(4 + block.length);
      p.set(u32(2));
      p.set(block, 4);
      await c.send(encodeFrame(FrameType.PUSH_PROMISE, 0x4, 1, p));
      await expectError(c, { goaway: ErrorCode.PROTOCOL_ERROR });
    }],
    ["6.9 WINDOW_UPDATE overflowing the connection window → connection FLOW_CONTROL_ERROR", async (c) => {
      await c.send(
        encodeFrame(FrameType.WINDOW_UPDATE, 0, 0, u32(0x7fffffff)),
        encodeFrame(FrameType.WINDOW_UPDATE, 0, 0, u32(0x7fffffff)),
      );
      await expectError(c, { goaway: ErrorCode.FLOW_CONTROL_ERROR });
    }],
    ["6.9 WINDOW_UPDATE overflowing a stream window → stream FLOW_CONTROL_ERROR", async (c) => {
      await c.send(
        c.headers(1, POST(), 0x4),
        encodeFrame(FrameType.WINDOW_UPDATE, 0, 1, u32(0x7fffffff)),
        encodeFrame(FrameType.WINDOW_UPDATE, 0, 1, u32(0x7fffffff)),
      );
      await expectError(c, { rst: ErrorCode.FLOW_CONTROL_ERROR, stream: 1 });
    }],
    ["6.9 WINDOW_UPDATE of 0 on a stream → stream PROTOCOL_ERROR", async (c) => {
      await c.send(c.headers(1, POST(), 0x4), encodeFrame(FrameType.WINDOW_UPDATE, 0, 1, u32(0)));
      await expectError(c, { rst: ErrorCode.PROTOCOL_ERROR, stream: 1 });
    }],
    ["6.9.1 INITIAL_WINDOW_SIZE 1 → a DATA frame of one octet", async (c) => {
      await c.send(settingsFrame([[SettingsId.INITIAL_WINDOW_SIZE, 1]]));
      await c.waitFor(FrameType.SETTINGS);
      await c.send(c.headers(1, GET()));
      const d = await c.waitFor(FrameType.DATA, 1);
      assert.ok(d && d !== "closed");
      assert.equal(d.payload.length, 1);
    }],
    ["6.9.2 a SETTINGS change makes the window negative; WINDOW_UPDATE brings it back", async (c) => {
      await c.send(settingsFrame([[SettingsId.INITIAL_WINDOW_SIZE, 3]]));
      await c.waitFor(FrameType.SETTINGS);
      await c.send(c.headers(1, GET()));
      const d = await c.waitFor(FrameType.DATA, 1);
      assert.ok(d && d !== "closed");
      assert.equal(d.payload.length, 3);
      await c.send(settingsFrame([[SettingsId.INITIAL_WINDOW_SIZE, 2]])); // window 3-3 → -1
      await c.send(encodeFrame(FrameType.WINDOW_UPDATE, 0, 1, u32(2))); // → 1
      const d2 = await c.waitFor(FrameType.DATA, 1);
      assert.ok(d2 && d2 !== "closed");
      assert.equal(d2.payload.length, 1);
    }],
    ["8.1 second HEADERS without END_STREAM → stream PROTOCOL_ERROR", async (c) => {
      await c.send(c.headers(1, POST(), 0x4), data(1, "test"), c.headers(1, [["x-test", "ok"]], 0x4));
      await expectError(c, { rst: ErrorCode.PROTOCOL_ERROR, stream: 1 });
    }],
    ["8.1.1 content-length differing from the DATA → stream PROTOCOL_ERROR", async (c) => {
      await c.send(c.headers(1, POST([["content-length", "1"]]), 0x4), data(1, "test", 1));
      await expectError(c, { rst: ErrorCode.PROTOCOL_ERROR, stream: 1 });
    }],
  ];
  const malformed: Array<[string, HeaderField[]]> = [
    ["uppercase field name", [...GET(), ["X-Upper", "1"]]],
    ["connection-specific field", [...GET(), ["connection", "keep-alive"]]],
    ["te other than trailers", [...GET(), ["te", "gzip"]]],
    ["unknown pseudo-header", [...GET(), [":foo", "bar"]]],
    ["response pseudo-header in a request", [...GET(), [":status", "200"]]],
    ["pseudo-header after a regular field", [[":method", "GET"], [":scheme", "http"], ["x-a", "1"], [
      ":path",
      "/",
    ], [":authority", "localhost"]]],
    ["missing :path", GET().filter((f) => f[0] !== ":path")],
    ["missing :method", GET().filter((f) => f[0] !== ":method")],
    ["missing :scheme", GET().filter((f) => f[0] !== ":scheme")],
    ["empty :path", GET("")],
    ["duplicated :method", [...GET(), [":method", "GET"]]],
    ["value with a line feed", [...GET(), ["x-a", "a\nb"]]],
    [":protocol without ENABLE_CONNECT_PROTOCOL", [
      [":method", "CONNECT"],
      [":protocol", "websocket"],
      [
        ":scheme",
        "http",
      ],
      [":path", "/"],
      [":authority", "localhost"],
    ]],
  ];
  for (const [name, fields] of malformed) {
    cases.push([`8.3 malformed request (${name}) → stream PROTOCOL_ERROR`, async (c) => {
      await c.send(c.headers(1, fields));
      await expectError(c, { rst: ErrorCode.PROTOCOL_ERROR, stream: 1 });
      // The connection survives a stream error.
      await c.send(c.headers(3, GET()));
      await responseEnd(c, 3);
    }]);
  }
  cases.push(["malformed trailers (pseudo-header) → stream PROTOCOL_ERROR", async (c) => {
    await c.send(c.headers(1, POST(), 0x4), data(1, "test"), c.headers(1, [[":path", "/"]], 0x5));
    await expectError(c, { rst: ErrorCode.PROTOCOL_ERROR, stream: 1 });
  }]);
  try {
    for (const [name, fn] of cases) {
      await t.step(name, async () => {
        const c = await RawH2.connect(port);
        try {
          await fn(c);
        } finally {
          c.close();
        }
      });
    }
    await t.step("h2 events are counted in protocol_events_total", async () => {
      const text = await (await fetch(gw.admin("/metrics"))).text();
      assert.match(text, /protocol_events_total\{[^}]*event="h2_protocol_error"[^}]*\} [1-9]/);
      assert.match(text, /protocol_events_total\{[^}]*event="h2_malformed"[^}]*\} [1-9]/);
    });
  } finally {
    assert.equal(await gw.stop(), 0);
  }
});
