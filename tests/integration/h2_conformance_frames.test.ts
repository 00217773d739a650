/**
 * h2spec "http2" group, frame-level sections: 3.5, 4.1–4.3, 5.5, 6.1–6.10 and 7 — every case of
 * summerwind/h2spec with the same frames sent and the same outcomes accepted (see h2spec_helpers.ts),
 * against the h2c and the TLS (ALPN h2) listener.
 */

import assert from "node:assert/strict";
import {
  codeOf,
  continuationFrame,
  dataFrame,
  ErrorCode,
  FrameType,
  goawayFrame,
  headersFrame,
  PING_DATA,
  pingFrame,
  priorityFrame,
  rawFrame,
  rstFrame,
  runSpec,
  settings,
  SettingsId,
  type SpecCase,
  type SpecConn,
  windowUpdateFrame,
} from "./h2spec_helpers.ts";
import { CONNECTION_PREFACE } from "../../src/http/h2/frames.ts";

const { PROTOCOL_ERROR, FRAME_SIZE_ERROR, FLOW_CONTROL_ERROR, COMPRESSION_ERROR, STREAM_CLOSED, CANCEL } =
  ErrorCode;

/** DATA frames until one of `len` octets (h2spec WaitEventByType(DATA) then checks its length). */
async function firstDataLength(c: Parameters<SpecCase["run"]>[0]): Promise<number> {
  const f = await c.eventType(FrameType.DATA);
  return f!.payload.length;
}

// h2spec checks each of these twice (under 4.3 and again under 6.2): one body for both.
async function priorityInsideHeaderBlock(c: SpecConn): Promise<void> {
  await c.send(
    headersFrame(1, c.encode(c.common()), { endStream: false, endHeaders: false }),
    priorityFrame(1, 0, 255),
    continuationFrame(1, true, c.encode(c.dummy(1))),
  );
  await c.connectionError(PROTOCOL_ERROR);
}

async function headersInsideHeaderBlock(c: SpecConn): Promise<void> {
  await c.send(
    headersFrame(1, c.encode(c.common()), { endStream: false, endHeaders: false }),
    headersFrame(3, c.encode(c.common())),
    continuationFrame(1, true, c.encode(c.dummy(1))),
  );
  await c.connectionError(PROTOCOL_ERROR);
}

const cases: SpecCase[] = [
  // 3.5 HTTP/2 Connection Preface
  {
    id: "http2/3.5/1",
    desc: "client connection preface → the server's first frame is SETTINGS (not ACK)",
    noHandshake: true,
    async run(c) {
      await c.send(CONNECTION_PREFACE, settings([SettingsId.INITIAL_WINDOW_SIZE, 65535]));
      const f = await c.eventType(FrameType.SETTINGS);
      assert.equal(f!.header.flags & 1, 0, "first SETTINGS is not an ACK");
    },
  },
  {
    id: "http2/3.5/2",
    desc: "invalid connection preface → TCP connection closed",
    noHandshake: true,
    async run(c) {
      await c.send(new TextEncoder().encode("INVALID CONNECTION PREFACE\r\n\r\n"));
      await c.connectionClose();
    },
  },

  // 4.1 Frame Format
  {
    id: "http2/4.1/1",
    desc: "frame with unknown type is ignored",
    async run(c) {
      await c.send(rawFrame([0, 0, 8, 0x16, 0, 0, 0, 0, 0], new Uint8Array(8)), pingFrame(false));
      await c.eventType(FrameType.PING);
    },
  },
  {
    id: "http2/4.1/2",
    desc: "frame with undefined flags is ignored",
    async run(c) {
      await c.send(rawFrame([0, 0, 8, FrameType.PING, 0x16, 0, 0, 0, 0], new Uint8Array(8)));
      await c.eventType(FrameType.PING);
    },
  },
  {
    id: "http2/4.1/3",
    desc: "frame with the reserved bit set is accepted",
    async run(c) {
      await c.send(rawFrame([0, 0, 8, FrameType.PING, 0x16, 0x80, 0, 0, 0], new Uint8Array(8)));
      await c.eventType(FrameType.PING);
    },
  },

  // 4.2 Frame Size
  {
    id: "http2/4.2/1",
    desc: "DATA frame of 2^14 octets is accepted",
    async run(c) {
      await c.send(
        headersFrame(1, c.encode(c.common("POST")), { endStream: false }),
        dataFrame(1, "x".repeat(c.maxFrameSize), true),
      );
      await c.eventType(FrameType.HEADERS);
    },
  },
  {
    id: "http2/4.2/2",
    desc: "DATA frame above SETTINGS_MAX_FRAME_SIZE → FRAME_SIZE_ERROR",
    async run(c) {
      await c.send(
        headersFrame(1, c.encode(c.common("POST")), { endStream: false }),
        dataFrame(1, "x".repeat(c.maxFrameSize + 1), true),
      );
      await c.streamError(FRAME_SIZE_ERROR);
    },
  },
  {
    id: "http2/4.2/3",
    desc: "HEADERS frame above SETTINGS_MAX_FRAME_SIZE → connection FRAME_SIZE_ERROR",
    async run(c) {
      await c.send(headersFrame(1, c.encode([...c.common(), ...c.dummy(5)])));
      await c.connectionError(FRAME_SIZE_ERROR);
    },
  },

  // 4.3 Header Compression and Decompression
  {
    id: "http2/4.3/1",
    desc: "invalid header block fragment → connection COMPRESSION_ERROR",
    async run(c) {
      // A literal with incremental indexing, cut before its name and value.
      await c.send(rawFrame([0, 0, 1, FrameType.HEADERS, 0x5, 0, 0, 0, 1], [0x40]));
      await c.connectionError(COMPRESSION_ERROR);
    },
  },
  {
    id: "http2/4.3/2",
    desc: "PRIORITY frame inside a header block → connection PROTOCOL_ERROR",
    run: priorityInsideHeaderBlock,
  },
  {
    id: "http2/4.3/3",
    desc: "HEADERS for another stream inside a header block → connection PROTOCOL_ERROR",
    run: headersInsideHeaderBlock,
  },

  // 5.5 Extending HTTP/2
  {
    id: "http2/5.5/1",
    desc: "unknown extension frame is ignored",
    async run(c) {
      await c.send(rawFrame([0, 0, 8, 0x16, 0, 0, 0, 0, 0], new Uint8Array(8)), pingFrame(false));
      await c.eventType(FrameType.PING);
    },
  },
  {
    id: "http2/5.5/2",
    desc: "unknown extension frame inside a header block → connection PROTOCOL_ERROR",
    async run(c) {
      await c.send(
        headersFrame(1, c.encode(c.common()), { endHeaders: false }),
        rawFrame([0, 0, 8, 0x16, 0, 0, 0, 0, 0], new Uint8Array(8)),
      );
      await c.connectionError(PROTOCOL_ERROR);
    },
  },

  // 6.1 DATA
  {
    id: "http2/6.1/1",
    desc: "DATA on stream 0 → connection PROTOCOL_ERROR",
    async run(c) {
      await c.send(dataFrame(0, "test", true));
      await c.connectionError(PROTOCOL_ERROR);
    },
  },
  {
    id: "http2/6.1/2",
    desc: "DATA on a stream not open or half-closed (local) → STREAM_CLOSED",
    async run(c) {
      await c.send(headersFrame(1, c.encode(c.common("POST"))), dataFrame(1, "test", true));
      await c.streamError(STREAM_CLOSED);
    },
  },
  {
    id: "http2/6.1/3",
    desc: "DATA with a pad length ≥ the payload → connection PROTOCOL_ERROR",
    async run(c) {
      await c.send(
        headersFrame(1, c.encode([...c.common("POST"), ["content-length", "4"]]), { endStream: false }),
        rawFrame([0, 0, 5, FrameType.DATA, 0x9, 0, 0, 0, 1], [6, 0x54, 0x65, 0x73, 0x74]),
      );
      await c.connectionError(PROTOCOL_ERROR);
    },
  },

  // 6.2 HEADERS
  {
    id: "http2/6.2/1",
    desc: "HEADERS without END_HEADERS, then PRIORITY → connection PROTOCOL_ERROR",
    run: priorityInsideHeaderBlock,
  },
  {
    id: "http2/6.2/2",
    desc: "HEADERS to another stream while a header block is open → connection PROTOCOL_ERROR",
    run: headersInsideHeaderBlock,
  },
  {
    id: "http2/6.2/3",
    desc: "HEADERS on stream 0 → connection PROTOCOL_ERROR",
    async run(c) {
      await c.send(headersFrame(0, c.encode(c.common())));
      await c.connectionError(PROTOCOL_ERROR);
    },
  },
  {
    id: "http2/6.2/4",
    desc: "HEADERS with a pad length beyond the payload → PROTOCOL_ERROR",
    async run(c) {
      const block = c.encode(c.common());
      await c.send(
        rawFrame([0, 0, block.length + 1, FrameType.HEADERS, 0x0d, 0, 0, 0, 1], [block.length + 2, ...block]),
      );
      await c.streamError(PROTOCOL_ERROR);
    },
  },

  // 6.3 PRIORITY
  {
    id: "http2/6.3/1",
    desc: "PRIORITY on stream 0 → connection PROTOCOL_ERROR",
    async run(c) {
      await c.send(priorityFrame(0, 0, 255));
      await c.connectionError(PROTOCOL_ERROR);
    },
  },
  {
    id: "http2/6.3/2",
    desc: "PRIORITY with a length other than 5 → FRAME_SIZE_ERROR",
    async run(c) {
      await c.send(
        headersFrame(1, c.encode(c.common())),
        rawFrame([0, 0, 4, FrameType.PRIORITY, 0, 0, 0, 0, 1], [0x80, 0, 0, 1]),
      );
      await c.streamError(FRAME_SIZE_ERROR);
    },
  },

  // 6.4 RST_STREAM
  {
    id: "http2/6.4/1",
    desc: "RST_STREAM on stream 0 → connection PROTOCOL_ERROR",
    async run(c) {
      await c.send(rstFrame(0, CANCEL));
      await c.connectionError(PROTOCOL_ERROR);
    },
  },
  {
    id: "http2/6.4/2",
    desc: "RST_STREAM on an idle stream → connection PROTOCOL_ERROR",
    async run(c) {
      await c.send(rstFrame(1, CANCEL));
      await c.connectionError(PROTOCOL_ERROR);
    },
  },
  {
    id: "http2/6.4/3",
    desc: "RST_STREAM with a length other than 4 → connection FRAME_SIZE_ERROR",
    async run(c) {
      await c.send(
        headersFrame(1, c.encode(c.common())),
        rawFrame([0, 0, 3, FrameType.RST_STREAM, 0, 0, 0, 0, 1], [0, 0, 0]),
      );
      await c.connectionError(FRAME_SIZE_ERROR);
    },
  },

  // 6.5 SETTINGS
  {
    id: "http2/6.5/1",
    desc: "SETTINGS ACK with a payload → connection FRAME_SIZE_ERROR",
    async run(c) {
      await c.send(rawFrame([0, 0, 1, FrameType.SETTINGS, 0x1, 0, 0, 0, 0], [0]));
      await c.connectionError(FRAME_SIZE_ERROR);
    },
  },
  {
    id: "http2/6.5/2",
    desc: "SETTINGS on stream 1 → connection PROTOCOL_ERROR",
    async run(c) {
      await c.send(rawFrame([0, 0, 6, FrameType.SETTINGS, 0, 0, 0, 0, 1], [0, 3, 0, 0, 0, 0x64]));
      await c.connectionError(PROTOCOL_ERROR);
    },
  },
  {
    id: "http2/6.5/3",
    desc: "SETTINGS with a length not a multiple of 6 → connection FRAME_SIZE_ERROR",
    async run(c) {
      await c.send(rawFrame([0, 0, 3, FrameType.SETTINGS, 0, 0, 0, 0, 0], [0, 3, 0]));
      await c.connectionError(FRAME_SIZE_ERROR);
    },
  },

  // 6.5.2 Defined SETTINGS Parameters
  {
    id: "http2/6.5.2/1",
    desc: "SETTINGS_ENABLE_PUSH other than 0 or 1 → connection PROTOCOL_ERROR",
    async run(c) {
      await c.send(settings([SettingsId.ENABLE_PUSH, 2]));
      await c.connectionError(PROTOCOL_ERROR);
    },
  },
  {
    id: "http2/6.5.2/2",
    desc: "SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1 → connection FLOW_CONTROL_ERROR",
    async run(c) {
      await c.send(settings([SettingsId.INITIAL_WINDOW_SIZE, 2147483648]));
      await c.connectionError(FLOW_CONTROL_ERROR);
    },
  },
  {
    id: "http2/6.5.2/3",
    desc: "SETTINGS_MAX_FRAME_SIZE below 2^14 → connection PROTOCOL_ERROR",
    async run(c) {
      await c.send(settings([SettingsId.MAX_FRAME_SIZE, 16383]));
      await c.connectionError(PROTOCOL_ERROR);
    },
  },
  {
    id: "http2/6.5.2/4",
    desc: "SETTINGS_MAX_FRAME_SIZE above 2^24-1 → connection PROTOCOL_ERROR",
    async run(c) {
      await c.send(settings([SettingsId.MAX_FRAME_SIZE, 16777216]));
      await c.connectionError(PROTOCOL_ERROR);
    },
  },
  {
    id: "http2/6.5.2/5",
    desc: "SETTINGS with an unknown identifier is ignored",
    async run(c) {
      await c.send(settings([0xff, 1]), pingFrame(false));
      await c.eventType(FrameType.PING);
    },
  },

  // 6.5.3 Settings Synchronization
  {
    id: "http2/6.5.3/1",
    desc: "several INITIAL_WINDOW_SIZE values are applied in order (100 then 1 → 1-octet DATA)",
    async run(c) {
      await c.send(settings([SettingsId.INITIAL_WINDOW_SIZE, 100], [SettingsId.INITIAL_WINDOW_SIZE, 1]));
      await c.eventType(FrameType.SETTINGS);
      await c.send(headersFrame(1, c.encode(c.common())));
      assert.equal(await firstDataLength(c), 1);
    },
  },
  {
    id: "http2/6.5.3/2",
    desc: "SETTINGS without ACK → SETTINGS with ACK",
    async run(c) {
      await c.send(settings([SettingsId.ENABLE_PUSH, 0]));
      const f = await c.eventType(FrameType.SETTINGS);
      assert.equal(f!.header.flags & 1, 1, "SETTINGS ACK");
      assert.equal(f!.payload.length, 0);
    },
  },

  // 6.7 PING
  {
    id: "http2/6.7/1",
    desc: "PING → PING ACK with the same payload",
    async run(c) {
      await c.send(pingFrame(false, PING_DATA));
      await c.pingAck(PING_DATA);
    },
  },
  {
    id: "http2/6.7/2",
    desc: "PING with ACK is not answered",
    async run(c) {
      const unexpected = new Uint8Array([0x69, 0x6e, 0x76, 0x61, 0x6c, 0x69, 0x64, 0]); // "invalid"
      await c.send(pingFrame(true, unexpected), pingFrame(false, PING_DATA));
      // The first PING that comes back must be the answer to the second one.
      const f = await c.eventType(FrameType.PING);
      assert.deepEqual([...f!.payload], [...PING_DATA], "answered a PING ACK");
      assert.equal(f!.header.flags & 1, 1);
    },
  },
  {
    id: "http2/6.7/3",
    desc: "PING on stream 1 → connection PROTOCOL_ERROR",
    async run(c) {
      await c.send(rawFrame([0, 0, 8, FrameType.PING, 0, 0, 0, 0, 1], new Uint8Array(8)));
      await c.connectionError(PROTOCOL_ERROR);
    },
  },
  {
    id: "http2/6.7/4",
    desc: "PING with a length other than 8 → connection FRAME_SIZE_ERROR",
    async run(c) {
      await c.send(rawFrame([0, 0, 6, FrameType.PING, 0, 0, 0, 0, 0], new Uint8Array(6)));
      await c.connectionError(FRAME_SIZE_ERROR);
    },
  },

  // 6.8 GOAWAY
  {
    id: "http2/6.8/1",
    desc: "GOAWAY on stream 1 → connection PROTOCOL_ERROR",
    async run(c) {
      await c.send(rawFrame([0, 0, 8, FrameType.GOAWAY, 0, 0, 0, 0, 1], new Uint8Array(8)));
      await c.connectionError(PROTOCOL_ERROR);
    },
  },

  // 6.9 WINDOW_UPDATE
  {
    id: "http2/6.9/1",
    desc: "WINDOW_UPDATE of 0 on the connection → connection PROTOCOL_ERROR",
    async run(c) {
      await c.send(windowUpdateFrame(0, 0));
      await c.connectionError(PROTOCOL_ERROR);
    },
  },
  {
    id: "http2/6.9/2",
    desc: "WINDOW_UPDATE of 0 on a stream → PROTOCOL_ERROR",
    async run(c) {
      await c.send(headersFrame(1, c.encode(c.common()), { endStream: false }), windowUpdateFrame(1, 0));
      await c.streamError(PROTOCOL_ERROR);
    },
  },
  {
    id: "http2/6.9/3",
    desc: "WINDOW_UPDATE with a length other than 4 → connection FRAME_SIZE_ERROR",
    async run(c) {
      await c.send(rawFrame([0, 0, 3, FrameType.WINDOW_UPDATE, 0, 0, 0, 0, 0], [0, 0, 1]));
      await c.connectionError(FRAME_SIZE_ERROR);
    },
  },

  // 6.9.1 The Flow-Control Window
  {
    id: "http2/6.9.1/1",
    desc: "INITIAL_WINDOW_SIZE 1 → a 1-octet DATA frame",
    async run(c) {
      await c.send(settings([SettingsId.INITIAL_WINDOW_SIZE, 1]));
      await c.eventType(FrameType.SETTINGS);
      await c.send(headersFrame(1, c.encode(c.common())));
      assert.equal(await firstDataLength(c), 1);
    },
  },
  {
    id: "http2/6.9.1/2",
    desc: "WINDOW_UPDATEs taking the connection window above 2^31-1 → GOAWAY FLOW_CONTROL_ERROR",
    async run(c) {
      await c.send(windowUpdateFrame(0, 2147483647), windowUpdateFrame(0, 2147483647));
      const f = await c.eventType(FrameType.GOAWAY);
      assert.equal(codeOf(f!), FLOW_CONTROL_ERROR);
    },
  },
  {
    id: "http2/6.9.1/3",
    desc: "WINDOW_UPDATEs taking a stream window above 2^31-1 → RST_STREAM FLOW_CONTROL_ERROR",
    async run(c) {
      await c.send(
        headersFrame(1, c.encode(c.common()), { endStream: false }),
        windowUpdateFrame(1, 2147483647),
        windowUpdateFrame(1, 2147483647),
      );
      const f = await c.eventType(FrameType.RST_STREAM);
      assert.equal(f!.header.streamId, 1);
      assert.equal(codeOf(f!), FLOW_CONTROL_ERROR);
    },
  },

  // 6.9.2 Initial Flow-Control Window Size
  {
    id: "http2/6.9.2/1",
    desc: "INITIAL_WINDOW_SIZE changed after HEADERS (0 → 1) → a 1-octet DATA frame",
    async run(c) {
      await c.send(settings([SettingsId.INITIAL_WINDOW_SIZE, 0]));
      await c.eventType(FrameType.SETTINGS);
      await c.send(headersFrame(1, c.encode(c.common())), settings([SettingsId.INITIAL_WINDOW_SIZE, 1]));
      await c.eventType(FrameType.SETTINGS);
      assert.equal(await firstDataLength(c), 1);
    },
  },
  {
    id: "http2/6.9.2/2",
    desc: "SETTINGS making a stream window negative is tracked (3, 2, +2 → a 1-octet DATA frame)",
    async run(c) {
      await c.send(settings([SettingsId.INITIAL_WINDOW_SIZE, 3]));
      await c.eventType(FrameType.SETTINGS);
      await c.send(headersFrame(1, c.encode(c.common())));
      await c.eventType(FrameType.DATA);
      await c.send(settings([SettingsId.INITIAL_WINDOW_SIZE, 2]));
      await c.eventType(FrameType.SETTINGS);
      await c.send(windowUpdateFrame(1, 2));
      assert.equal(await firstDataLength(c), 1);
    },
  },
  {
    id: "http2/6.9.2/3",
    desc: "SETTINGS_INITIAL_WINDOW_SIZE of 2^31 → connection FLOW_CONTROL_ERROR",
    async run(c) {
      await c.send(rawFrame([0, 0, 6, FrameType.SETTINGS, 0, 0, 0, 0, 0], [0, 4, 0x80, 0, 0, 0]));
      await c.connectionError(FLOW_CONTROL_ERROR);
    },
  },

  // 6.10 CONTINUATION
  {
    id: "http2/6.10/1",
    desc: "several CONTINUATION frames after HEADERS are accepted",
    async run(c) {
      await c.send(
        headersFrame(1, c.encode(c.common()), { endHeaders: false }),
        continuationFrame(1, false, c.encode(c.dummy(1))),
        continuationFrame(1, true, c.encode(c.dummy(1))),
      );
      await c.eventType(FrameType.HEADERS);
    },
  },
  {
    id: "http2/6.10/2",
    desc: "CONTINUATION without END_HEADERS followed by DATA → connection PROTOCOL_ERROR",
    async run(c) {
      await c.send(
        headersFrame(1, c.encode(c.common("POST")), { endStream: false, endHeaders: false }),
        continuationFrame(1, false, c.encode(c.dummy(1))),
        dataFrame(1, "test", true),
      );
      await c.connectionError(PROTOCOL_ERROR);
    },
  },
  {
    id: "http2/6.10/3",
    desc: "CONTINUATION on stream 0 → connection PROTOCOL_ERROR",
    async run(c) {
      await c.send(
        headersFrame(1, c.encode(c.common()), { endHeaders: false }),
        continuationFrame(0, true, c.encode(c.dummy(1))),
      );
      await c.connectionError(PROTOCOL_ERROR);
    },
  },
  {
    id: "http2/6.10/4",
    desc: "CONTINUATION after HEADERS with END_HEADERS → connection PROTOCOL_ERROR",
    async run(c) {
      await c.send(headersFrame(1, c.encode(c.common())), continuationFrame(1, true, c.encode(c.dummy(1))));
      await c.connectionError(PROTOCOL_ERROR);
    },
  },
  {
    id: "http2/6.10/5",
    desc: "CONTINUATION after CONTINUATION with END_HEADERS → connection PROTOCOL_ERROR",
    async run(c) {
      await c.send(
        headersFrame(1, c.encode(c.common()), { endHeaders: false }),
        continuationFrame(1, true, c.encode(c.dummy(1))),
        continuationFrame(1, true, c.encode(c.dummy(1))),
      );
      await c.connectionError(PROTOCOL_ERROR);
    },
  },
  {
    id: "http2/6.10/6",
    desc: "CONTINUATION after DATA → connection PROTOCOL_ERROR",
    async run(c) {
      await c.send(
        headersFrame(1, c.encode(c.common("POST")), { endStream: false }),
        dataFrame(1, "test", true),
        continuationFrame(1, true, c.encode(c.dummy(1))),
      );
      await c.connectionError(PROTOCOL_ERROR);
    },
  },

  // 7 Error Codes
  {
    id: "http2/7/1",
    desc: "GOAWAY with an unknown error code → no special behaviour (the connection closes)",
    async run(c) {
      await c.send(goawayFrame(0, 0xff));
      await c.connectionClose();
    },
  },
  {
    id: "http2/7/2",
    desc: "RST_STREAM with an unknown error code → no special behaviour (PING still answered)",
    async run(c) {
      await c.send(
        headersFrame(1, c.encode(c.common("POST")), { endStream: false }),
        rstFrame(1, 0xff),
        pingFrame(false),
      );
      await c.eventType(FrameType.PING);
    },
  },
];

Deno.test("h2spec http2 frames (3.5, 4, 5.5, 6, 7) on h2c and h2", async (t) => {
  await runSpec(t, cases);
});
